//! The one way an evaluation runs, for `POST /evaluate` and for jobs: its questions go
//! through the prediction path in chunks with the service's queue as backend (background
//! priority, so `/answer` goes first), each chunk scored as it ends (the running EM/F1 a
//! progress bar shows), then the official scores of the whole file and the report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, OwnedSemaphorePermit};
use utoipa::ToSchema;

use super::super::error::ApiError;
use super::super::{off_runtime, AppState};
use super::backend::QueueBackend;
use super::upload::Upload;
use crate::pipeline::predict::{predict_examples, PredictConfig, PredictError};
use crate::qa::decode::DecodeConfig;
use crate::qa::squad::metrics::{self, Scores};
use crate::qa::squad::report::{passages_of, EvaluationReport, QuestionResult};
use crate::qa::squad::schema::SquadVersion;

/// Scores of one evaluation, as the official script computes them (percent).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluateResponse {
    /// Exact Match.
    pub exact_match: f64,
    /// Token F1.
    pub f1: f64,
    /// Questions scored.
    pub total: usize,
    /// v2.0: Exact Match on answerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_ans_exact: Option<f64>,
    /// v2.0: F1 on answerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_ans_f1: Option<f64>,
    /// v2.0: answerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_ans_total: Option<usize>,
    /// v2.0: Exact Match on unanswerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_ans_exact: Option<f64>,
    /// v2.0: F1 on unanswerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_ans_f1: Option<f64>,
    /// v2.0: unanswerable questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_ans_total: Option<usize>,
    /// Questions answered per second, scoring included (receiving the file not).
    pub questions_per_second: f64,
    /// Wall time of answering and scoring.
    pub duration_ms: u64,
    /// Question id -> predicted answer (with `predictions=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictions: Option<HashMap<String, String>>,
}

/// What a finished evaluation found.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationResult {
    /// The official scores.
    pub scores: EvaluateResponse,
    /// Every question, the worst ones, and the breakdowns.
    pub report: EvaluationReport,
}

impl EvaluationResult {
    /// Question id -> predicted answer, as the official prediction file has it (of questions
    /// that share an id, the later one).
    pub fn answers(&self) -> HashMap<String, String> {
        answers_of(&self.report.questions)
    }
}

fn answers_of(results: &[QuestionResult]) -> HashMap<String, String> {
    results
        .iter()
        .map(|r| (r.id.clone(), r.prediction.clone()))
        .collect()
}

/// Why an evaluation ended without scores.
#[derive(Debug)]
pub enum Ended {
    /// It was cancelled (`DELETE`, the client left, or shutdown).
    Cancelled,
    /// It failed.
    Failed(ApiError),
}

/// Stops an evaluation at once: queued windows are dropped (the batcher drops a job whose
/// waiter is gone) and no further chunk is sent.
#[derive(Debug, Clone)]
pub struct Cancel(Arc<watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Cancel {
    /// Asks the evaluation to stop.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        let mut seen = self.0.subscribe();
        let _ = seen.wait_for(|cancelled| *cancelled).await;
    }
}

/// What an evaluation has done so far, shared with whoever watches it: questions done and
/// the sums of their scores (the questions themselves stay with the evaluation).
#[derive(Debug)]
pub struct Progress {
    total: usize,
    done: Mutex<Sums>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    questions: usize,
    exact_match: f64,
    f1: f64,
}

/// A look at [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressSnapshot {
    /// Questions answered and scored.
    pub done: usize,
    /// Questions in all.
    pub total: usize,
    /// Mean Exact Match of the questions done (percent), none before the first chunk.
    pub exact_match: Option<f64>,
    /// Mean F1 of the questions done (percent).
    pub f1: Option<f64>,
}

impl Progress {
    /// No question of `total` done yet.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            done: Mutex::new(Sums::default()),
        }
    }

    fn record(&self, chunk: &[QuestionResult]) {
        let mut sums = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        sums.questions += chunk.len();
        sums.exact_match += chunk.iter().map(|r| r.exact_match).sum::<f64>();
        sums.f1 += chunk.iter().map(|r| r.f1).sum::<f64>();
    }

    /// Questions done and their running scores.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let sums = *self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let done = sums.questions;
        let mean = |sum: f64| (done > 0).then(|| sum / done as f64);
        ProgressSnapshot {
            done,
            total: self.total,
            exact_match: mean(sums.exact_match),
            f1: mean(sums.f1),
        }
    }
}

/// Batches' worth of windows in one group an evaluation sends to the queue: enough to keep
/// the inference thread's batches full, few enough that an evaluation never floods the queue.
const GROUP_BATCHES: usize = 4;

/// Questions per scored chunk: about 20 steps of progress, each at least a batch's worth (16
/// questions) and at most 1,024 (a chunk ends in a part-filled batch, so fewer is faster).
fn chunk_size(questions: usize) -> usize {
    questions.div_ceil(20).clamp(16, 1024)
}

