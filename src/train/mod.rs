//! Fine-tuning with libtorch (feature `train`): the model, its checkpoints, batching, the
//! optimizer and the training loop. The server never links this.

pub mod adamw_pass;
pub mod bert;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dropout;
pub mod ending;
pub mod evaluate;
pub mod log;
pub mod mkl_paths;
pub mod omp_team;
pub mod optim;
pub mod precision;
pub mod setup;
pub mod state;
pub mod trainer;

use thiserror::Error;

/// Why a training run stopped with an error; every variant says what to change.
#[derive(Debug, Error)]
pub enum TrainError {
    /// Settings that cannot work.
    #[error("invalid settings: {0}")]
    Config(String),
    /// config.json problems.
    #[error(transparent)]
    ModelConfig(#[from] crate::model::ConfigError),
    /// A SQuAD file could not be read.
    #[error(transparent)]
    Data(#[from] crate::qa::squad::LoadError),
    /// Tokenizer or window problems.
    #[error(transparent)]
    Features(#[from] crate::qa::features::FeatureError),
    /// Weights could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// Writing outputs failed.
    #[error("cannot write output: {0}")]
    Io(String),
    /// `--resume` cannot continue.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// Evaluation failed.
    #[error("evaluation failed: {0}")]
    Eval(String),
    /// libtorch failed (e.g. out of memory).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Held by every unit test that seeds or draws from libtorch's one process-wide generator:
/// tests run side by side, and a draw of one between another's seed and its draws would change
/// the masks that test expects.
#[cfg(test)]
pub(crate) fn libtorch_generator() -> std::sync::MutexGuard<'static, ()> {
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
