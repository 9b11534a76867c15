//! Dropout with masks from a counter-based generator, written straight into the tensor.
//!
//! libtorch draws CPU dropout masks one element at a time from a Mersenne Twister (its MKL
//! path is only taken on Intel CPUs): on the 2-core AMD dev machine that serial loop was ~15%
//! of every training step, attention probabilities being the largest tensors of BERT. Here
//! element `i` of a mask is a pure function of `(key, i)` (SplitMix64), so the mask does not
//! depend on how it is computed: eight words at a time in vector registers (AVX-512 or AVX2
//! where the CPU has them), into the tensor's own memory, in parts on libtorch's own threads
//! ([`super::omp_team`]). The key is one draw from libtorch's
//! generator, so `tch::manual_seed` still fixes every mask, which is what lets `--resume`
//! replay a run. Tensors on a GPU use libtorch's own dropout.

use half::bf16;
use tch::{Device, Kind, Tensor};

use super::omp_team;
use crate::qa::random::splitmix64_at;

/// Resolution of the drop probability: each element draws 16 random bits.
const LEVELS: f64 = 65_536.0;

/// Mask elements per random word (16 bits each).
const PER_WORD: usize = 4;

/// Words drawn together: 32 elements, one 512-bit vector of bf16.
const WORDS_PER_BLOCK: usize = 8;

/// Mask elements of one block.
const BLOCK: usize = WORDS_PER_BLOCK * PER_WORD;

/// The keep mask of one dropout: 0 where dropped, 1 where kept, and the factor that restores
/// the expected value of the kept elements.
pub struct KeepMask {
    /// 0/1 values shaped like the input, in its kind.
    pub mask: Tensor,
    /// `1 / (1 - p')`, `p'` being `p` rounded to a multiple of 1/65536 (the probability the
    /// mask really drops with).
    pub scale: f64,
}

/// The mask's 16-bit threshold for drop probability `p`, and its key: one draw from
/// libtorch's generator.
fn draw(p: f64) -> (u16, u64) {
    let threshold = (p.clamp(0.0, 1.0) * LEVELS).round().min(LEVELS - 1.0) as u16;
    let key = Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]) as u64;
    (threshold, key)
}

fn scale_of(threshold: u16) -> f64 {
    LEVELS / (LEVELS - f64::from(threshold))
}

/// A mask of `size` in `kind` (fp32 or bf16) dropping each element with probability `p`.
pub fn keep_mask(size: &[i64], p: f64, kind: Kind) -> KeepMask {
    let (threshold, key) = draw(p);
    let mask = match kind {
        Kind::BFloat16 => filled(size, key, threshold, bf16::ONE.to_bits()),
        _ => filled(size, key, threshold, 1f32).to_kind(kind),
    };
    KeepMask {
        mask,
        scale: scale_of(threshold),
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
    if x.kind() == Kind::Float {
        // The kept elements hold the scale itself: `x * s` is what `(x * 1) * s` gives, bit
        // for bit (libtorch multiplies an fp32 tensor by the scalar rounded to fp32), in one
        // pass over `x` instead of two, forward and backward.
        let (threshold, key) = draw(p);
        let scale = scale_of(threshold) as f32;
        return x * filled(&x.size(), key, threshold, scale);
    }
    let keep = keep_mask(&x.size(), p, x.kind());
    x * keep.mask * keep.scale
}

/// A new CPU tensor of `size` in `T`'s kind, filled with the mask of `key`: `kept` where an
/// element's 16 bits reach `threshold`, else zero.
fn filled<T: MaskElement>(size: &[i64], key: u64, threshold: u16, kept: T) -> Tensor {
    let mask = Tensor::empty(size, (T::KIND, Device::Cpu));
    let numel = mask.numel();
    // SAFETY: a fresh contiguous CPU tensor of `numel` elements of `T::KIND`, whose elements
    // are `T`s, which nothing else references until this function returns it.
    let out = unsafe { std::slice::from_raw_parts_mut(mask.data_ptr().cast::<T>(), numel) };
    fill(
        out,
        Mask {
            key,
            threshold,
            kept,
        },
    );
    mask
}

/// The element types masks are written in: f32, and bf16 as its bits.
trait MaskElement: Copy + Default + Send + Sync {
    /// The tensor kind whose elements are this type's bits.
    const KIND: Kind;
}

impl MaskElement for f32 {
    const KIND: Kind = Kind::Float;
}

impl MaskElement for u16 {
    const KIND: Kind = Kind::BFloat16;
}

/// What a mask is, whatever part of it is written: element `i` is `kept` when 16 bits of
/// `splitmix64_at(key, i / 4)` reach `threshold`, else zero.
#[derive(Clone, Copy)]
struct Mask<T> {
    key: u64,
    threshold: u16,
    kept: T,
}

/// The whole of `mask` into `out`, in whole blocks per thread of libtorch's team
/// ([`omp_team`]: an element's value depends on its index only, so the split changes no bit).
fn fill<T: MaskElement>(out: &mut [T], mask: Mask<T>) {
    let cuts = omp_team::ranges(out.len(), BLOCK);
    let first_words = cuts.iter().map(|r| (r.start / PER_WORD) as u64);
    let parts: Vec<(u64, &mut [T])> = first_words.zip(omp_team::split_mut(out, &cuts)).collect();
    omp_team::run_parts(parts, |(first_word, part)| {
        fill_from(part, first_word, mask)
    });
}

/// The part of `mask` that starts at word `first_word`, at the widest vectors this CPU has.
fn fill_from<T: MaskElement>(out: &mut [T], first_word: u64, mask: Mask<T>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512dq") && has!("avx512bw") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { fill_avx512(out, first_word, mask) };
        }
        if has!("avx2") {
            // SAFETY: as above.
            return unsafe { fill_avx2(out, first_word, mask) };
        }
    }
    fill_blocks(out, first_word, mask);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512bw")]
