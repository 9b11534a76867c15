//! Static activation steps for the int8 graph: one quantization step per dense-layer input
//! (site), fixed at export from a high percentile of the smoothed |activation| on calibration
//! windows. The row-wise graph spends about 40% of its kernel time finding and applying each
//! token's own scale (bench/RESULTS.md, Intel AMX Xeon); a constant step removes that work and
//! still never lets a window's logits depend on its batch mates. The largest value seen would
//! let one outlier token coarsen every other token's step (dev F1 71.6 against 80.6 for the
//! row-wise graph on 2,000 questions), so a percentile clips those few outliers instead.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::smooth::kept_rows;

/// Largest int8 code of a symmetric activation step: `step = clip / 127`.
const LEVELS: f32 = 127.0;

/// The clip (largest magnitude quantized without saturating) of every site, as measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationClips {
    /// Site key ([`super::smooth::Site::key`]) -> clip.
    pub by_site: HashMap<String, f32>,
    /// The percentile of |activation| each clip was read at.
    pub percentile: f64,
}

impl ActivationClips {
    /// The quantization step of `key`'s site, or why it has none: a site never measured or
    /// never active cannot be quantized sensibly.
    pub fn step(&self, key: &str) -> Result<f32, String> {
        match self.by_site.get(key) {
            Some(&clip) if clip.is_finite() && clip > 0.0 => Ok(clip / LEVELS),
            Some(clip) => Err(format!(
                "the clip of {key} is {clip}, not a positive number"
            )),
            None => Err(format!("no activation clip for {key}")),
        }
    }
}

/// The largest magnitudes seen at one site, just enough of them to read the percentile once
/// every value has been seen: memory stays at a few hundred values per site where keeping all
/// of them would take gigabytes.
#[derive(Debug, Clone)]
pub struct LargestMagnitudes {
    keep: usize,
    /// Bit patterns of non-negative floats order as the floats do; the smallest kept on top.
    kept: BinaryHeap<Reverse<u32>>,
}

impl LargestMagnitudes {
    /// A tracker for the `percentile` (0-100] of `count` values: it keeps the
    /// `ceil(count * (100 - percentile) / 100)` largest, at least one.
    pub fn for_percentile(count: usize, percentile: f64) -> Self {
        let share = ((100.0 - percentile) / 100.0).clamp(0.0, 1.0);
        let keep = ((count as f64 * share).ceil() as usize).max(1);
        Self {
            keep,
            kept: BinaryHeap::with_capacity(keep + 1),
        }
    }

    /// Takes in the magnitudes of `values` (`[.., channels]`, row-major) on the rows whose
    /// `keep` flag is true (real tokens, not padding).
    pub fn observe(&mut self, values: &[f32], channels: usize, keep: &[bool]) {
        for row in kept_rows(values, channels, keep) {
            for v in row {
                self.push(v.abs().to_bits());
            }
        }
    }

    fn push(&mut self, bits: u32) {
        if self.kept.len() < self.keep {
            self.kept.push(Reverse(bits));
        } else if self.kept.peek().is_some_and(|Reverse(least)| bits > *least) {
            self.kept.pop();
            self.kept.push(Reverse(bits));
        }
    }

    /// The percentile: the smallest of the values kept (0 when nothing was seen).
    pub fn value(&self) -> f32 {
        self.kept
            .peek()
            .map_or(0.0, |Reverse(bits)| f32::from_bits(*bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_is_read_from_the_largest_values_on_real_rows() {
        // 1,000 values 1..=1000 in rows of 10; p99 keeps the 10 largest: 991..=1000.
        let values: Vec<f32> = (1..=1000).map(|v| -(v as f32)).collect();
        let mut largest = LargestMagnitudes::for_percentile(1000, 99.0);
        largest.observe(&values, 10, &[true; 100]);
        assert_eq!(largest.value(), 991.0);
        // The 100th percentile is the largest value; padding rows are never counted.
        let mut max = LargestMagnitudes::for_percentile(20, 100.0);
        max.observe(&[1.0, -2.0, 50.0, 60.0], 2, &[true, false]);
        assert_eq!(max.value(), 2.0);
        assert_eq!(LargestMagnitudes::for_percentile(5, 99.0).value(), 0.0);
    }

    #[test]
    fn a_step_needs_a_positive_finite_clip() {
        let clips = ActivationClips {
            by_site: HashMap::from([("0.gelu".into(), 12.7), ("1.gelu".into(), 0.0)]),
            percentile: 99.999,
        };
        assert!((clips.step("0.gelu").unwrap() - 0.1).abs() < 1e-7);
        assert!(clips.step("1.gelu").unwrap_err().contains("not a positive"));
        assert!(clips
            .step("2.gelu")
            .unwrap_err()
            .contains("no activation clip"));
    }
}
