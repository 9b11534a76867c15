//! One window's attention for one head: Q·Kᵀ, the scale and additive mask, softmax and P·V in
//! one pass over score rows that stay in the L1 cache, reading Q, K and V in the dense layers'
//! `[L, hidden]` layout and writing the context in it (no transposes).
//!
//! Every CPU must give the same answers, so the arithmetic is fixed per element, whatever the
//! vector width: each score and each context value is one chain of fused multiply-adds in
//! index order, exp is one polynomial, and a row's sum runs over 32 lanes (key index mod 32)
//! added at the end in one fixed tree of halves ([`Block::total`]). A [`Block`] is 32 lanes
//! at any width (two AVX-512 registers or four AVX2 ones), so only the registers differ
//! between widths, not the bits.

/// Lanes of a [`Block`]: keys per score tile, head columns per context chunk.
pub const BLOCK: usize = 32;

/// Below this, exp is taken as 0: under 2e-15 of the row maximum's 1.0, nothing a sum of at
/// most a few thousand such terms can show in f32.
pub const EXP_FLOOR: f32 = -34.0;

/// exp's steps, shared by every width so that they give the same bits: `n = round(x log2 e)`
/// with the 1.5 x 2^23 trick (ties to even; `n` is then the low bits of the sum, so no
/// conversion is needed), `r = x - n ln 2`, a degree-5 polynomial for exp(r), and 2^n added to
/// the exponent bits.
pub mod exp {
    /// log2(e): `x log2 e` is the power of two nearest exp(x).
    pub const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// 1.5 x 2^23: added and taken away, rounds to an integer (ties to even).
    pub const ROUNDER: f32 = 12_582_912.0;
    /// ln 2: `n` is at most 50 in magnitude above the floor, so one f32 loses under 1e-6.
    pub const LN2: f32 = std::f32::consts::LN_2;
    /// Coefficients of r^5 .. r^2 of exp(r) = 1 + r + r^2 (c5 r^3 + ... ), Horner order: the
    /// Taylor series, within 3e-6 for |r| <= ln 2 / 2.
    pub const POLY: [f32; 4] = [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5];
}

/// 32 f32 lanes in vector registers. Each operation is lane by lane and one IEEE operation
/// (a fused multiply-add rounds once) at every width.
///
/// # Safety
/// Implementations use the instructions of their width: call them only from code compiled
/// for it, on a CPU that has it.
pub unsafe trait Block: Copy {
    /// 32 floats from `p`.
    unsafe fn load(p: *const f32) -> Self;
    /// The 32 lanes to `p`.
    unsafe fn store(self, p: *mut f32);
    /// Rows `0..count` (at most 32) of a 32 x 32 tile at `src` written as its columns:
    /// `dst`'s row `c` gets each source row's float `c`, and zeros past `count`. So the keys
    /// of a head go into lanes in registers, not by a strided load per float.
    unsafe fn transpose(src: Strided<*const f32>, count: usize, dst: Strided<*mut f32>);
    /// Every lane `x`.
    unsafe fn splat(x: f32) -> Self;
    /// `self + a * b`, rounded once.
    unsafe fn mul_add(self, a: f32, b: Self) -> Self;
    /// `self * scale + bias`, rounded once.
    unsafe fn scale_add(self, scale: f32, bias: Self) -> Self;
    /// Lane-wise maximum.
    unsafe fn max(self, other: Self) -> Self;
    /// Lane-wise sum.
    unsafe fn add(self, other: Self) -> Self;
    /// Every lane times `by`.
    unsafe fn times(self, by: f32) -> Self;
    /// exp(self - shift), for lanes at most `shift` (0 below [`EXP_FLOOR`]).
    unsafe fn exp_minus(self, shift: f32) -> Self;
    /// The lanes' maximum, combined in the fixed order of halves (lane `i` with `i + 16`,
    /// then `i + 8`, ... `i + 1`): five steps deep instead of 31, and the same bits at every
    /// width.
    unsafe fn largest(self) -> f32;
    /// The lanes' sum, in the order of [`largest`](Block::largest).
    unsafe fn total(self) -> f32;
}

/// Rows of floats in memory: where the first starts and how many floats apart they start.
#[derive(Clone, Copy)]
pub struct Strided<P> {
    /// The first row's first float.
    pub at: P,
    /// Floats from one row's start to the next's.
    pub stride: usize,
}

impl<P> Strided<P> {
    /// The rows from `at`, `stride` apart.
    pub fn new(at: P, stride: usize) -> Self {
        Self { at, stride }
    }
}

/// One head of one window: rows of `hidden` floats, the head's `head_dim` columns from
/// `offset`, the additive mask of each key (`len` of them) and the product's scale.
pub struct Head<'a> {
    /// The window's queries, `len` rows of `hidden`.
    pub q: &'a [f32],
    /// Its keys, as the queries.
    pub k: &'a [f32],
    /// Its values, as the queries.
    pub v: &'a [f32],
    /// What each key's score gets added (0, or -10,000 for a padding key): its length is the
    /// window's.
    pub mask: &'a [f32],
    /// Floats per row.
    pub hidden: usize,
    /// The head's first column.
    pub offset: usize,
    /// The head's columns.
    pub head_dim: usize,
    /// The scores' factor, 1 / sqrt(head_dim) in BERT.
    pub scale: f32,
}

/// A thread's reusable buffers: the head's keys transposed, the key bias and one row group's
/// scores.
#[derive(Default)]
pub struct Scratch {
    keys: Vec<f32>,
    bias: Vec<f32>,
    scores: Vec<f32>,
}

