//! Calibration for the smoothed row-wise int8 graph: runs the fp32 graph, with every dense
//! layer's input as an extra output, over windows of a SQuAD file in ONNX Runtime and keeps
//! each channel's largest |activation|. In-process and Python-free, like the rest of export.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::model::BertConfig;
use crate::onnx::bert::{bert_qa_model, observed_output, GraphOptions, OpStyle, WeightFormat};
use crate::onnx::smooth::{ActivationRanges, Site};
use crate::onnx::weights::Weights;
use crate::onnx::ExportError;
use crate::qa::batch::PaddedBatch;
use crate::qa::features::{Featurizer, WindowConfig};
use crate::qa::squad::load_squad;
use crate::runtime::engine::{batch_inputs, cpu_session};

/// Windows per calibration batch.
const BATCH: usize = 16;

/// Where the calibration windows come from.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// A SQuAD file (training data: the dev set is what the model is scored on).
    pub data: PathBuf,
    /// How many questions, spread evenly over the file so every topic is seen.
    pub questions: usize,
    /// SmoothQuant's migration strength (0.5 measured best, bench/RESULTS.md).
    pub alpha: f32,
}

impl Calibration {
    /// Questions measured by default: 128 (about 130 windows) gave the agreement figures in
    /// bench/RESULTS.md in under 4 s.
    pub const DEFAULT_QUESTIONS: usize = 128;
    /// α of the SmoothQuant paper, also the best of 0.3-0.8 measured here.
    pub const DEFAULT_ALPHA: f32 = 0.5;

    /// The default calibration on `data`.
    pub fn on(data: PathBuf) -> Self {
        Self {
            data,
            questions: Self::DEFAULT_QUESTIONS,
            alpha: Self::DEFAULT_ALPHA,
        }
    }
}

fn failed(e: impl std::fmt::Display) -> ExportError {
    ExportError::Calibration(e.to_string())
}

/// Per-channel activation maxima at every dense input of the model, measured on the windows
/// of `calibration.questions` questions of `calibration.data`.
pub fn activation_ranges(
    weights: &Weights,
    config: &BertConfig,
    tokenizer: &Path,
    window: WindowConfig,
    calibration: &Calibration,
) -> Result<ActivationRanges, ExportError> {
    let options = GraphOptions {
        observe: true,
        ..GraphOptions::new(WeightFormat::Fp32, OpStyle::Primitive)
    };
    let graph = bert_qa_model(weights, config, &options)?.encode_to_vec();
    let mut session = cpu_session(&graph, None).map_err(failed)?;
    let featurizer = Featurizer::from_file(tokenizer, window).map_err(failed)?;
    let examples = load_squad(&calibration.data).map_err(failed)?.examples();
    let step = (examples.len() / calibration.questions.max(1)).max(1);
    let mut windows = vec![];
    for example in examples.iter().step_by(step).take(calibration.questions) {
        windows.extend(
            featurizer
                .windows(&example.question, &example.context)
                .map_err(failed)?,
        );
    }
    if windows.is_empty() {
        return Err(failed(format!(
            "{} has no questions to calibrate on",
            calibration.data.display()
        )));
    }
    let keys: Vec<String> = (0..config.num_hidden_layers)
        .flat_map(|l| Site::ALL.map(|site| site.key(l)))
        .collect();
    let pad_id = featurizer.pad_id();
    let mut ranges = ActivationRanges::default();
    for chunk in windows.chunks(BATCH) {
        let members: Vec<_> = chunk.iter().collect();
        let batch = PaddedBatch::from_windows(&members, pad_id);
        let outputs = session
            .run(batch_inputs(&batch).map_err(failed)?)
            .map_err(failed)?;
        let real: Vec<bool> = batch.attention_mask.iter().map(|&m| m == 1).collect();
        for key in &keys {
            let (dims, values) = outputs[observed_output(key).as_str()]
                .try_extract_tensor::<f32>()
                .map_err(failed)?;
            let channels = dims.last().copied().unwrap_or(0) as usize;
            ranges.observe(key, values, channels, &real);
        }
    }
    Ok(ranges)
}