/// Runs `upload` to the end (or until `cancel`), recording each chunk in `progress`. Holds
/// `only_one` (the one-evaluation permit) until its work has really ended.
pub async fn run(
    state: &Arc<AppState>,
    upload: Upload,
    progress: Arc<Progress>,
    cancel: Cancel,
    only_one: OwnedSemaphorePermit,
) -> Result<EvaluationResult, Ended> {
    let outcome = evaluate(state, upload, progress, cancel.clone(), only_one)
        .await
        .map_err(|error| {
            if cancel.is_cancelled() {
                Ended::Cancelled
            } else {
                Ended::Failed(error)
            }
        });
    let label = match &outcome {
        Ok(_) => "ok",
        Err(Ended::Cancelled) => "cancelled",
        Err(Ended::Failed(_)) => "error",
    };
    state.metrics.evaluations.with_label_values(&[label]).inc();
    if let Ok(result) = &outcome {
        state
            .metrics
            .last_exact_match
            .set(result.scores.exact_match);
        state.metrics.last_f1.set(result.scores.f1);
        tracing::info!(
            questions = result.scores.total,
            exact_match = result.scores.exact_match,
            f1 = result.scores.f1,
            seconds = result.scores.duration_ms as f64 / 1e3,
            "evaluation finished"
        );
    }
    outcome
}

/// Every question through [`predict_examples`], chunk by chunk, then the official scores and
/// the report: all on the blocking pool, none of it on the async workers.
async fn evaluate(
    state: &Arc<AppState>,
    upload: Upload,
    progress: Arc<Progress>,
    cancel: Cancel,
    only_one: OwnedSemaphorePermit,
) -> Result<EvaluationResult, ApiError> {
    let started = Instant::now();
    let config = PredictConfig {
        max_batch_windows: GROUP_BATCHES * state.config.max_batch_size(),
        max_batch_tokens: GROUP_BATCHES * state.config.max_batch_tokens,
        decode: DecodeConfig {
            max_answer_len: state.answer_len,
            ..DecodeConfig::default()
        },
        with_null: state.null_threshold.is_some(),
    };
    let mut backend = QueueBackend::new(
        state.batcher.clone(),
        tokio::runtime::Handle::current(),
        cancel,
        only_one,
    );
    let featurizer = state.featurizer.clone();
    let null_threshold = state.null_threshold;
    off_runtime(move || {
        let examples = &upload.examples;
        let version = upload.dataset.version_kind();
        // A v1.1 file says every question has an answer: a v2.0 model is scored on it with its
        // best spans, as a v1.1 model is; on a v2.0 file it may abstain.
        let null_threshold = null_threshold.filter(|_| version == SquadVersion::V2);
        let (passages, passage_of) = passages_of(examples);
        let size = chunk_size(examples.len());
        let mut results = Vec::with_capacity(examples.len());
        for (n, chunk) in examples.chunks(size).enumerate() {
            let predictions =
                predict_examples(chunk, &featurizer, &config, &mut backend, |_, _| {}).map_err(
                    |e| match e {
                        PredictError::Backend(api) => api,
                        PredictError::Features(e) => ApiError::Validation(e.to_string()),
                        other => ApiError::Internal(other.to_string()),
                    },
                )?;
            let first = n * size;
            let scored = chunk
                .iter()
                .zip(&predictions)
                .enumerate()
                .map(|(i, (example, p))| {
                    let chosen = p.chosen(null_threshold);
                    let answer = (
                        chosen.map_or("", |a| a.text.as_str()),
                        chosen.map(|a| a.start),
                    );
                    QuestionResult::new(example, passage_of[first + i], answer, version)
                });
            let start = results.len();
            results.extend(scored);
            progress.record(&results[start..]);
        }
        let scores = metrics::score(&upload.dataset, &answers_of(&results), None, 1.0)
            .map_err(|e| ApiError::Validation(e.to_string()))?;
        let contexts = passages.iter().map(|p| p.to_string()).collect();
        Ok(EvaluationResult {
            scores: official(&scores, started),
            report: EvaluationReport::new(contexts, results),
        })
    })
    .await?
}

fn official(scores: &Scores, started: Instant) -> EvaluateResponse {
    let overall = scores.overall();
    let (has_answer, no_answer) = match scores {
        Scores::V1(_) => (None, None),
        Scores::V2 {
            has_answer,
            no_answer,
            ..
        } => (*has_answer, *no_answer),
    };
    let elapsed = started.elapsed();
    EvaluateResponse {
        exact_match: overall.exact,
        f1: overall.f1,
        total: overall.total,
        has_ans_exact: has_answer.map(|s| s.exact),
        has_ans_f1: has_answer.map(|s| s.f1),
        has_ans_total: has_answer.map(|s| s.total),
        no_ans_exact: no_answer.map(|s| s.exact),
        no_ans_f1: no_answer.map(|s| s.f1),
        no_ans_total: no_answer.map(|s| s.total),
        questions_per_second: overall.total as f64 / elapsed.as_secs_f64().max(1e-9),
        duration_ms: elapsed.as_millis() as u64,
        predictions: None,
    }
}
