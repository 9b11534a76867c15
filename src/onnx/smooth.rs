//! SmoothQuant-style balancing for the row-wise int8 graph. BERT's activations have a few
//! channels that are 10-20x larger than the rest (MiniLM's channel 99 reaches ~30 where most
//! stay under 2), so a token's row scale is set by them and every other channel is quantized
//! coarsely. Dividing input channel `k` by `s_k` and multiplying the weight's column `k` by it
//! leaves the product unchanged in exact arithmetic but moves part of the range into the
//! weights, which are quantized per output column offline: `s_k = a_k^α / w_k^(1-α)`, with
//! `a_k` the largest |activation| seen on calibration windows and `w_k` the largest |weight|
//! in that input column (Xiao et al., 2023, "SmoothQuant").

use std::collections::HashMap;

/// Where a dense layer takes its input: the four activation sites of each encoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Site {
    /// The layer input, shared by the query, key and value projections.
    Attention,
    /// The attention context, input of the attention output projection.
    Context,
    /// The attention block's output, input of the feed-forward up projection.
    FeedForward,
    /// The GELU output, input of the feed-forward down projection.
    Gelu,
}

impl Site {
    /// Every site, in graph order.
    pub const ALL: [Site; 4] = [
        Site::Attention,
        Site::Context,
        Site::FeedForward,
        Site::Gelu,
    ];

    /// The key of layer `layer`'s site, as stored in [`ActivationRanges`].
    pub fn key(self, layer: usize) -> String {
        let name = match self {
            Site::Attention => "attention",
            Site::Context => "context",
            Site::FeedForward => "feed_forward",
            Site::Gelu => "gelu",
        };
        format!("{layer}.{name}")
    }
}

/// Largest |activation| per input channel at each site, measured on calibration windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivationRanges {
    /// Site key ([`Site::key`]) -> one maximum per channel.
    pub by_site: HashMap<String, Vec<f32>>,
}

impl ActivationRanges {
    /// Widens the ranges of `key` by one batch's activations (`[.., channels]`, row-major);
    /// rows whose `keep` flag is false (padding) are skipped.
    pub fn observe(&mut self, key: &str, values: &[f32], channels: usize, keep: &[bool]) {
        let range = self
            .by_site
            .entry(key.to_string())
            .or_insert_with(|| vec![0.0; channels]);
        for row in kept_rows(values, channels, keep) {
            for (max, v) in range.iter_mut().zip(row) {
                *max = max.max(v.abs());
            }
        }
    }
}

/// The rows of `values` (`[.., channels]`, row-major) whose `keep` flag is true: calibration
/// statistics are taken on real tokens only, never on padding.
pub fn kept_rows<'v>(
    values: &'v [f32],
    channels: usize,
    keep: &'v [bool],
) -> impl Iterator<Item = &'v [f32]> {
    values
        .chunks(channels)
        .zip(keep)
        .filter_map(|(row, &k)| k.then_some(row))
}

/// The smoothing factors `s` for one input shared by `weights` (each PyTorch-layout
/// `[out, in]`, row-major): the caller divides the input by `s` and multiplies every weight's
/// column `k` by `s_k`. Channels never seen active keep `s = 1`.
pub fn smoothing_factors(activation: &[f32], weights: &[&[f32]], alpha: f32) -> Vec<f32> {
    let inputs = activation.len();
    let mut weight_max = vec![0f32; inputs];
    for w in weights {
        for row in w.chunks(inputs) {
            for (max, v) in weight_max.iter_mut().zip(row) {
                *max = max.max(v.abs());
            }
        }
    }
    activation
        .iter()
        .zip(&weight_max)
        .map(|(&a, &w)| {
            if a > 0.0 && w > 0.0 {
                (a.powf(alpha) / w.powf(1.0 - alpha)).clamp(1e-4, 1e4)
            } else {
                1.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_balance_activation_and_weight_ranges() {
        // Channel 0: activations up to 16, weights up to 1; channel 1: both 1.
        let w = [1.0, 1.0, -0.5, 0.25];
        let s = smoothing_factors(&[16.0, 1.0], &[&w], 0.5);
        assert_eq!(s, vec![4.0, 1.0]);
        // After smoothing, channel 0 spans 16/4 = 4 in activations and 1*4 = 4 in weights.
        let unseen = smoothing_factors(&[0.0, 1.0], &[&w], 0.5);
        assert_eq!(unseen[0], 1.0);
    }

    #[test]
    fn observe_skips_padding_rows_and_keeps_maxima() {
        let mut ranges = ActivationRanges::default();
        ranges.observe("0.gelu", &[1.0, -3.0, 100.0, 100.0], 2, &[true, false]);
        ranges.observe("0.gelu", &[-2.0, 0.5], 2, &[true]);
        assert_eq!(ranges.by_site["0.gelu"], vec![2.0, 3.0]);
    }
}
