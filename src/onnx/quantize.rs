//! Symmetric per-output-channel int8 quantization of weight matrices, for ONNX Runtime's
//! `DynamicQuantizeMatMul` (activations are quantized at run time by the kernel). Per-channel
//! scales were measured more accurate and at least as fast as per-tensor ones on this CPU
//! (../shared/TOOLCHAIN.md).

/// An `[in, out]` weight matrix as int8 with one scale per output column.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedMatrix {
    /// Row-major `[in, out]` values.
    pub values: Vec<i8>,
    /// Scale of each output column: `w ≈ value * scale`.
    pub scales: Vec<f32>,
}

/// Quantizes a PyTorch-layout `[out, in]` weight into the transposed `[in, out]` layout that
/// `x @ W^T` needs.
pub fn quantize_columns(
    weight: &[f32],
    out_features: usize,
    in_features: usize,
) -> QuantizedMatrix {
    let scales: Vec<f32> = (0..out_features)
        .map(|o| {
            let row = &weight[o * in_features..(o + 1) * in_features];
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if max > 0.0 {
                max / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let mut values = vec![0i8; out_features * in_features];
    for o in 0..out_features {
        for i in 0..in_features {
            let q = (weight[o * in_features + i] / scales[o])
                .round()
                .clamp(-127.0, 127.0);
            values[i * out_features + o] = q as i8;
        }
    }
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
    fn quantized_columns_reconstruct_within_half_a_step() {
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
    }
}
