//! Symmetric int8 quantization of weights, for ONNX Runtime's `DynamicQuantizeMatMul` and
//! `MatMulIntegerToFloat` (activations are quantized at run time as uint8) and for embedding
//! tables. Per-channel scales were measured more accurate and at least as fast as per-tensor
//! ones (../shared/TOOLCHAIN.md).
//!
//! Matrix weights are bounded so that no CPU can saturate their product. Without AVX-512 VNNI
//! (AVX2, plain AVX-512), ONNX Runtime's u8 × s8 kernels multiply with `VPMADDUBSW`, which
//! adds the products of two neighbouring inputs (k, k+1) into a *saturating* 16-bit lane:
//! with uint8 activation codes up to 255 and int8 weight codes up to ±127 a pair reaches
//! 2 × 255 × 127 = 64,770, far past 32,767, and the answers then depend on the CPU. VNNI's
//! `VPDPBUSD` accumulates in 32 bits and never saturates. So each column's scale is chosen
//! such that two neighbouring codes of the same sign sum to at most [`PAIR_CODE_LIMIT`]
//! (255 × 128 = 32,640): full 8-bit precision where large weights are isolated, 7-bit
//! (ONNX Runtime's `reduce_range`) only where two large ones meet.

/// Largest sum of the magnitudes of two neighbouring same-sign weight codes of one column.
pub const PAIR_CODE_LIMIT: u32 = 128;

/// Largest uint8 activation code an int8 kernel multiplies (zero point included).
pub const ACTIVATION_CODE_MAX: u32 = 255;

/// An int8 matrix with one scale per channel: `w ≈ value * scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedMatrix {
    /// Row-major values (layout depends on the function that made it).
    pub values: Vec<i8>,
    /// Scale of each channel.
    pub scales: Vec<f32>,
}

/// Symmetric scale of each row of a row-major `[rows, cols]` matrix.
fn row_scales(weight: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..rows)
        .map(|r| {
            let max = weight[r * cols..(r + 1) * cols]
                .iter()
                .fold(0.0f32, |m, v| m.max(v.abs()));
            if max > 0.0 {
                max / 127.0
            } else {
                1.0
            }
        })
        .collect()
}

fn to_int8(value: f32, scale: f32) -> i8 {
    (value / scale).round().clamp(-127.0, 127.0) as i8
}

/// Quantizes a PyTorch-layout `[out, in]` weight, one scale per output column, into the
/// transposed `[in, out]` layout that `x @ W^T` needs, with scales that keep every pair of
/// neighbouring inputs within [`PAIR_CODE_LIMIT`] (see the module docs).
pub fn quantize_columns(
    weight: &[f32],
    out_features: usize,
    in_features: usize,
) -> QuantizedMatrix {
    let scales: Vec<f32> = weight.chunks(in_features).map(pair_bounded_scale).collect();
    let mut values = vec![0i8; out_features * in_features];
    for o in 0..out_features {
        for i in 0..in_features {
            values[i * out_features + o] = to_int8(weight[o * in_features + i], scales[o]);
        }
    }
    QuantizedMatrix { values, scales }
}

/// Re-quantizes an int8 weight (`[in, out]` layout, one scale per column) written without the
/// pair bound: a column whose neighbouring codes break [`PAIR_CODE_LIMIT`] is quantized again
/// from its dequantized values; every other column keeps its codes and scale, so
/// re-quantizing is idempotent and costs no precision where none was at risk.
pub fn requantize_columns(
    values: &[i8],
    scales: &[f32],
    in_features: usize,
    out_features: usize,
) -> QuantizedMatrix {
    let mut out = QuantizedMatrix {
        values: values.to_vec(),
        scales: scales.to_vec(),
    };
    for (o, &scale) in scales.iter().enumerate() {
        let codes: Vec<i8> = (0..in_features)
            .map(|k| values[k * out_features + o])
            .collect();
        if worst_pair_sum(&codes, in_features, 1) <= ACTIVATION_CODE_MAX * PAIR_CODE_LIMIT {
            continue;
        }
        let column: Vec<f32> = codes.iter().map(|&c| f32::from(c) * scale).collect();
        out.scales[o] = pair_bounded_scale(&column);
        for (k, &w) in column.iter().enumerate() {
            out.values[k * out_features + o] = to_int8(w, out.scales[o]);
        }
    }
    out
}

/// The scale of one column (its weights along the input): the largest magnitude, or the
/// largest same-sign neighbour pair, maps to 127. Rounding adds at most one step to a pair,
/// so no pair of codes exceeds 128 and no single code 127.
fn pair_bounded_scale(column: &[f32]) -> f32 {
    let single = column.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let pair = column
        .windows(2)
        .filter(|p| p[0].signum() == p[1].signum())
        .fold(0.0f32, |m, p| m.max(p[0].abs() + p[1].abs()));
    let largest = single.max(pair);
    if largest > 0.0 {
        largest / 127.0
    } else {
        1.0
    }
}

