//! Dropout with masks from a counter-based generator, filled by several threads.
//!
//! libtorch draws CPU dropout masks one element at a time from a Mersenne Twister (its MKL
//! path is only taken on Intel CPUs): on the 2-core AMD dev machine that serial loop was ~15%
//! of every training step, attention probabilities being the largest tensors of BERT. Here
//! element `i` of a mask is a pure function of `(key, i)` (SplitMix64), so threads fill
//! disjoint ranges and the mask does not depend on their number. The key is one draw from
//! libtorch's generator, so `tch::manual_seed` still fixes every mask, which is what lets
//! `--resume` replay a run. Tensors on a GPU use libtorch's own dropout.

use half::bf16;
use tch::{Device, Kind, Tensor};

use crate::qa::random::splitmix64_at;

/// Resolution of the drop probability: each element draws 16 random bits.
const LEVELS: f64 = 65_536.0;

/// The keep mask of one dropout: 0 where dropped, 1 where kept, and the factor that restores
/// the expected value of the kept elements.
pub struct KeepMask {
    /// 0/1 values shaped like the input, in its kind.
    pub mask: Tensor,
    /// `1 / (1 - p')`, `p'` being `p` rounded to a multiple of 1/65536 (the probability the
    /// mask really drops with).
    pub scale: f64,
}

/// A mask of `size` in `kind` (fp32 or bf16) dropping each element with probability `p`.
pub fn keep_mask(size: &[i64], p: f64, kind: Kind) -> KeepMask {
    let threshold = (p.clamp(0.0, 1.0) * LEVELS).round().min(LEVELS - 1.0) as u16;
    let numel = size.iter().product::<i64>().max(0) as usize;
    let key = Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]) as u64;
    let mask = match kind {
        // tch 0.26 tags `half::bf16` slices as Half: the bits are bf16, so view them as such.
        Kind::BFloat16 => Tensor::from_slice(&fill(numel, key, threshold, bf16::ONE, bf16::ZERO))
            .view_dtype(Kind::BFloat16)
            .view(size),
        _ => Tensor::from_slice(&fill(numel, key, threshold, 1f32, 0f32))
            .view(size)
            .to_kind(kind),
    };
    KeepMask {
        mask,
        scale: LEVELS / (LEVELS - f64::from(threshold)),
    }
}

/// Inverted dropout: in training, zeroes elements with probability `p` and scales the rest by
/// `1 / (1 - p)`; otherwise returns `x` unchanged.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    if x.device() != Device::Cpu {
        return x.dropout(p, train);
    }
    let keep = keep_mask(&x.size(), p, x.kind());
    x * keep.mask * keep.scale
}

/// `numel` values, element `i` being `zero` when 16 bits of `splitmix64_at(key, i / 4)` fall
/// below `threshold`, else `one`; filled by as many threads as libtorch uses.
fn fill<T: Copy + Send>(numel: usize, key: u64, threshold: u16, one: T, zero: T) -> Vec<T> {
    let mut out = vec![zero; numel];
    let threads = tch::get_num_threads().max(1) as usize;
    // Chunks are whole groups of 4 elements (one random word), so a chunk's first element
    // index tells its first word.
    let chunk = numel.div_ceil(threads).div_ceil(4).max(1) * 4;
    std::thread::scope(|scope| {
        for (c, part) in out.chunks_mut(chunk).enumerate() {
            let first_word = (c * chunk / 4) as u64;
            scope.spawn(move || {
                for (w, group) in part.chunks_mut(4).enumerate() {
                    let bits = splitmix64_at(key, first_word + w as u64);
                    for (j, value) in group.iter_mut().enumerate() {
                        if (bits >> (16 * j)) as u16 >= threshold {
                            *value = one;
                        }
                    }
                }
            });
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_at_the_asked_rate_and_keeps_the_expected_value() {
        tch::manual_seed(7);
        let x = Tensor::ones([64, 1000], (Kind::Float, Device::Cpu));
        let y = dropout(&x, 0.1, true);
        let dropped = y
            .eq(0.0)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
        let mean = y.mean(Kind::Float).double_value(&[]);
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert!(dropout(&x, 0.1, false).equal(&x));
    }

    #[test]
    fn masks_follow_the_libtorch_seed_not_the_thread_count() {
        let size = [3, 5, 7];
        let draw = |seed: i64, threads: i32| {
            tch::set_num_threads(threads);
            tch::manual_seed(seed);
            keep_mask(&size, 0.3, Kind::BFloat16).mask
        };
        let a = draw(1, 1);
        assert!(a.equal(&draw(1, 2)) && a.equal(&draw(1, 3)));
        assert!(!a.equal(&draw(2, 1)));
        assert_eq!(a.size(), size);
        assert_eq!(a.kind(), Kind::BFloat16);
    }

    #[test]
    fn gradient_flows_through_kept_elements_only() {
        tch::manual_seed(3);
        let x = Tensor::ones([1000], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = dropout(&x, 0.5, true);
        y.sum(Kind::Float).backward();
        assert!(x.grad().equal(&y.detach()));
    }
}
