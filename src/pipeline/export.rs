//! Checkpoint folder (`config.json`, `model.safetensors`, `tokenizer.json`) → model folder
//! (`model.onnx`, optional `model-int8.onnx`, `tokenizer.json`, `bertqa.json`): the one
//! hand-off between training and serving. Used by `bertqa export` and by `finetune`.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::model::manifest::{ModelManifest, FP32_GRAPH, INT8_GRAPH};
use crate::model::BertConfig;
use crate::onnx::bert::{bert_qa_model, GraphOptions, OpStyle, Smoothing, WeightFormat};
use crate::onnx::portable::{make_portable, PortabilityReport};
use crate::onnx::proto::ModelProto;
use crate::onnx::weights::Weights;
use crate::onnx::ExportError;
use crate::pipeline::calibrate::{calibrate, Calibration};
use crate::qa::features::WindowConfig;
use crate::qa::squad::SquadVersion;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Write the fp32 graph (`model.onnx`); off for a small int8-only folder to ship.
    pub fp32: bool,
    /// Also write an int8 graph (`model-int8.onnx`) in this format.
    pub int8: Option<WeightFormat>,
    /// Fused ONNX Runtime kernels or standard primitives.
    pub ops: OpStyle,
    /// Window geometry the model was trained with.
    pub window: WindowConfig,
    /// Longest answer in tokens.
    pub max_answer_len: usize,
    /// What the model was trained for: v2.0 models may answer nothing.
    pub squad_version: SquadVersion,
    /// Calibrate the batch-invariant int8 graph (`int8-rowwise`, `int8-static`,
    /// `int8-static-gelu-rowwise`) on these windows: SmoothQuant ranges, and the static steps.
    pub calibration: Option<Calibration>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            fp32: true,
            int8: Some(WeightFormat::Int8),
            ops: OpStyle::Primitive,
            window: WindowConfig::default(),
            max_answer_len: 30,
            squad_version: SquadVersion::V1,
            calibration: None,
        }
    }
}

