//! Symmetric int8 quantization of weights, for ONNX Runtime's `DynamicQuantizeMatMul`
//! (activations are quantized at run time by the kernel) and for embedding tables. Per-channel
//! scales were measured more accurate and at least as fast as per-tensor ones on this CPU
//! (../shared/TOOLCHAIN.md).

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
/// transposed `[in, out]` layout that `x @ W^T` needs.
pub fn quantize_columns(
    weight: &[f32],
    out_features: usize,
    in_features: usize,
) -> QuantizedMatrix {
    let scales = row_scales(weight, out_features, in_features);
    let mut values = vec![0i8; out_features * in_features];
    for o in 0..out_features {
        for i in 0..in_features {
            values[i * out_features + o] = to_int8(weight[o * in_features + i], scales[o]);
        }
    }
    QuantizedMatrix { values, scales }
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
}
