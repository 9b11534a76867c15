//! Everything a fine-tuning run is told, as one struct: parsed by clap (each flag also has a
//! `BERTQA_*` environment variable) and saved in every checkpoint so `--resume` can refuse to
//! continue a run under different settings.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};

/// Numeric format of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum PrecisionChoice {
    /// bf16 on CUDA, or on a CPU with AVX-512 BF16 / AMX where timing one layer at start finds
    /// it faster; else fp32. A resumed run keeps its checkpoint's format.
    Auto,
    /// fp32 throughout.
    Fp32,
    /// bf16 matrix products with fp32 master weights.
    Bf16,
}

/// Where to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    Auto,
    /// CPU.
    Cpu,
    /// The first CUDA GPU.
    Cuda,
}

/// Fine-tune a BERT checkpoint for extractive question answering on a SQuAD file.
#[derive(Debug, Clone, Parser, Serialize, Deserialize)]
#[command(version, about)]
pub struct TrainConfig {
    /// Pretrained checkpoint folder: config.json, model.safetensors, tokenizer.json.
    #[arg(long, env = "BERTQA_MODEL")]
    pub model: PathBuf,
    /// SQuAD training file (.json or .json.gz, v1.1 or v2.0).
    #[arg(long, env = "BERTQA_TRAIN")]
    pub train: PathBuf,
    /// SQuAD dev file for evaluation and model selection.
    #[arg(long, env = "BERTQA_DEV")]
    pub dev: PathBuf,
    /// Output folder: last/ and best/ checkpoints, log.jsonl, metrics.json.
    #[arg(long, env = "BERTQA_OUT")]
    pub out: PathBuf,
    /// Passes over the training set.
    #[arg(long, default_value_t = 2, env = "BERTQA_EPOCHS")]
    pub epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-5, env = "BERTQA_LR")]
    pub lr: f64,
    /// Windows per micro-batch.
    #[arg(long, default_value_t = 32, env = "BERTQA_BATCH_SIZE")]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1, env = "BERTQA_GRAD_ACCUM")]
    pub grad_accum: usize,
    /// Fraction of the steps spent warming the learning rate up.
    #[arg(long, default_value_t = 0.1, env = "BERTQA_WARMUP_RATIO")]
    pub warmup_ratio: f64,
    /// AdamW weight decay (not applied to biases and LayerNorm).
    #[arg(long, default_value_t = 0.01, env = "BERTQA_WEIGHT_DECAY")]
    pub weight_decay: f64,
    /// Tokens per window.
    #[arg(long, default_value_t = 384, env = "BERTQA_MAX_SEQ_LEN")]
    pub max_seq_len: usize,
    /// Overlap between consecutive windows of a long context.
    #[arg(long, default_value_t = 128, env = "BERTQA_DOC_STRIDE")]
    pub doc_stride: usize,
    /// Longer questions are cut to this many tokens.
    #[arg(long, default_value_t = 64, env = "BERTQA_MAX_QUERY_LEN")]
    pub max_query_len: usize,
    /// Stop after this many optimizer steps in total (also shortens the schedule).
    #[arg(long, env = "BERTQA_MAX_STEPS")]
    pub max_steps: Option<u64>,
    /// End this invocation after this many steps, with a checkpoint, leaving the schedule as is:
    /// for time-boxed runs continued with --resume.
    #[arg(long, env = "BERTQA_STOP_AFTER_STEPS")]
    pub stop_after_steps: Option<u64>,
    /// Unanswerable examples added per answerable question (0.5: one for every other
    /// question): the question paired with another paragraph of its article that holds none
    /// of its answers, labelled `[CLS]`. What SQuAD v2.0's null answer needs when only v1.1
    /// train is at hand; drawn from the seed, so `--resume` rebuilds the same set.
    #[arg(long, default_value_t = 0.0, env = "BERTQA_NEGATIVES")]
    pub negatives: f64,
    /// Train on the first N questions only.
    #[arg(long, env = "BERTQA_TRAIN_LIMIT")]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N dev questions only.
    #[arg(long, env = "BERTQA_DEV_LIMIT")]
    pub dev_limit: Option<usize>,
    /// Also evaluate every N steps (0: only at the end of each epoch).
    #[arg(long, default_value_t = 0, env = "BERTQA_EVAL_EVERY")]
    pub eval_every: u64,
    /// Stop after N evaluations without a dev F1 gain (0: never stop early).
    #[arg(long, default_value_t = 2, env = "BERTQA_PATIENCE")]
    pub patience: usize,
    /// Save the last/ checkpoint every N steps.
    #[arg(long, default_value_t = 200, env = "BERTQA_SAVE_EVERY")]
    pub save_every: u64,
    /// Numeric format.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto, env = "BERTQA_PRECISION")]
    pub precision: PrecisionChoice,
    /// Training device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto, env = "BERTQA_DEVICE")]
    pub device: DeviceChoice,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long, env = "BERTQA_THREADS")]
    pub threads: Option<usize>,
    /// Seed of data order, dropout and the new QA head.
    #[arg(long, default_value_t = 42, env = "BERTQA_SEED")]
    pub seed: u64,
    /// Continue from OUT/last/ (same settings required).
    #[arg(long, env = "BERTQA_RESUME")]
    pub resume: bool,
    /// Start from random weights (config.json only): smoke tests and benchmarks of shapes
    /// for which no pretrained weights exist.
    #[arg(long, env = "BERTQA_RANDOM_INIT")]
    pub random_init: bool,
    /// Padded tokens per evaluation batch.
    #[arg(long, default_value_t = 16_384, env = "BERTQA_EVAL_BATCH_TOKENS")]
    pub eval_batch_tokens: usize,
    /// No progress bar (logs only): for CI and files.
    #[arg(long, env = "BERTQA_QUIET")]
    pub quiet: bool,
}

impl TrainConfig {
    /// The window geometry these flags describe.
    pub fn window(&self) -> crate::qa::features::WindowConfig {
        crate::qa::features::WindowConfig {
            max_seq_len: self.max_seq_len,
            doc_stride: self.doc_stride,
            max_query_len: self.max_query_len,
        }
    }

    /// The settings that shape the loss curve; a resumed run must agree on all of them.
    pub fn curve_fingerprint(&self) -> String {
        format!(
            "epochs={} lr={} batch={} accum={} warmup={} wd={} seq={} stride={} query={} max_steps={:?} train_limit={:?}{} seed={} random_init={}",
            self.epochs,
            self.lr,
            self.batch_size,
            self.grad_accum,
            self.warmup_ratio,
            self.weight_decay,
            self.max_seq_len,
            self.doc_stride,
            self.max_query_len,
            self.max_steps,
            self.train_limit,
            // Only when set, so that runs from before the flag still resume.
            if self.negatives > 0.0 {
                format!(" negatives={}", self.negatives)
            } else {
                String::new()
            },
            self.seed,
            self.random_init
        )
    }
}