fn write_error(path: &Path, e: impl std::fmt::Display) -> ExportError {
    ExportError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `model` to `path` through a temporary file, so a reader never sees half a graph.
fn write_graph(model: &ModelProto, path: &Path) -> Result<PathBuf, ExportError> {
    let tmp = path.with_extension("onnx.tmp");
    std::fs::write(&tmp, model.encode_to_vec()).map_err(|e| write_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| write_error(path, e))?;
    Ok(path.to_path_buf())
}

/// Writes the model folder at `out`; returns the graph files written.
pub fn export_model_folder(
    checkpoint: &Path,
    out: &Path,
    options: &ExportOptions,
) -> Result<Vec<PathBuf>, ExportError> {
    let config = BertConfig::from_file(&checkpoint.join("config.json"))
        .map_err(|e| ExportError::Checkpoint(e.to_string()))?;
    let weights = Weights::load(&checkpoint.join("model.safetensors"))?;
    let tokenizer = checkpoint.join("tokenizer.json");
    let tokenizer_text = std::fs::read_to_string(&tokenizer)
        .map_err(|e| ExportError::Checkpoint(format!("{}: {e}", tokenizer.display())))?;
    std::fs::create_dir_all(out).map_err(|e| write_error(out, e))?;
    let mut formats = vec![];
    if options.fp32 {
        formats.push((WeightFormat::Fp32, FP32_GRAPH));
    }
    if let Some(format) = options.int8 {
        formats.push((format, INT8_GRAPH));
    }
    if formats.is_empty() {
        return Err(ExportError::Checkpoint(
            "nothing to export: neither the fp32 nor the int8 graph was asked for".into(),
        ));
    }
    let calibrated = match (&options.calibration, options.int8) {
        (Some(calibration), Some(format)) if format.is_batch_invariant_int8() => Some(calibrate(
            &weights,
            &config,
            &tokenizer,
            options.window,
            calibration,
            format,
        )?),
        (Some(_), _) => {
            return Err(ExportError::Calibration(format!(
                "calibration data only applies to --int8-mode {}",
                WeightFormat::flag_names(WeightFormat::is_batch_invariant_int8)
            )))
        }
        (None, Some(format)) if format.needs_clips() => {
            return Err(ExportError::Calibration(format!(
                "--int8-mode {} needs calibration data (--calibration-data)",
                format.flag_name()
            )))
        }
        (None, _) => None,
    };
    let mut written = vec![];
    for (format, name) in &formats {
        let graph = GraphOptions {
            smoothing: calibrated.as_ref().zip(options.calibration.as_ref()).map(
                |(calibrated, calibration)| Smoothing {
                    ranges: &calibrated.ranges,
                    alpha: calibration.alpha,
                },
            ),
            clips: calibrated.as_ref().and_then(|c| c.clips.as_ref()),
            ..GraphOptions::new(*format, options.ops)
        };
        let model = bert_qa_model(&weights, &config, &graph)?;
        written.push(write_graph(&model, &out.join(name))?);
    }
    std::fs::write(out.join("tokenizer.json"), &tokenizer_text).map_err(|e| write_error(out, e))?;
    let graphs = formats.iter().map(|(_, n)| (*n).to_string()).collect();
    write_manifest(out, checkpoint, options, &tokenizer_text, graphs)?;
    Ok(written)
}

/// Writes `bertqa.json` for the `graphs` just exported: what the server needs to run them as
/// they were trained (window, answer length, SQuAD version, lowercasing as the tokenizer
/// does it) and the checkpoint's dev scores, when its `eval.json` has them.
fn write_manifest(
    out: &Path,
    checkpoint: &Path,
    options: &ExportOptions,
    tokenizer_text: &str,
    graphs: Vec<String>,
) -> Result<(), ExportError> {
    let lowercase = serde_json::from_str::<serde_json::Value>(tokenizer_text)
        .ok()
        .and_then(|t| t["normalizer"]["lowercase"].as_bool())
        .unwrap_or(false);
    let training_metrics = std::fs::read_to_string(checkpoint.join("eval.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let manifest = ModelManifest {
        window: options.window,
        max_answer_len: options.max_answer_len,
        squad_version: options.squad_version,
        lowercase,
        graphs,
        training_metrics,
        score_calibration: None,
        null_threshold: None,
    };
    let manifest_path = out.join("bertqa.json");
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| write_error(&manifest_path, e))?;
    std::fs::write(&manifest_path, text + "\n").map_err(|e| write_error(&manifest_path, e))
}

/// Copies model folder `model_dir` to `out` (or rewrites it in place when they are the same)
/// with its int8 graph made portable ([`crate::onnx::portable`]): for folders exported before
/// the pair bound, whose checkpoint may no longer exist.
pub fn make_model_folder_portable(
    model_dir: &Path,
    out: &Path,
) -> Result<PortabilityReport, ExportError> {
    let source = model_dir.join(INT8_GRAPH);
    let bytes = std::fs::read(&source)
        .map_err(|e| ExportError::Graph(format!("{}: {e}", source.display())))?;
    let mut model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| ExportError::Graph(format!("{} is not ONNX: {e}", source.display())))?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| ExportError::Graph(format!("{} has no graph", source.display())))?;
    let report = make_portable(graph)?;
    std::fs::create_dir_all(out).map_err(|e| write_error(out, e))?;
    if std::fs::canonicalize(model_dir).ok() != std::fs::canonicalize(out).ok() {
        let entries = std::fs::read_dir(model_dir).map_err(|e| write_error(model_dir, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() && path.file_name() != Some(INT8_GRAPH.as_ref()) {
                std::fs::copy(&path, out.join(entry.file_name()))
                    .map_err(|e| write_error(&path, e))?;
            }
        }
    }
    write_graph(&model, &out.join(INT8_GRAPH))?;
    Ok(report)
}

/// Writes a randomly initialised checkpoint folder for `config` with `tokenizer`: the stand-in
/// model of engine and server tests (so they need no trained weights) and of
/// `bertqa random-checkpoint` (hardware sizing for shapes we have no weights for, e.g. bert-base).
pub fn write_random_checkpoint(
    dir: &Path,
    config: &BertConfig,
    tokenizer: &Path,
    seed: u64,
) -> Result<(), ExportError> {
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    let json = serde_json::to_string_pretty(config).map_err(|e| write_error(dir, e))?;
    std::fs::write(dir.join("config.json"), json).map_err(|e| write_error(dir, e))?;
    std::fs::copy(tokenizer, dir.join("tokenizer.json")).map_err(|e| write_error(tokenizer, e))?;
    Weights::random(config, seed).save(&dir.join("model.safetensors"))
}
