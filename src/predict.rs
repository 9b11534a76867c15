//! A whole dataset through any model backend: windows, length-sorted batches, logits, decoded
//! answers. The trainer's dev evaluation, `bertqa predict` and `/evaluate` all run this, with
//! their own backend behind the `run` callback.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::batch::{plan_by_length, PaddedBatch};
use crate::decode::{decode, DecodeConfig, DecodeError, Prediction, WindowLogits};
use crate::features::{FeatureError, Featurizer};
use crate::squad::Example;

/// Why a dataset could not be predicted.
#[derive(Debug, thiserror::Error)]
pub enum PredictError<E: std::error::Error + 'static> {
    /// Windowing failed.
    #[error(transparent)]
    Features(#[from] FeatureError),
    /// The backend failed on a batch.
    #[error("model failed: {0}")]
    Backend(#[source] E),
    /// The backend returned logits of the wrong size.
    #[error("model returned {got} logits for a {batch}x{seq} batch")]
    LogitShape {
        /// Values returned.
        got: usize,
        /// Batch size.
        batch: usize,
        /// Sequence length.
        seq: usize,
    },
    /// Logits did not fit the windows.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Batch budgets and answer search limits.
#[derive(Debug, Clone, Copy)]
pub struct PredictConfig {
    /// Most windows per batch.
    pub max_batch_windows: usize,
    /// Most padded tokens per batch.
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

/// Start and end logits of a batch, each row-major `[B, L]`.
pub type BatchLogits = (Vec<f32>, Vec<f32>);

/// Predicts every example; `progress` is told (windows done, windows in all) after each batch.
pub fn predict_examples<E, R, P>(
    examples: &[Example],
    featurizer: &Featurizer,
    config: &PredictConfig,
    mut run: R,
    mut progress: P,
) -> Result<Vec<Prediction>, PredictError<E>>
where
    E: std::error::Error + 'static,
    R: FnMut(&PaddedBatch) -> Result<BatchLogits, E>,
    P: FnMut(usize, usize),
{
    let pad_id = featurizer.pad_id();
    let windows: Vec<Vec<crate::features::Window>> = examples
        .iter()
        .map(|e| featurizer.windows(&e.question, &e.context))
        .collect::<Result<_, _>>()?;
    let flat: Vec<(usize, usize)> = windows
        .iter()
        .enumerate()
        .flat_map(|(e, ws)| (0..ws.len()).map(move |w| (e, w)))
        .collect();
    let lengths: Vec<usize> = flat.iter().map(|&(e, w)| windows[e][w].len()).collect();
    let mut logits: Vec<Option<BatchLogits>> = vec![None; flat.len()];
    let mut done = 0;
    for plan in plan_by_length(&lengths, config.max_batch_windows, config.max_batch_tokens) {
        let members: Vec<&crate::features::Window> = plan
            .iter()
            .map(|&i| &windows[flat[i].0][flat[i].1])
            .collect();
        let batch = PaddedBatch::from_windows(&members, pad_id);
        let (start, end) = run(&batch).map_err(PredictError::Backend)?;
        let cells = batch.padded_tokens();
        if start.len() != cells || end.len() != cells {
            return Err(PredictError::LogitShape {
                got: start.len().min(end.len()),
                batch: batch.batch_size,
                seq: batch.seq_len,
            });
        }
        for (row, &i) in plan.iter().enumerate() {
            let span = row * batch.seq_len..(row + 1) * batch.seq_len;
            logits[i] = Some((start[span.clone()].to_vec(), end[span].to_vec()));
        }
        done += plan.len();
        progress(done, flat.len());
    }
    let mut next = 0;
    let mut predictions = Vec::with_capacity(examples.len());
    for (example, example_windows) in examples.iter().zip(&windows) {
        let rows: Vec<WindowLogits> = (next..next + example_windows.len())
            .map(|i| {
                let (s, e) = logits[i]
                    .as_ref()
                    .map_or((&[][..], &[][..]), |(s, e)| (&s[..], &e[..]));
                WindowLogits { start: s, end: e }
            })
            .collect();
        next += example_windows.len();
        predictions.push(decode(
            &example.context,
            example_windows,
            &rows,
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
        let text = match null_threshold {
            None => prediction.best_text().to_string(),
            Some(threshold) => {
                let (text, margin) = prediction.best_with_null(threshold);
                null_odds.insert(example.id.clone(), Value::from(f64::from(margin)));
                text.to_string()
            }
        };
        answers.insert(example.id.clone(), text);
    }
    (answers, null_odds)
}