/// The head's context into `out` (the window's `[len, hidden]` rows; only this head's columns
/// are written). `ROWS` query rows go together, their blocks kept in registers.
///
/// # Safety
/// `B`'s instructions are available (see [`Block`]); `out` holds `len x hidden` floats and no
/// one else writes this head's columns; `head_dim` is a multiple of [`BLOCK`]; `q`, `k`, `v`
/// hold `len` rows of `hidden` floats with `offset + head_dim <= hidden`.
#[inline(always)]
pub unsafe fn attend<B: Block, const ROWS: usize>(
    head: &Head,
    scratch: &mut Scratch,
    out: *mut f32,
) {
    let len = head.mask.len();
    let padded = len.div_ceil(BLOCK) * BLOCK;
    transpose_keys::<B>(head, padded, &mut scratch.keys);
    scratch.bias.clear();
    scratch.bias.extend_from_slice(head.mask);
    scratch.bias.resize(padded, f32::NEG_INFINITY);
    scratch.scores.resize(ROWS * padded, 0.0);
    for first in (0..len).step_by(ROWS) {
        let rows: [*const f32; ROWS] = std::array::from_fn(|r| {
            let row = (first + r).min(len - 1);
            head.q.as_ptr().add(row * head.hidden + head.offset)
        });
        scores::<B, ROWS>(head, scratch, rows, padded);
        let mut inverse = [0.0; ROWS];
        for (r, inverse) in inverse.iter_mut().enumerate() {
            *inverse = softmax_row::<B>(&mut scratch.scores[r * padded..][..padded]);
        }
        let context = |r: usize| out.add((first + r) * head.hidden + head.offset);
        let rows_here = ROWS.min(len - first);
        weigh_values::<B, ROWS>(head, &scratch.scores, padded, &inverse, rows_here, context);
    }
}

/// The head's keys as `head_dim` rows of `padded` floats (zeros past `len`).
///
/// # Safety
/// As [`attend`].
#[inline(always)]
unsafe fn transpose_keys<B: Block>(head: &Head, padded: usize, keys: &mut Vec<f32>) {
    let len = head.mask.len();
    keys.resize(head.head_dim * padded, 0.0);
    let column = head.k.as_ptr().add(head.offset);
    for tile in (0..padded).step_by(BLOCK) {
        let count = len.saturating_sub(tile).min(BLOCK);
        for d in (0..head.head_dim).step_by(BLOCK) {
            let src = Strided::new(column.add(tile * head.hidden + d), head.hidden);
            let dst = Strided::new(keys.as_mut_ptr().add(d * padded + tile), padded);
            B::transpose(src, count, dst);
        }
    }
}

/// The scaled, masked scores of `rows` against every key, into the scratch's score rows.
#[inline(always)]
unsafe fn scores<B: Block, const ROWS: usize>(
    head: &Head,
    scratch: &mut Scratch,
    rows: [*const f32; ROWS],
    padded: usize,
) {
    let keys = scratch.keys.as_ptr();
    let out = scratch.scores.as_mut_ptr();
    for tile in (0..padded).step_by(BLOCK) {
        let mut acc = [B::splat(0.0); ROWS];
        for d in 0..head.head_dim {
            let k = B::load(keys.add(d * padded + tile));
            for (a, row) in acc.iter_mut().zip(rows) {
                *a = a.mul_add(*row.add(d), k);
            }
        }
        let bias = B::load(scratch.bias.as_ptr().add(tile));
        for (r, a) in acc.into_iter().enumerate() {
            a.scale_add(head.scale, bias)
                .store(out.add(r * padded + tile));
        }
    }
}

/// One score row replaced by exp(score - max), returning 1 / their sum.
#[inline(always)]
unsafe fn softmax_row<B: Block>(row: &mut [f32]) -> f32 {
    let blocks = || (0..row.len()).step_by(BLOCK);
    let mut widest = B::splat(f32::NEG_INFINITY);
    for at in blocks() {
        widest = widest.max(B::load(row.as_ptr().add(at)));
    }
    let largest = widest.largest();
    let mut partial = B::splat(0.0);
    for at in blocks() {
        let e = B::load(row.as_ptr().add(at)).exp_minus(largest);
        e.store(row.as_mut_ptr().add(at));
        partial = partial.add(e);
    }
    1.0 / partial.total()
}

/// Each row's context: the values weighed by its exp-scores, times its `inverse` sum, written
/// to `context(r)`, a [`BLOCK`] of head columns at a time.
#[inline(always)]
unsafe fn weigh_values<B: Block, const ROWS: usize>(
    head: &Head,
    scores: &[f32],
    padded: usize,
    inverse: &[f32; ROWS],
    rows_here: usize,
    context: impl Fn(usize) -> *mut f32,
) {
    let len = head.mask.len();
    let values = head.v.as_ptr().add(head.offset);
    for chunk in (0..head.head_dim).step_by(BLOCK) {
        let mut acc = [B::splat(0.0); ROWS];
        for j in 0..len {
            let v = B::load(values.add(j * head.hidden + chunk));
            for (r, a) in acc.iter_mut().enumerate() {
                *a = a.mul_add(*scores.get_unchecked(r * padded + j), v);
            }
        }
        for (r, a) in acc.into_iter().enumerate().take(rows_here) {
            a.times(inverse[r]).store(context(r).add(chunk));
        }
    }
}
