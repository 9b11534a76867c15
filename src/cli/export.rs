//! The model-folder commands: `export` (checkpoint → model folder), `random-checkpoint`
//! (a checkpoint of any shape, for sizing) and `make-portable` (an old int8 graph made
//! CPU-independent).

use std::path::PathBuf;

use bertqa::model::BertConfig;
use bertqa::onnx::bert::{OpStyle, WeightFormat};
use bertqa::pipeline::calibrate::Calibration;
use bertqa::pipeline::export::{
    export_model_folder, make_model_folder_portable, write_random_checkpoint, ExportOptions,
};
use bertqa::qa::features::WindowConfig;
use bertqa::qa::squad::SquadVersion;

/// Turn a checkpoint folder (config.json, model.safetensors, tokenizer.json) into a model
/// folder the server loads (model.onnx, model-int8.onnx, tokenizer.json, bertqa.json).
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Checkpoint folder (Hugging Face layout).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Model folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the int8 graph (dynamic quantization, per-channel weights).
    #[arg(long)]
    pub int8: bool,
    /// Write only the int8 graph (a smaller folder to ship); implies --int8.
    #[arg(long)]
    pub int8_only: bool,
    /// Which dense layers the int8 graph quantizes.
    #[arg(long, value_enum, default_value_t = WeightFormat::Int8)]
    pub int8_mode: WeightFormat,
    /// int8-rowwise, and int8-static and int8-static-gelu-rowwise (which need it): smooth
    /// activation outliers into the weights (SmoothQuant) and, for the static forms, fix each
    /// input's quantization step, with ranges measured on this SQuAD file (use training data,
    /// not the set you score on).
    #[arg(long)]
    pub calibration_data: Option<PathBuf>,
    /// Questions of --calibration-data to measure on, spread evenly over the file.
    #[arg(long, default_value_t = Calibration::DEFAULT_QUESTIONS)]
    pub calibration_questions: usize,
    /// SmoothQuant's migration strength α: the share of the activation range moved into
    /// the weights.
    #[arg(long, default_value_t = Calibration::DEFAULT_ALPHA)]
    pub smoothing_alpha: f32,
    /// int8-static and int8-static-gelu-rowwise: the percentile of smoothed |activation| on
    /// the calibration windows that each input's step covers (larger values saturate).
    #[arg(long, default_value_t = Calibration::DEFAULT_CLIP_PERCENTILE)]
    pub clip_percentile: f64,
    /// Operators of the graph: ONNX Runtime's fused kernels, or portable primitives.
    #[arg(long, value_enum, default_value_t = OpStyle::Primitive)]
    pub ops: OpStyle,
    /// SQuAD version the model was trained for (2.0 models may answer nothing).
    #[arg(long, value_enum, default_value_t = SquadVersion::V1)]
    pub squad_version: SquadVersion,
    /// Window length the model was trained with.
    #[arg(long, default_value_t = 384)]
    pub max_seq_len: usize,
    /// Window overlap.
    #[arg(long, default_value_t = 128)]
    pub doc_stride: usize,
    /// Longest question in tokens.
    #[arg(long, default_value_t = 64)]
    pub max_query_len: usize,
    /// Longest answer in tokens.
    #[arg(long, default_value_t = 30)]
    pub max_answer_len: usize,
}

impl ExportArgs {
    /// The library's options these flags describe.
    fn options(&self) -> anyhow::Result<ExportOptions> {
        if self.int8_mode == WeightFormat::Fp32 {
            anyhow::bail!(
                "--int8-mode must be {}",
                WeightFormat::flag_names(|format| format != WeightFormat::Fp32)
            );
        }
        anyhow::ensure!(
            self.clip_percentile > 0.0 && self.clip_percentile <= 100.0,
            "--clip-percentile must be in (0, 100], not {}",
            self.clip_percentile
        );
        Ok(ExportOptions {
            fp32: !self.int8_only,
            int8: (self.int8 || self.int8_only).then_some(self.int8_mode),
            ops: self.ops,
            window: WindowConfig {
                max_seq_len: self.max_seq_len,
                doc_stride: self.doc_stride,
                max_query_len: self.max_query_len,
            },
            max_answer_len: self.max_answer_len,
            squad_version: self.squad_version,
            calibration: self.calibration_data.clone().map(|data| Calibration {
                data,
                questions: self.calibration_questions,
                alpha: self.smoothing_alpha,
                clip_percentile: self.clip_percentile,
            }),
        })
    }

    /// Writes the model folder and names its graphs.
    pub fn run(self) -> anyhow::Result<()> {
        let options = self.options()?;
        for path in export_model_folder(&self.checkpoint, &self.out, &options)? {
            eprintln!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// Write a randomly initialised checkpoint of any BERT shape (a config.json such as
/// bert-base's): to size hardware, benchmark the engine and rehearse a deployment before a
/// trained model exists. Its answers are meaningless; `export` turns it into a model folder.
#[derive(clap::Args)]
pub struct RandomCheckpointArgs {
    /// A Hugging Face BERT config.json (hidden size, layers, heads, vocabulary, ...).
    #[arg(long)]
    pub config: PathBuf,
    /// tokenizer.json to copy beside the weights (its vocabulary must match the config).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Checkpoint folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the N(0, initializer_range) weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl RandomCheckpointArgs {
    /// Writes the checkpoint.
    pub fn run(self) -> anyhow::Result<()> {
        let config = BertConfig::from_file(&self.config)?;
        write_random_checkpoint(&self.out, &config, &self.tokenizer, self.seed)?;
        eprintln!("wrote {}", self.out.display());
        Ok(())
    }
}

/// Rewrite a model folder's int8 graph so that no CPU can saturate its integer products
/// (graphs exported before weights were pair-bounded can, on CPUs without AVX-512 VNNI, and
/// then answer differently there); the rest of the folder is copied unchanged.
#[derive(clap::Args)]
pub struct MakePortableArgs {
    /// Model folder with model-int8.onnx.
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Folder to write (may be --model-dir itself).
    #[arg(long)]
    pub out: PathBuf,
}

impl MakePortableArgs {
    /// Rewrites the graph and reports what changed.
    pub fn run(self) -> anyhow::Result<()> {
        let report = make_model_folder_portable(&self.model_dir, &self.out)?;
        eprintln!(
            "{}: {} of {} integer products re-quantized; worst 16-bit lane sum {} -> {} (limit {})",
            self.out.display(),
            report.rewritten,
            report.products,
            report.worst_before,
            report.worst_after,
            i16::MAX
        );
        Ok(())
    }
}
