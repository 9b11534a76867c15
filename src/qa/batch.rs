//! Windows → one padded `[B, L]` batch of model inputs, the format every backend (tch for
//! training, ONNX Runtime for serving) consumes, padded only to the batch's longest window.

use crate::qa::decode::WindowLogits;
use crate::qa::features::Window;

/// Start and end logits of a batch, each row-major `[B, L]`: what every backend returns.
pub type BatchLogits = (Vec<f32>, Vec<f32>);

/// Row-major `[batch_size, seq_len]` int64 inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedBatch {
    /// Windows in the batch.
    pub batch_size: usize,
    /// Length of the longest window; shorter ones are padded to it.
    pub seq_len: usize,
    /// Token ids, `pad_id` after each window's end.
    pub input_ids: Vec<i64>,
    /// Segment ids, 0 on padding.
    pub token_type_ids: Vec<i64>,
    /// 1 on real tokens, 0 on padding.
    pub attention_mask: Vec<i64>,
}

impl PaddedBatch {
    /// Packs windows (any lengths) into one batch.
    pub fn from_windows(windows: &[&Window], pad_id: u32) -> Self {
        let seq_len = windows.iter().map(|w| w.len()).max().unwrap_or(0);
        let cells = windows.len() * seq_len;
        let mut batch = Self {
            batch_size: windows.len(),
            seq_len,
            input_ids: Vec::with_capacity(cells),
            token_type_ids: Vec::with_capacity(cells),
            attention_mask: Vec::with_capacity(cells),
        };
        for w in windows {
            let pad = seq_len - w.len();
            batch
                .input_ids
                .extend(w.input_ids.iter().map(|&t| i64::from(t)));
            batch
                .input_ids
                .extend(std::iter::repeat_n(i64::from(pad_id), pad));
            batch
                .token_type_ids
                .extend(w.token_type_ids.iter().map(|&t| i64::from(t)));
            batch.token_type_ids.extend(std::iter::repeat_n(0, pad));
            batch.attention_mask.extend(std::iter::repeat_n(1, w.len()));
            batch.attention_mask.extend(std::iter::repeat_n(0, pad));
        }
        batch
    }

    /// Tokens the model computes on, padding included (the cost of the batch).
    pub fn padded_tokens(&self) -> usize {
        self.batch_size * self.seq_len
    }

    /// The logits of row `row`, cut to the `len` real tokens of its window. `logits` must
    /// hold `padded_tokens()` values each (the engine checks its outputs).
    pub fn window_logits(&self, logits: &BatchLogits, row: usize, len: usize) -> WindowLogits {
        let span = row * self.seq_len..row * self.seq_len + len;
        WindowLogits {
            start: logits.0[span.clone()].to_vec(),
            end: logits.1[span].to_vec(),
        }
    }
}

/// Splits window indices, sorted by length, into batches of at most `max_windows` windows and
/// `max_tokens` padded tokens, so similar lengths share a batch and padding stays small.
pub fn plan_by_length(lengths: &[usize], max_windows: usize, max_tokens: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let mut batches: Vec<Vec<usize>> = vec![];
    let mut current: Vec<usize> = vec![];
    for i in order {
        // Sorted ascending, so the newest window is the longest of the batch.
        let padded = (current.len() + 1) * lengths[i];
        if !current.is_empty() && (current.len() == max_windows.max(1) || padded > max_tokens) {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(len: usize) -> Window {
        Window {
            input_ids: vec![7; len],
            token_type_ids: vec![1; len],
            context_spans: vec![None; len],
            cls_index: 0,
        }
    }

    #[test]
    fn windows_are_padded_to_the_longest() {
        let (a, b) = (window(2), window(3));
        let batch = PaddedBatch::from_windows(&[&a, &b], 0);
        assert_eq!(
            (batch.batch_size, batch.seq_len, batch.padded_tokens()),
            (2, 3, 6)
        );
        assert_eq!(batch.input_ids, vec![7, 7, 0, 7, 7, 7]);
        assert_eq!(batch.token_type_ids, vec![1, 1, 0, 1, 1, 1]);
        assert_eq!(batch.attention_mask, vec![1, 1, 0, 1, 1, 1]);
    }

    #[test]
    fn plans_respect_both_budgets_and_cover_every_window() {
        let lengths = [100, 10, 50, 12, 300, 11];
        let plan = plan_by_length(&lengths, 2, 200);
        let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
        for batch in &plan {
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(batch.len() <= 2);
            assert!(
                batch.len() == 1 || batch.len() * longest <= 200,
                "{batch:?}"
            );
        }
        assert_eq!(plan[0], vec![1, 5]);
    }
}
