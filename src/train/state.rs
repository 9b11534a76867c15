//! Checkpoint folders of a run: `last/` (everything needed to resume) and `best/` (the model
//! with the best dev F1 so far). Each is a Hugging Face-style model folder (`config.json`,
//! `model.safetensors`, `tokenizer.json`) that `transformers` and `bertqa export` read.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Tensor};

use super::checkpoint::{save_weights, write_tensors, CheckpointError};
use super::optim::AdamW;
use super::precision::Precision;
use super::TrainError;
use crate::model::BertConfig;

/// One dev evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalRecord {
    /// Optimizer step it was taken at.
    pub step: u64,
    /// Exact Match, percent.
    pub exact: f64,
    /// F1, percent.
    pub f1: f64,
    /// Questions evaluated.
    pub questions: usize,
    /// Seconds it took.
    pub seconds: f64,
}

/// Where a run is, saved in `last/trainer_state.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Micro-batches of the current epoch already consumed.
    pub batch_in_epoch: usize,
    /// Steps the schedule runs for.
    pub total_steps: u64,
    /// Every evaluation so far.
    pub evals: Vec<EvalRecord>,
    /// Evaluations since the best one.
    pub evals_without_gain: usize,
    /// Windows trained on.
    pub windows_seen: u64,
    /// Seconds spent training (evaluation excluded).
    pub train_seconds: f64,
    /// `TrainConfig::curve_fingerprint` of the run.
    pub fingerprint: String,
    /// The format the run trains in, kept by a resume under `--precision auto` (absent in
    /// checkpoints from before it was recorded).
    #[serde(default)]
    pub precision: Option<Precision>,
}

/// What identifies a saved state: step, position in the epoch, and evaluations made.
type SavedMark = (u64, usize, usize, usize);

impl TrainerState {
    fn mark(&self) -> SavedMark {
        (self.step, self.epoch, self.batch_in_epoch, self.evals.len())
    }

    /// The best evaluation so far.
    pub fn best(&self) -> Option<&EvalRecord> {
        self.evals
            .iter()
            .fold(None, |best: Option<&EvalRecord>, e| match best {
                Some(b) if b.f1 >= e.f1 => Some(b),
                _ => Some(e),
            })
    }
}

/// The files of a run's output folder.
pub struct RunFolder {
    root: PathBuf,
    /// The state `last/` holds, so an unchanged state is not written twice (an epoch end and
    /// the end of the run often coincide).
    last_saved: Cell<Option<SavedMark>>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io(format!("{}: {e}", path.display()))
}

impl RunFolder {
    /// Creates `out` if needed.
    pub fn create(root: &Path) -> Result<Self, TrainError> {
        std::fs::create_dir_all(root).map_err(|e| io_error(root, e))?;
        Ok(Self {
            root: root.to_path_buf(),
            last_saved: Cell::new(None),
        })
    }

    /// The folder itself.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes a model folder (weights, config, tokenizer) at `name/`.
    pub fn save_model(
        &self,
        name: &str,
        vs: &VarStore,
        config: &BertConfig,
        tokenizer: &Path,
    ) -> Result<PathBuf, TrainError> {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        save_weights(vs, &dir.join("model.safetensors"))?;
        let mut config_json = serde_json::to_value(config).map_err(|e| io_error(&dir, e))?;
        config_json["architectures"] = serde_json::json!(["BertForQuestionAnswering"]);
        write_json(&dir.join("config.json"), &config_json)?;
        std::fs::copy(tokenizer, dir.join("tokenizer.json")).map_err(|e| io_error(tokenizer, e))?;
        Ok(dir)
    }

    /// Writes `last/`: the model, the optimizer moments and the state (nothing when `last/`
    /// already holds this state).
    pub fn save_last(
        &self,
        vs: &VarStore,
        optimizer: &AdamW,
        state: &TrainerState,
        config: &BertConfig,
        tokenizer: &Path,
    ) -> Result<(), TrainError> {
        if self.last_saved.get() == Some(state.mark()) {
            return Ok(());
        }
        let dir = self.save_model("last", vs, config, tokenizer)?;
        write_tensors(
            &optimizer.state_tensors(),
            &dir.join("optimizer.safetensors"),
        )?;
        write_json(&dir.join("trainer_state.json"), state)?;
        self.last_saved.set(Some(state.mark()));
        Ok(())
    }

    /// Reads `last/` back into `vs` and `optimizer`; returns the state.
    pub fn load_last(
        &self,
        vs: &VarStore,
        optimizer: &mut AdamW,
    ) -> Result<TrainerState, TrainError> {
        let dir = self.path("last");
        let state_path = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&state_path).map_err(|e| {
            TrainError::Resume(format!(
                "no checkpoint to resume at {}: {e}",
                state_path.display()
            ))
        })?;
        let state: TrainerState =
            serde_json::from_str(&text).map_err(|e| io_error(&state_path, e))?;
        let report = super::checkpoint::load_weights(vs, &dir.join("model.safetensors"))?;
        if !report.missing.is_empty() {
            return Err(TrainError::Resume(format!(
                "checkpoint lacks {:?}",
                report.missing
            )));
        }
        let moments = Tensor::read_safetensors(dir.join("optimizer.safetensors")).map_err(|e| {
            CheckpointError::Io {
                path: dir.display().to_string(),
                message: e.to_string(),
            }
        })?;
        let missing = optimizer.load_state_tensors(moments, state.step);
        if !missing.is_empty() {
            return Err(TrainError::Resume(format!(
                "optimizer state lacks {} tensors, e.g. {}",
                missing.len(),
                missing[0]
            )));
        }
        self.last_saved.set(Some(state.mark()));
        Ok(state)
    }
}

/// Writes pretty JSON atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).map_err(|e| io_error(path, e))?;
    std::fs::write(&tmp, text + "\n").map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}
