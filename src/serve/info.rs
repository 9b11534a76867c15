//! `GET /info`: what this server serves and how: the model and its architecture, the graph and
//! its precision, window geometry, batching limits, the device and the CPU extensions ONNX
//! Runtime can use, and the build. Operators compare replicas with it, and the same facts are
//! the labels of the `bertqa_info` metric so dashboards can group by them.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::config::ServeConfig;
use super::AppState;
use crate::model::manifest::ModelManifest;
use crate::model::short_name;
use crate::qa::features::WindowConfig;
use crate::runtime::cpu::CpuFeatures;
use crate::runtime::engine::Engine;

/// The model's shape, read from the served graph.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Architecture {
    /// Transformer layers.
    pub layers: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Position embeddings (longest possible window).
    pub max_positions: usize,
    /// Parameters stored in the graph.
    pub parameters: u64,
}

/// The graph file served.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GraphInfo {
    /// File name in the model folder.
    pub file: String,
    /// Weight format written in the graph (`fp32`, `int8`, `int8rowwise`, ...).
    pub weights: String,
    /// `int8` or `fp32` matrix products.
    pub precision: String,
    /// Sites of the graph bertqa's fused CPU kernels run: activation quantization sites
    /// (`--kernels fused`) and, with `fused-attention`, each layer's attention; 0 when ONNX
    /// Runtime runs every operator as the file writes it.
    pub fused_sites: usize,
}

/// Limits of the batching queue and of requests.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// Most windows in one inference batch.
    pub max_batch_size: usize,
    /// Most padded tokens in one inference batch.
    pub max_batch_tokens: usize,
    /// How long a lone window waits for company, in ms.
    pub max_batch_delay_ms: u64,
    /// `/answer` windows that may wait for inference.
    pub max_queued_windows: usize,
    /// Questions in one batch-form `/answer` request.
    pub max_client_batch_size: usize,
    /// Longest context (each passage), in characters.
    pub max_context_chars: usize,
    /// Passages one question may bring (`contexts`).
    pub max_contexts: usize,
    /// Questions handled at once.
    pub max_concurrent_questions: usize,
}

/// What an answer's `score` means for the model served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// The probability that the answer is right, comparable across passages and requests.
    Calibrated,
    /// The span's probability among its own passage's top spans.
    PassageProbability,
}

/// What this server serves and how.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceInfo {
    /// The model folder's name.
    pub model: String,
    /// SQuAD version the model was trained for (`1.1`, or `2.0` with no-answers).
    pub squad_version: String,
    /// The model's shape.
    pub architecture: Architecture,
    /// The graph served.
    pub graph: GraphInfo,
    /// Window geometry in force.
    #[schema(value_type = Object)]
    pub window: WindowConfig,
    /// Default longest answer, in tokens.
    pub max_answer_len: usize,
    /// What an answer's `score` is: `calibrated` (the probability of being right, fitted by
    /// `bertqa calibrate`) or `passage_probability` (within its own passage only).
    pub score: ScoreKind,
    /// The calibration's held-out expected calibration error (10 bins, against exact match),
    /// best answer across a question's own passage and distractors; absent when uncalibrated.
    pub score_calibration_error: Option<f64>,
    /// SQuAD v2.0 models: the null threshold in force; absent for v1.1 models.
    pub null_threshold: Option<f32>,
    /// Batching and request limits.
    pub limits: Limits,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Inference workers (ONNX Runtime sessions side by side).
    pub workers: usize,
    /// ONNX Runtime intra-op threads per worker (absent: all cores).
    pub threads: Option<usize>,
    /// Threads of the session that runs a batch alone when it is all the work there is
    /// (absent: no such session, every batch runs on a worker).
    pub lone_batch_threads: Option<usize>,
    /// Instruction-set extensions of this CPU that ONNX Runtime's kernels use.
    pub cpu_features: Vec<String>,
    /// bertqa version.
    pub version: String,
    /// Git commit of the build.
    pub commit: String,
}

impl ServiceInfo {
    /// The facts of a server loaded with these parts.
    pub fn new(
        config: &ServeConfig,
        manifest: &ModelManifest,
        engine: &Engine,
        window: WindowConfig,
    ) -> Self {
        let summary = engine.summary();
        Self {
            model: short_name(&config.model_dir),
            squad_version: manifest.squad_version.as_str().into(),
            score: if manifest.score_calibration.is_some() {
                ScoreKind::Calibrated
            } else {
                ScoreKind::PassageProbability
            },
            score_calibration_error: manifest
                .score_calibration
                .as_ref()
                .map(|c| c.ece_with_distractors),
            null_threshold: manifest.trained_null_threshold(),
            architecture: Architecture {
                layers: summary.layers,
                hidden_size: summary.hidden_size,
                vocab_size: summary.vocab_size,
                max_positions: summary.max_positions,
                parameters: summary.parameters,
            },
            graph: GraphInfo {
                file: short_name(engine.graph()),
                weights: summary.weights.clone(),
                precision: if summary.is_int8() { "int8" } else { "fp32" }.into(),
                fused_sites: engine.fused_sites(),
            },
            window,
            max_answer_len: config.answer_len(manifest),
            limits: Limits {
                max_batch_size: config.max_batch_size(),
                max_batch_tokens: config.max_batch_tokens,
                max_batch_delay_ms: config.max_batch_delay_ms,
                max_queued_windows: config.max_queued_windows,
                max_client_batch_size: config.max_client_batch_size,
                max_context_chars: config.max_context_chars,
                max_contexts: config.max_contexts,
                max_concurrent_questions: config.max_concurrent_questions,
            },
            device: format!("{:?}", config.device).to_lowercase(),
            workers: config.workers(),
            threads: config.threads_per_worker(),
            lone_batch_threads: config.lone_batch_threads(),
            cpu_features: CpuFeatures::detect()
                .names()
                .into_iter()
                .map(String::from)
                .collect(),
            version: env!("CARGO_PKG_VERSION").into(),
            commit: env!("BERTQA_GIT_COMMIT").into(),
        }
    }

    /// Values of the `bertqa_info` labels, in [`crate::serve::metrics::INFO_LABELS`] order.
    pub fn labels(&self) -> [String; 12] {
        [
            self.model.clone(),
            self.squad_version.clone(),
            self.graph.file.clone(),
            self.graph.weights.clone(),
            self.graph.precision.clone(),
            self.device.clone(),
            self.workers.to_string(),
            self.threads.map_or_else(|| "all".into(), |t| t.to_string()),
            self.window.max_seq_len.to_string(),
            self.cpu_features.join(","),
            self.version.clone(),
            self.commit.clone(),
        ]
    }
}

/// What this server serves and how.
#[utoipa::path(get, path = "/info", responses((status = 200, body = ServiceInfo)), tag = "ops")]
pub async fn info(State(state): State<Arc<AppState>>) -> Json<ServiceInfo> {
    Json(state.info.clone())
}
