//! How a training run ends: why its step loop stopped, what it reports (`metrics.json`), and
//! the servable model folder it exports from its best checkpoint.

use serde::Serialize;

use super::config::TrainConfig;
use super::data::DataStats;
use super::precision::Precision;
use super::state::{EvalRecord, RunFolder};
use super::TrainError;
use crate::onnx::bert::WeightFormat;
use crate::pipeline::calibrate::Calibration;
use crate::pipeline::export::{export_model_folder, ExportOptions};
use crate::qa::squad::SquadVersion;

/// What a run did, also written to `metrics.json` when it finishes.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// False when stopped by Ctrl-C or `--stop-after-steps` (resume to continue).
    pub finished: bool,
    /// Why it stopped.
    pub stop_reason: String,
    /// Optimizer steps done in total.
    pub steps: u64,
    /// Steps the schedule runs for.
    pub total_steps: u64,
    /// Best dev evaluation.
    pub best: Option<EvalRecord>,
    /// Every dev evaluation.
    pub evals: Vec<EvalRecord>,
    /// Training windows per second (evaluation excluded).
    pub windows_per_second: f64,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// What the training file became.
    pub data: DataStats,
    /// The format the matrix products ran in.
    pub precision: Precision,
    /// Why that format: the flag, the checkpoint resumed, or the timing `--precision auto`
    /// made (with its figures), so a slow run's record says whether a choice caused it.
    pub precision_reason: String,
    /// "cpu" or "cuda".
    pub device: String,
}

/// Exports `best/` to the servable model folder `model/`: the fp32 graph and the int8 form
/// the default model ships, calibrated on the training file.
pub(super) fn export_best(
    config: &TrainConfig,
    folder: &RunFolder,
    squad_version: SquadVersion,
) -> Result<(), TrainError> {
    let best = folder.path("best");
    if !best.join("model.safetensors").is_file() {
        return Ok(());
    }
    let options = ExportOptions {
        window: config.window(),
        squad_version,
        // The default model's form: static steps with the GELU output per row, 1.2x the
        // all-per-row graph at the same F1; static steps everywhere agree with fp32 on too few
        // answers (bench/RESULTS.md, "Static steps with the GELU output per token").
        int8: Some(WeightFormat::Int8StaticGeluRowwise),
        calibration: Some(Calibration::on(config.train.clone())),
        ..ExportOptions::default()
    };
    export_model_folder(&best, &folder.path("model"), &options)
        .map_err(|e| TrainError::Io(format!("export of best/: {e}")))?;
    Ok(())
}

/// Why the step loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Every planned step is done.
    Schedule,
    /// `--patience` evaluations without an F1 gain.
    EarlyStop,
    /// `--stop-after-steps` reached: resume to continue.
    Budget,
    /// Ctrl-C: resume to continue.
    Interrupted,
}

impl Ending {
    /// Whether the run is over (evaluated, exported) rather than paused.
    pub(super) fn finished(self) -> bool {
        matches!(self, Ending::Schedule | Ending::EarlyStop)
    }

    /// What `metrics.json` and the summary say stopped the run (`patience`: `--patience`).
    pub(super) fn reason(self, patience: usize) -> String {
        match self {
            Ending::Schedule => "schedule complete".into(),
            Ending::EarlyStop => format!("early stop: no F1 gain in {patience} evaluations"),
            Ending::Budget => "--stop-after-steps reached".into(),
            Ending::Interrupted => "interrupted".into(),
        }
    }
}
