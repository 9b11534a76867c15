//! Training windows with labels, and the order they are seen in.
//!
//! Batches are length-bucketed: a seeded shuffle, then within chunks of 50 batches the windows
//! are sorted by length, so each batch is padded only to its own longest window (SQuAD windows
//! average ~170 tokens, not 384), and the batch order is shuffled again. The order depends only
//! on (seed, epoch), which is what lets `--resume` replay the exact same run.

use tch::{Device, Tensor};

use crate::qa::batch::PaddedBatch;
use crate::qa::features::{FeatureError, Featurizer, Window};
use crate::qa::random::SplitMix64;
use crate::qa::squad::Example;

/// One labelled window.
#[derive(Debug, Clone)]
pub struct TrainWindow {
    /// The model input.
    pub window: Window,
    /// Start token label (`[CLS]` when the answer is not in this window).
    pub start: i64,
    /// End token label.
    pub end: i64,
}

/// What the training set turned into.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct DataStats {
    /// Questions read, the made-up unanswerable ones included.
    pub questions: usize,
    /// Of those, unanswerable examples made by `--negatives`.
    pub negatives: usize,
    /// Windows produced.
    pub windows: usize,
    /// Answerable questions skipped because no answer offset matched its text.
    pub skipped_bad_offsets: usize,
    /// Windows whose label is `[CLS]` (answer outside the window, or none).
    pub cls_labels: usize,
}

/// Labelled windows of every example.
pub fn training_windows(
    examples: &[Example],
    featurizer: &Featurizer,
) -> Result<(Vec<TrainWindow>, DataStats), FeatureError> {
    let mut stats = DataStats {
        questions: examples.len(),
        ..DataStats::default()
    };
    let mut out = Vec::with_capacity(examples.len() + examples.len() / 20);
    for example in examples {
        let span = example.answer_span();
        if span.is_none() && !example.is_impossible {
            stats.skipped_bad_offsets += 1;
            continue;
        }
        for window in featurizer.windows(&example.question, &example.context)? {
            let (start, end) = window.label(span);
            stats.cls_labels += usize::from(start == window.cls_index);
            out.push(TrainWindow {
                window,
                start: start as i64,
                end: end as i64,
            });
        }
    }
    stats.windows = out.len();
    Ok((out, stats))
}

/// The batches (window indices) of one epoch, determined by `(seed, epoch)` alone.
pub fn epoch_batches(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut rng = SplitMix64::new(seed ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    let mut batches: Vec<Vec<usize>> = vec![];
    for chunk in order.chunks_mut(batch_size * 50) {
        chunk.sort_by_key(|&i| lengths[i]);
        batches.extend(chunk.chunks(batch_size).map(<[usize]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
}

/// The tensors of one batch on `device`: ids, type ids, mask `[B, L]` and labels `[B]`.
pub struct BatchTensors {
    /// Token ids.
    pub input_ids: Tensor,
    /// Segment ids.
    pub token_type_ids: Tensor,
    /// 1 on real tokens.
    pub attention_mask: Tensor,
    /// Start labels.
    pub start: Tensor,
    /// End labels.
    pub end: Tensor,
}

/// Converts a padded batch (and labels when training) to tensors.
pub fn to_tensors(
    batch: &PaddedBatch,
    labels: Option<(&[i64], &[i64])>,
    device: Device,
) -> BatchTensors {
    let shape = [batch.batch_size as i64, batch.seq_len as i64];
    let t = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
    let (start, end) = labels.unwrap_or((&[], &[]));
    BatchTensors {
        input_ids: t(&batch.input_ids),
        token_type_ids: t(&batch.token_type_ids),
        attention_mask: t(&batch.attention_mask),
        start: Tensor::from_slice(start).to_device(device),
        end: Tensor::from_slice(end).to_device(device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_reproducible_complete_and_bucketed() {
        let lengths: Vec<usize> = (0..1000).map(|i| 50 + (i * 37) % 300).collect();
        let a = epoch_batches(&lengths, 8, 42, 0);
        assert_eq!(a, epoch_batches(&lengths, 8, 42, 0));
        assert_ne!(a, epoch_batches(&lengths, 8, 42, 1));
        let mut all: Vec<usize> = a.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let padded: usize = a
            .iter()
            .map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap())
            .sum();
        let real: usize = lengths.iter().sum();
        assert!(
            (padded as f64) < real as f64 * 1.1,
            "padding overhead {padded} vs {real}"
        );
    }
}
