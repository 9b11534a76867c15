//! The [`Block`](super::math::Block) at AVX-512 and AVX2 width: one definition written once
//! over each width's intrinsics, so the two run the same operations (the same bits) in two or
//! four registers.

use std::arch::x86_64::*;

use super::math::{exp, Block, Strided, BLOCK, EXP_FLOOR};

/// A [`Block`] of `$count` `$register`s of `$lanes` floats, with the intrinsics of one width
/// (`$feature`): `$int` is its integer register and `$zero_below` its "0 where x < floor"
/// (a compare mask on AVX-512, a blend on AVX2). Both widths transpose with the same 8 x 8
/// AVX2 shuffles ([`transpose_tile`]): moving floats gives the same bits at any width.
macro_rules! block {
    (
        $(#[$doc:meta])* $name:ident: $count:literal x $register:ty, $int:ty, $lanes:literal,
        $feature:literal, $zero_below:ident, $fold:ident,
        $load:ident, $store:ident, $set1:ident, $fmadd:ident, $fnmadd:ident, $max:ident,
        $add:ident, $sub:ident, $mul:ident, $shift:ident, $add_int:ident,
        $as_int:ident, $as_float:ident $(,)?
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name([$register; $count]);

        const _: () = assert!($count * $lanes == BLOCK);

        impl $name {
            /// Each register of `self` and `other` through `op`.
            #[inline]
            #[target_feature(enable = $feature)]
            fn zip(self, other: Self, op: impl Fn($register, $register) -> $register) -> Self {
                let mut out = self.0;
                for (o, b) in out.iter_mut().zip(other.0) {
                    *o = op(*o, b);
                }
                Self(out)
            }
        }

        // SAFETY: only ever called from code compiled for `$feature`, on CPUs with it
        // (`attention::run` checks).
        unsafe impl Block for $name {
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn load(p: *const f32) -> Self {
                Self(std::array::from_fn(|i| $load(p.add(i * $lanes))))
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn store(self, p: *mut f32) {
                for (i, x) in self.0.into_iter().enumerate() {
                    $store(p.add(i * $lanes), x);
                }
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn transpose(src: Strided<*const f32>, count: usize, dst: Strided<*mut f32>) {
                transpose_tile(src, count, dst);
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn splat(x: f32) -> Self {
                Self([$set1(x); $count])
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn mul_add(self, a: f32, b: Self) -> Self {
                let a = $set1(a);
                self.zip(b, |acc, b| $fmadd(a, b, acc))
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn scale_add(self, scale: f32, bias: Self) -> Self {
                let scale = $set1(scale);
                self.zip(bias, |x, b| $fmadd(x, scale, b))
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn max(self, other: Self) -> Self {
                self.zip(other, |x, y| $max(x, y))
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn add(self, other: Self) -> Self {
                self.zip(other, |x, y| $add(x, y))
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn times(self, by: f32) -> Self {
                let by = $set1(by);
                self.zip(self, |x, _| $mul(x, by))
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn exp_minus(self, shift: f32) -> Self {
                let (shift, floor, rounder) = ($set1(shift), $set1(EXP_FLOOR), $set1(exp::ROUNDER));
                self.zip(self, |x, _| {
                    let x = $sub(x, shift);
                    let v = $max(x, floor);
                    let t = $fmadd(v, $set1(exp::LOG2E), rounder);
                    let r = $fnmadd($sub(t, rounder), $set1(exp::LN2), v);
                    let mut p = $set1(exp::POLY[0]);
                    for c in &exp::POLY[1..] {
                        p = $fmadd(p, r, $set1(*c));
                    }
                    let p = $add($fmadd(p, $mul(r, r), r), $set1(1.0));
                    let power: $int = $shift::<23>($as_int(t));
                    let e = $as_float($add_int($as_int(p), power));
                    $zero_below(x, floor, e)
                })
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn largest(self) -> f32 {
                $fold(self.0, |a, b| _mm256_max_ps(a, b))
            }
            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn total(self) -> f32 {
                $fold(self.0, |a, b| _mm256_add_ps(a, b))
            }
        }
    };
}

/// `e`, with 0 where `x < floor`.
#[inline]
#[target_feature(enable = "avx512f")]
fn zero_below_512(x: __m512, floor: __m512, e: __m512) -> __m512 {
    _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, floor),
        e,
        _mm512_setzero_ps(),
    )
}

/// `e`, with 0 where `x < floor`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn zero_below_256(x: __m256, floor: __m256, e: __m256) -> __m256 {
    _mm256_blendv_ps(
        e,
        _mm256_setzero_ps(),
        _mm256_cmp_ps::<_CMP_LT_OQ>(x, floor),
    )
}

/// The 32 lanes of two registers combined by `op` in the order of
/// [`Block::largest`]: lane `i` with `i + 16` (the two registers), then with `i + 8`, `i + 4`,
/// `i + 2`, `i + 1` (the upper half of what is left onto the lower).
#[inline]
#[target_feature(enable = "avx512f")]
fn fold_512(r: [__m512; 2], op: impl Fn(__m256, __m256) -> __m256) -> f32 {
    let halves = |x: __m512| {
        let high = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x));
        (_mm512_castps512_ps256(x), _mm256_castpd_ps(high))
    };
    let ((low, high), (low2, high2)) = (halves(r[0]), halves(r[1]));
    let (low, high) = (op(low, low2), op(high, high2));
    fold_eight(op(low, high), &op)
}

/// As [`fold_512`], for four registers of 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn fold_256(r: [__m256; 4], op: impl Fn(__m256, __m256) -> __m256) -> f32 {
    let (low, high) = (op(r[0], r[2]), op(r[1], r[3]));
    fold_eight(op(low, high), &op)
}

/// Eight lanes combined by `op`: lane `i` with `i + 4`, then `i + 2`, then `i + 1`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn fold_eight(x: __m256, op: &impl Fn(__m256, __m256) -> __m256) -> f32 {
    let four = op(x, _mm256_permute2f128_ps::<0x01>(x, x));
    let two = op(four, _mm256_permute_ps::<0b1110>(four));
    let one = op(two, _mm256_permute_ps::<0b0001>(two));
    _mm256_cvtss_f32(one)
}

/// A 32 x 32 tile transposed as 16 blocks of 8 x 8 (see [`Block::transpose`]).
///
/// # Safety
/// Rows `0..count` of the tile are readable, 32 floats each; `dst` holds 32 rows of 32 floats.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn transpose_tile(src: Strided<*const f32>, count: usize, dst: Strided<*mut f32>) {
    const SIDE: usize = 8;
    for rows in (0..BLOCK).step_by(SIDE) {
        let here = count.saturating_sub(rows).min(SIDE);
        for columns in (0..BLOCK).step_by(SIDE) {
            let from = src.at.wrapping_add(rows * src.stride + columns);
            let to = dst.at.add(columns * dst.stride + rows);
            transpose_8x8(
                Strided::new(from, src.stride),
                here,
                Strided::new(to, dst.stride),
            );
        }
    }
}

/// Rows `0..count` (at most 8) of 8 floats at `src` as 8 columns at `dst`, zeros past
/// `count`: unpack pairs of rows, then pairs of pairs, then swap the 128-bit halves.
///
/// # Safety
/// As [`transpose_tile`], for one 8 x 8 block.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn transpose_8x8(src: Strided<*const f32>, count: usize, dst: Strided<*mut f32>) {
    let r: [__m256; 8] = std::array::from_fn(|i| {
        if i < count {
            _mm256_loadu_ps(src.at.add(i * src.stride))
        } else {
            _mm256_setzero_ps()
        }
    });
    let pairs: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    // Quads: columns (c, c + 4) of rows 0-3 (first four) and of rows 4-7 (last four).
    let quads: [__m256; 8] = std::array::from_fn(|i| {
        let base = i / 4 * 4;
        let (a, b) = (pairs[base + (i % 4) / 2], pairs[base + (i % 4) / 2 + 2]);
        if i % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xEE>(a, b)
        }
    });
    for c in 0..4 {
        let (top, bottom) = (quads[c], quads[c + 4]);
        _mm256_storeu_ps(
            dst.at.add(c * dst.stride),
            _mm256_permute2f128_ps::<0x20>(top, bottom),
        );
        _mm256_storeu_ps(
            dst.at.add((c + 4) * dst.stride),
            _mm256_permute2f128_ps::<0x31>(top, bottom),
        );
    }
}

block!(
    /// Two 512-bit registers.
    Avx512: 2 x __m512, __m512i, 16, "avx512f", zero_below_512, fold_512,
    _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_fnmadd_ps,
    _mm512_max_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps,
    _mm512_slli_epi32, _mm512_add_epi32, _mm512_castps_si512, _mm512_castsi512_ps,
);

block!(
    /// Four 256-bit registers.
    Avx2: 4 x __m256, __m256i, 8, "avx2,fma", zero_below_256, fold_256,
    _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_fnmadd_ps,
    _mm256_max_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps,
    _mm256_slli_epi32, _mm256_add_epi32, _mm256_castps_si256, _mm256_castsi256_ps,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The lanes combined in halves, the order `largest` and `total` promise.
    fn tree(mut lanes: [f32; BLOCK], op: impl Fn(f32, f32) -> f32) -> f32 {
        let mut half = BLOCK / 2;
        while half > 0 {
            for i in 0..half {
                lanes[i] = op(lanes[i], lanes[i + half]);
            }
            half /= 2;
        }
        lanes[0]
    }

    #[test]
    fn every_width_folds_its_lanes_in_the_same_order() {
        let lanes: [f32; BLOCK] = std::array::from_fn(|i| (i as f32 * 1.37).cos() * 1e3 + 0.1);
        let sum = tree(lanes, |a, b| a + b);
        let max = tree(lanes, f32::max);
        assert!(std::arch::is_x86_feature_detected!("avx2"));
        // SAFETY (both): each width runs only where the CPU has it.
        let mut folds = vec![unsafe {
            let block = Avx2::load(lanes.as_ptr());
            (block.total(), block.largest())
        }];
        if std::arch::is_x86_feature_detected!("avx512f") {
            folds.push(unsafe {
                let block = Avx512::load(lanes.as_ptr());
                (block.total(), block.largest())
            });
        }
        for (total, largest) in folds {
            assert_eq!(total.to_bits(), sum.to_bits());
            assert_eq!(largest, max);
        }
    }
}
