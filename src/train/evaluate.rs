//! Dev-set evaluation during training: the tch model as the backend of the shared prediction
//! flow (`predict::predict_examples`), scored by the official metrics.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::bert::BertForQuestionAnswering;
use super::data::to_tensors;
use super::state::EvalRecord;
use super::TrainError;
use crate::pipeline::predict::{predict_examples, prediction_files, BatchRunner, PredictConfig};
use crate::qa::batch::{BatchLogits, PaddedBatch};
use crate::qa::features::Featurizer;
use crate::qa::squad::{metrics, Example, SquadFile, SquadVersion};

/// The dev questions a run is judged on.
pub struct DevSet {
    /// The (possibly truncated) file, for scoring.
    pub file: SquadFile,
    /// Its questions.
    pub examples: Vec<Example>,
}

impl DevSet {
    /// The first `limit` questions of `file` (all when `None`).
    pub fn new(file: SquadFile, limit: Option<usize>) -> Self {
        let file = match limit {
            Some(n) => file.truncated(n),
            None => file,
        };
        let examples = file.examples();
        Self { file, examples }
    }
}

fn logits_to_vec(t: &Tensor) -> Result<Vec<f32>, tch::TchError> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))
}

/// Predicts and scores the dev set at `step`.
pub fn evaluate(
    model: &BertForQuestionAnswering,
    featurizer: &Featurizer,
    dev: &DevSet,
    device: Device,
    batch_tokens: usize,
    step: u64,
) -> Result<EvalRecord, TrainError> {
    let started = Instant::now();
    let v2 = dev.file.version_kind() == SquadVersion::V2;
    let config = PredictConfig {
        max_batch_tokens: batch_tokens,
        with_null: v2,
        ..PredictConfig::default()
    };
    let run = |batch: &PaddedBatch| -> Result<BatchLogits, tch::TchError> {
        let t = to_tensors(batch, None, device);
        let (start, end) = tch::no_grad(|| {
            model.forward_t(&t.input_ids, &t.token_type_ids, &t.attention_mask, false)
        });
        Ok((logits_to_vec(&start)?, logits_to_vec(&end)?))
    };
    let mut backend = BatchRunner::new(featurizer.pad_id(), run);
    let predictions = predict_examples(&dev.examples, featurizer, &config, &mut backend, |_, _| {})
        .map_err(|e| TrainError::Eval(e.to_string()))?;
    let (answers, null_odds) = prediction_files(&dev.examples, &predictions, v2.then_some(0.0));
    let na_probs = v2.then_some(&null_odds);
    let scores = metrics::score(&dev.file, &answers, na_probs, 1.0)
        .map_err(|e| TrainError::Eval(e.to_string()))?;
    let overall = scores.overall();
    Ok(EvalRecord {
        step,
        exact: overall.exact,
        f1: overall.f1,
        questions: dev.examples.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