/// The largest 16-bit lane sum a saturating u8 × s8 kernel can form with these weights
/// (`[in, out]` layout as [`quantize_columns`] writes it) and any uint8 activations: the
/// check, independent of the CPU, that a graph cannot saturate (must be ≤ `i16::MAX`).
pub fn worst_pair_sum(values: &[i8], in_features: usize, out_features: usize) -> u32 {
    let code = |k: usize, o: usize| i32::from(values[k * out_features + o]);
    let mut worst = 0;
    for o in 0..out_features {
        for k in 0..in_features {
            let a = code(k, o);
            // Opposite signs cannot add up: each alone is covered when `k` reaches it.
            let partner = match (k + 1 < in_features).then(|| code(k + 1, o)) {
                Some(b) if (a > 0) == (b > 0) => b.abs(),
                _ => 0,
            };
            worst = worst.max((a.abs() + partner).unsigned_abs() * ACTIVATION_CODE_MAX);
        }
    }
    worst
}

/// Quantizes an embedding table `[rows, cols]` with one scale per row, layout kept: a row is
/// dequantized after it is gathered.
pub fn quantize_rows(table: &[f32], rows: usize, cols: usize) -> QuantizedMatrix {
    let scales = row_scales(table, rows, cols);
    let values = table
        .iter()
        .enumerate()
        .map(|(i, &v)| to_int8(v, scales[i / cols]))
        .collect();
    QuantizedMatrix { values, scales }
}

/// `[out, in]` → `[in, out]`.
pub fn transpose(weight: &[f32], out_features: usize, in_features: usize) -> Vec<f32> {
    let mut t = vec![0.0; weight.len()];
    for o in 0..out_features {
        for i in 0..in_features {
            t[i * out_features + o] = weight[o * in_features + i];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_channels_reconstruct_within_half_a_step() {
        // [out=2, in=3]
        let w = [0.5, -1.0, 0.25, 0.0, 0.0, 0.0];
        let q = quantize_columns(&w, 2, 3);
        assert_eq!(q.scales, vec![1.0 / 127.0, 1.0]);
        // transposed layout [in=3, out=2]
        assert_eq!(q.values, vec![64, 0, -127, 0, 32, 0]);
        for o in 0..2 {
            for i in 0..3 {
                let back = f32::from(q.values[i * 2 + o]) * q.scales[o];
                assert!((back - w[o * 3 + i]).abs() <= q.scales[o] / 2.0 + 1e-7);
            }
        }
        assert_eq!(transpose(&w, 2, 3), vec![0.5, 0.0, -1.0, 0.0, 0.25, 0.0]);
        let rows = quantize_rows(&w, 2, 3);
        assert_eq!(rows.values, vec![64, -127, 32, 0, 0, 0]);
        assert_eq!(rows.scales, q.scales);
    }

    #[test]
    fn neighbouring_large_weights_cannot_saturate_a_16_bit_lane() {
        // One output column whose two first inputs are both at the maximum: 8-bit codes
        // would be 127 + 127, and 255 x 254 = 64,770 saturates VPMADDUBSW.
        let w = [1.0, 1.0, -0.5, 0.01];
        let q = quantize_columns(&w, 1, 4);
        assert_eq!(q.values[..2], [64, 64]);
        assert!(worst_pair_sum(&q.values, 4, 1) <= i16::MAX as u32);
        // The flat 8-bit form of the same column is caught by the check.
        let flat: Vec<i8> = w.iter().map(|v| to_int8(*v, 1.0 / 127.0)).collect();
        assert_eq!(worst_pair_sum(&flat, 4, 1), 255 * 254);
        // An isolated large weight keeps 8-bit precision; opposite signs never saturate.
        let q = quantize_columns(&[1.0, -1.0, 0.0, 0.2], 1, 4);
        assert_eq!(q.values, vec![127, -127, 0, 25]);
        assert_eq!(worst_pair_sum(&q.values, 4, 1), 255 * 127);
    }

    #[test]
    fn rounding_never_lifts_a_pair_past_the_limit() {
        // Random columns: every same-sign neighbour pair stays within the limit after rounding.
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        for _ in 0..200 {
            let w: Vec<f32> = (0..64).map(|_| next() * next().abs().powi(3)).collect();
            let q = quantize_columns(&w, 1, 64);
            let worst = worst_pair_sum(&q.values, 64, 1);
            assert!(worst <= ACTIVATION_CODE_MAX * PAIR_CODE_LIMIT, "{worst}");
        }
    }
}