unsafe fn fill_avx512<T: MaskElement>(out: &mut [T], first_word: u64, mask: Mask<T>) {
    fill_blocks(out, first_word, mask);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2<T: MaskElement>(out: &mut [T], first_word: u64, mask: Mask<T>) {
    fill_blocks(out, first_word, mask);
}

/// [`fill`]'s arithmetic for a part starting at word `first_word`, inlined into each width's
/// function so that its loops compile at that width: whole blocks of eight words as arrays
/// (which the compiler keeps in vector registers), then the last elements word by word.
#[inline(always)]
fn fill_blocks<T: MaskElement>(out: &mut [T], first_word: u64, mask: Mask<T>) {
    let Mask {
        key,
        threshold,
        kept,
    } = mask;
    let pick = |bits: u16| {
        if bits >= threshold {
            kept
        } else {
            T::default()
        }
    };
    let whole = out.len() / BLOCK;
    let (blocks, rest) = out.split_at_mut(whole * BLOCK);
    for (b, chunk) in blocks.chunks_exact_mut(BLOCK).enumerate() {
        let first = first_word + (b * WORDS_PER_BLOCK) as u64;
        let words: [u64; WORDS_PER_BLOCK] =
            std::array::from_fn(|w| splitmix64_at(key, first + w as u64));
        for (k, value) in chunk.iter_mut().enumerate() {
            *value = pick((words[k / PER_WORD] >> (16 * (k % PER_WORD))) as u16);
        }
    }
    let first = first_word + (whole * WORDS_PER_BLOCK) as u64;
    for (w, group) in rest.chunks_mut(PER_WORD).enumerate() {
        let bits = splitmix64_at(key, first + w as u64);
        for (j, value) in group.iter_mut().enumerate() {
            *value = pick((bits >> (16 * j)) as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_at_the_asked_rate_and_keeps_the_expected_value() {
        let _generator = crate::train::libtorch_generator();
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
        let _generator = crate::train::libtorch_generator();
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

    /// Element `i`'s value as the mask is defined: word `i / 4`, bits `16 (i % 4)` up.
    fn reference<T: MaskElement>(len: usize, key: u64, threshold: u16, kept: T) -> Vec<T> {
        (0..len)
            .map(|i| {
                let bits = (splitmix64_at(key, (i / 4) as u64) >> (16 * (i % 4))) as u16;
                if bits >= threshold {
                    kept
                } else {
                    T::default()
                }
            })
            .collect()
    }

    /// One way of writing the part of a mask that starts at a given word.
    type Fill<T> = fn(&mut [T], u64, Mask<T>);

    /// Every width this CPU runs (and the portable loop) against the definition, each writing
    /// the mask as two parts cut at a block, at lengths around the blocks' 32 elements and the
    /// words' 4; and the whole mask split over a team of two threads.
    fn every_width_matches<T: MaskElement + PartialEq + std::fmt::Debug>(kept: T) {
        let key = 0x0123_4567_89AB_CDEF;
        tch::set_num_threads(2);
        for len in [
            0,
            1,
            3,
            4,
            5,
            31,
            32,
            33,
            64,
            1_003,
            3 * omp_team::MIN_PART + 5,
        ] {
            let expected = reference(len, key, 6_554, kept);
            let mask = Mask {
                key,
                threshold: 6_554,
                kept,
            };
            let mut ways: Vec<(&str, Fill<T>)> =
                vec![("portable", fill_blocks), ("dispatched", fill_from)];
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    ways.push(("avx2", |o, f, m| unsafe { fill_avx2(o, f, m) }));
                }
                if has!("avx512f") && has!("avx512dq") && has!("avx512bw") {
                    // SAFETY: the CPU has these features.
                    ways.push(("avx512", |o, f, m| unsafe { fill_avx512(o, f, m) }));
                }
            }
            let cut = len / 2 / BLOCK * BLOCK;
            for (name, way) in ways {
                let mut out = vec![kept; len];
                let (head, tail) = out.split_at_mut(cut);
                way(head, 0, mask);
                way(tail, (cut / PER_WORD) as u64, mask);
                assert_eq!(out, expected, "{name}, {len} elements");
            }
            let mut out = vec![kept; len];
            fill(&mut out, mask);
            assert_eq!(out, expected, "the team, {len} elements");
        }
    }

    #[test]
    fn every_width_writes_the_defined_mask() {
        every_width_matches(bf16::ONE.to_bits());
        every_width_matches(1.25f32);
    }

    #[test]
    fn fp32_dropout_equals_the_mask_then_the_scale_bit_for_bit() {
        let _generator = crate::train::libtorch_generator();
        tch::manual_seed(11);
        let x = Tensor::randn([3, 50, 37], (Kind::Float, Device::Cpu)) * 1e3;
        tch::manual_seed(5);
        let fused = dropout(&x, 0.1, true);
        tch::manual_seed(5);
        let keep = keep_mask(&x.size(), 0.1, Kind::Float);
        let unfused = &x * keep.mask * keep.scale;
        assert!(fused.equal(&unfused));
        assert!(fused.eq(0.0).any().int64_value(&[]) == 1);
    }

    #[test]
    fn gradient_flows_through_kept_elements_only() {
        let _generator = crate::train::libtorch_generator();
        tch::manual_seed(3);
        let x = Tensor::ones([1000], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = dropout(&x, 0.5, true);
        y.sum(Kind::Float).backward();
        assert!(x.grad().equal(&y.detach()));
    }
}
