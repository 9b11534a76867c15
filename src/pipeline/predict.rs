//! The one prediction path: a whole set of examples through any model backend. Windows,
//! one ordering rule (windows sorted by length, grouped under a window and token budget), one
//! logits type and one decoder. `bertqa predict` (ONNX Runtime), the trainer's dev evaluation
//! (tch) and `/evaluate` (the service's queue, with its own priorities) all run this; each
//! plugs in as a [`WindowBackend`].

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::qa::batch::{plan_by_length, BatchLogits, PaddedBatch};
use crate::qa::decode::{decode, DecodeConfig, DecodeError, Prediction, WindowLogits};
use crate::qa::features::{FeatureError, Featurizer, Window};
use crate::qa::squad::Example;

/// Why a dataset could not be predicted.
#[derive(Debug, thiserror::Error)]
pub enum PredictError<E: std::error::Error + 'static> {
    /// Windowing failed.
    #[error(transparent)]
    Features(#[from] FeatureError),
    /// The backend failed on a group of windows.
    #[error("model failed: {0}")]
    Backend(#[source] E),
    /// The backend answered a different number of windows than it was given.
    #[error("model returned logits for {got} of {sent} windows")]
    LogitCount {
        /// Windows answered.
        got: usize,
        /// Windows sent.
        sent: usize,
    },
    /// Logits did not fit the windows.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The group budgets and answer search limits.
#[derive(Debug, Clone, Copy)]
pub struct PredictConfig {
    /// Most windows per group handed to the backend.
    pub max_batch_windows: usize,
    /// Most padded tokens per group.
    pub max_batch_tokens: usize,
    /// Answer search limits.
    pub decode: DecodeConfig,
    /// Include the null answer (SQuAD v2.0 models).
    pub with_null: bool,
}

impl Default for PredictConfig {
    fn default() -> Self {
        Self {
            max_batch_windows: 64,
            max_batch_tokens: 16_384,
            decode: DecodeConfig::default(),
            with_null: false,
        }
    }
}

/// A model that turns windows into logits. A group arrives sorted by length, within
/// [`PredictConfig`]'s budgets; the backend answers every window of it, in order.
pub trait WindowBackend {
    /// Why the model failed.
    type Error: std::error::Error + 'static;

    /// Logits of each window of `group` (at least as long as the window).
    fn run(&mut self, group: &[&Window]) -> Result<Vec<WindowLogits>, Self::Error>;

    /// Logits of every group, in order, calling `done` with each group's size as it comes
    /// back. One after another here; a backend that can keep several groups in flight (the
    /// service's queue, whose workers would otherwise wait for the caller between groups)
    /// overrides it.
    fn run_groups(
        &mut self,
        groups: &[Vec<&Window>],
        done: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<WindowLogits>>, Self::Error> {
        groups
            .iter()
            .map(|group| {
                let rows = self.run(group)?;
                done(group.len());
                Ok(rows)
            })
            .collect()
    }
}

/// A backend that runs each group as one padded batch: the engines (tch, ONNX Runtime)
/// behind a `PaddedBatch -> BatchLogits` function.
pub struct BatchRunner<F> {
    run: F,
    pad_id: u32,
}

impl<F> BatchRunner<F> {
    /// Pads each group with `pad_id` and runs it through `run`.
    pub fn new(pad_id: u32, run: F) -> Self {
        Self { run, pad_id }
    }
}

impl<F, E> WindowBackend for BatchRunner<F>
where
    F: FnMut(&PaddedBatch) -> Result<BatchLogits, E>,
    E: std::error::Error + 'static,
{
    type Error = BatchError<E>;

    fn run(&mut self, group: &[&Window]) -> Result<Vec<WindowLogits>, Self::Error> {
        let batch = PaddedBatch::from_windows(group, self.pad_id);
        let logits = (self.run)(&batch).map_err(BatchError::Model)?;
        let cells = batch.padded_tokens();
        if logits.0.len() != cells || logits.1.len() != cells {
            return Err(BatchError::Shape {
                got: logits.0.len().min(logits.1.len()),
                batch: batch.batch_size,
                seq: batch.seq_len,
            });
        }
        Ok(group
            .iter()
            .enumerate()
            .map(|(row, w)| batch.window_logits(&logits, row, w.len()))
            .collect())
    }
}

/// Why a [`BatchRunner`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError<E: std::error::Error + 'static> {
    /// The model itself.
    #[error(transparent)]
    Model(E),
    /// It returned logits of the wrong size.
    #[error("model returned {got} logits for a {batch}x{seq} batch")]
    Shape {
        /// Values returned.
        got: usize,
        /// Batch size.
        batch: usize,
        /// Sequence length.
        seq: usize,
    },
}

/// Predicts every example; `progress` is told (windows done, windows in all) after each group.
pub fn predict_examples<B, P>(
    examples: &[Example],
    featurizer: &Featurizer,
    config: &PredictConfig,
    backend: &mut B,
    mut progress: P,
) -> Result<Vec<Prediction>, PredictError<B::Error>>
where
    B: WindowBackend,
    P: FnMut(usize, usize),
{
    let windows: Vec<Vec<Window>> = examples
        .iter()
        .map(|e| featurizer.windows(&e.question, &e.context))
        .collect::<Result<_, _>>()?;
    let flat: Vec<&Window> = windows.iter().flatten().collect();
    let lengths: Vec<usize> = flat.iter().map(|w| w.len()).collect();
    let mut logits: Vec<WindowLogits> = vec![WindowLogits::default(); flat.len()];
    let plans = plan_by_length(&lengths, config.max_batch_windows, config.max_batch_tokens);
    let groups: Vec<Vec<&Window>> = plans
        .iter()
        .map(|plan| plan.iter().map(|&i| flat[i]).collect())
        .collect();
    let mut done = 0;
    let mut report = |windows: usize| {
        done += windows;
        progress(done, flat.len());
    };
    let answered = backend
        .run_groups(&groups, &mut report)
        .map_err(PredictError::Backend)?;
    if answered.len() != plans.len() {
        return Err(PredictError::LogitCount {
            got: answered.iter().map(Vec::len).sum(),
            sent: flat.len(),
        });
    }
    for (plan, rows) in plans.iter().zip(answered) {
        if rows.len() != plan.len() {
            return Err(PredictError::LogitCount {
                got: rows.len(),
                sent: plan.len(),
            });
        }
        for (&i, row) in plan.iter().zip(rows) {
            logits[i] = row;
        }
    }
    let mut next = 0;
    let mut predictions = Vec::with_capacity(examples.len());
    for (example, example_windows) in examples.iter().zip(&windows) {
        let rows = &logits[next..next + example_windows.len()];
        next += example_windows.len();
        predictions.push(decode(
            &example.context,
            example_windows,
            rows,
            &config.decode,
            config.with_null,
        )?);
    }
    Ok(predictions)
}

/// Prediction files as the official scripts read them: id → answer text, and for v2.0
/// models id → null odds (how much more the model believes "no answer" than its best span).
pub fn prediction_files(
    examples: &[Example],
    predictions: &[Prediction],
    null_threshold: Option<f32>,
) -> (HashMap<String, String>, Map<String, Value>) {
    let mut answers = HashMap::with_capacity(examples.len());
    let mut null_odds = Map::new();
    for (example, prediction) in examples.iter().zip(predictions) {
        if null_threshold.is_some() {
            let margin = f64::from(prediction.null_margin());
            null_odds.insert(example.id.clone(), Value::from(margin));
        }
        let text = prediction.chosen_text(null_threshold).to_string();
        answers.insert(example.id.clone(), text);
    }
    (answers, null_odds)
}
