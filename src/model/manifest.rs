//! `bertqa.json`: what a model folder's graphs expect (window geometry, answer length, SQuAD
//! version) and how it was made, so the server and `bertqa predict` window text exactly as the
//! model was trained.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::qa::calibration::ScoreCalibration;
use crate::qa::features::WindowConfig;
use crate::qa::squad::SquadVersion;

/// File name of the fp32 graph in a model folder.
pub const FP32_GRAPH: &str = "model.onnx";

/// File name of the int8 graph in a model folder.
pub const INT8_GRAPH: &str = "model-int8.onnx";

/// The contents of `bertqa.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Window geometry used in training.
    pub window: WindowConfig,
    /// Longest answer in tokens.
    pub max_answer_len: usize,
    /// "1.1" (always answer) or "2.0" (may answer nothing).
    pub squad_version: SquadVersion,
    /// Whether the tokenizer lower-cases (informative).
    pub lowercase: bool,
    /// Graph files present: "model.onnx", and "model-int8.onnx" when exported with int8.
    pub graphs: Vec<String>,
    /// Training-time metrics copied from the checkpoint (`eval.json`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_metrics: Option<serde_json::Value>,
    /// How span logits become the probability of being right (`bertqa calibrate`); without
    /// it a score is the span's probability within its own passage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_calibration: Option<FittedCalibration>,
    /// SQuAD v2.0 models: how far the null score must beat the best span for "no answer"
    /// (the official evaluation's `best_f1_thresh` on dev); 0 when not tuned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_threshold: Option<f32>,
}

/// A [`ScoreCalibration`] with what it was fitted on and how well it holds on questions it
/// was not fitted on, so a model folder says how far its scores can be trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedCalibration {
    /// The parameters.
    #[serde(flatten)]
    pub parameters: ScoreCalibration,
    /// The SQuAD file fitted on (file name).
    pub data: String,
    /// Questions fitted on (their own passage and distractors each).
    pub fit_questions: usize,
    /// Spans fitted on.
    pub fit_samples: usize,
    /// Held-out questions the error below was measured on.
    pub held_out_questions: usize,
    /// Expected calibration error (10 bins, against exact match) of the best answer from the
    /// question's own passage, on the held-out questions.
    pub ece_own_passage: f64,
    /// The same for the best answer across the own passage and its distractors.
    pub ece_with_distractors: f64,
}

impl ModelManifest {
    /// Reads `bertqa.json` from a model folder.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("bertqa.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a bertqa manifest: {e}", path.display()))
    }

    /// True when the folder was exported with the int8 graph.
    pub fn has_int8(&self) -> bool {
        self.graphs.iter().any(|g| g == INT8_GRAPH)
    }

    /// True when the folder has the fp32 graph (the one GPUs run: int8 dynamic quantization
    /// has no CUDA kernels).
    pub fn has_fp32(&self) -> bool {
        self.graphs.iter().any(|g| g == FP32_GRAPH)
    }

    /// The null threshold of a SQuAD v2.0 model (0 when not tuned); `None` for v1.1 models,
    /// which have no trained null answer.
    pub fn trained_null_threshold(&self) -> Option<f32> {
        self.allows_no_answer()
            .then_some(self.null_threshold.unwrap_or(0.0))
    }

    /// True for SQuAD v2.0 models (null answers allowed).
    pub fn allows_no_answer(&self) -> bool {
        self.squad_version == SquadVersion::V2
    }
}
