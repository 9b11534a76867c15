//! `bertqa.json`: what a model folder's graphs expect (window geometry, answer length, SQuAD
//! version) and how it was made, so the server and `bertqa predict` window text exactly as the
//! model was trained.

use std::path::Path;

use serde::{Deserialize, Serialize};

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

    /// True for SQuAD v2.0 models (null answers allowed).
    pub fn allows_no_answer(&self) -> bool {
        self.squad_version == SquadVersion::V2
    }
}
