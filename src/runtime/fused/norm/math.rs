//! One row of a dense layer's end: its product's row step and bias, the residual, and layer
//! normalization, in passes over a row that stays in the L1 cache. The sum is the
//! graph's, operation by operation (`((x * step) + bias) + residual`); the normalization is
//! bertqa's: the mean, then the variance of the centered row, each as 16 running sums (column
//! mod 16) added in lane order at the end, then `((v - mean) * inverse) * gamma + beta`, with
//! no fused multiply-add.
//! So a row's bits are the same at every vector width and on every CPU, and do not depend on
//! its batch.

/// Running sums per row: one AVX-512 register, two AVX2 ones, 16 scalars.
const LANES: usize = 16;

/// A layer normalization's constants: the scale and shift of each column, and the epsilon
/// added to the variance.
#[derive(Debug, Clone, Copy)]
pub struct Normalization<'a> {
    /// Each column's scale (`gamma`).
    pub gamma: &'a [f32],
    /// Each column's shift (`beta`).
    pub beta: &'a [f32],
    /// Added to the variance, so that a constant row divides by a finite number.
    pub epsilon: f32,
}

/// What one row adds up: the product's row, its step (1.0 when the product has none: `x *
/// 1.0` is `x`), the bias (-0.0 when the layer has none: `x + -0.0` is `x`, zeros' signs too)
/// and the residual row.
#[derive(Debug, Clone, Copy)]
pub struct RowSum<'a> {
    /// The dense layer's product.
    pub product: &'a [f32],
    /// The product's per-token step.
    pub step: f32,
    /// The dense layer's bias.
    pub bias: &'a [f32],
    /// The layer's input, added back.
    pub residual: &'a [f32],
}

/// `out` <- the layer normalization of `sum`'s row. Each step is a plain loop the compiler
/// vectorizes (one loop doing the sum, the sums and the squares together was left scalar,
/// and with the squares beside the sum, half-vectorized: 1.4x the time of these).
#[inline(always)]
pub fn add_and_normalize(sum: RowSum, norm: Normalization, out: &mut [f32]) {
    let terms = out
        .iter_mut()
        .zip(sum.product)
        .zip(sum.bias)
        .zip(sum.residual);
    for (((o, &x), &b), &r) in terms {
        *o = ((x * sum.step) + b) + r;
    }
    let count = out.len() as f32;
    let mean = lane_sum(out, |v| v) / count;
    out.iter_mut().for_each(|v| *v -= mean);
    let variance = lane_sum(out, |v| v * v) / count;
    let inverse = 1.0 / (variance + norm.epsilon).sqrt();
    let columns = out.iter_mut().zip(norm.gamma).zip(norm.beta);
    for ((v, &g), &b) in columns {
        *v = ((*v * inverse) * g) + b;
    }
}

/// The sum of `term` of each value, as [`LANES`] running sums added in lane order, then the
/// rest in order.
#[inline(always)]
fn lane_sum(values: &[f32], term: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (blocks, rest) = values.as_chunks::<LANES>();
    for block in blocks {
        for (lane, &v) in lanes.iter_mut().zip(block) {
            *lane += term(v);
        }
    }
    let lanes_total = lanes.iter().fold(0.0, |total, &v| total + v);
    rest.iter().fold(lanes_total, |total, &v| total + term(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layer normalization in f64, the definition the row rounds.
    fn reference(row: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32) -> Vec<f64> {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let variance = row
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        let inverse = 1.0 / (variance + f64::from(epsilon)).sqrt();
        row.iter()
            .zip(gamma.iter().zip(beta))
            .map(|(&v, (&g, &b))| (f64::from(v) - mean) * inverse * f64::from(g) + f64::from(b))
            .collect()
    }

    #[test]
    fn a_row_is_the_graphs_sum_normalized() {
        let width = 384 + 7;
        let wave = |seed: usize| -> Vec<f32> {
            (0..width)
                .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 - 1000.0) / 250.0)
                .collect()
        };
        let (product, bias, residual, gamma, beta) = (wave(1), wave(2), wave(3), wave(4), wave(5));
        let mut out = vec![f32::NAN; width];
        let sum = RowSum {
            product: &product,
            step: 0.37,
            bias: &bias,
            residual: &residual,
        };
        let norm = Normalization {
            gamma: &gamma,
            beta: &beta,
            epsilon: 1e-12,
        };
        add_and_normalize(sum, norm, &mut out);
        let summed: Vec<f32> = (0..width)
            .map(|i| ((product[i] * 0.37) + bias[i]) + residual[i])
            .collect();
        let expected = reference(&summed, &gamma, &beta, 1e-12);
        for (i, (&got, want)) in out.iter().zip(expected).enumerate() {
            assert!(
                (f64::from(got) - want).abs() < 2e-5 * (1.0 + want.abs()),
                "column {i}: {got} against {want}"
            );
        }
    }

    #[test]
    fn a_constant_row_gives_the_shift_and_no_step_or_bias_changes_nothing() {
        let width = 40;
        let (gamma, beta) = (vec![2.0; width], vec![0.5; width]);
        let norm = Normalization {
            gamma: &gamma,
            beta: &beta,
            epsilon: 1e-12,
        };
        let mut out = vec![0.0; width];
        let sum = |product| RowSum {
            product,
            step: 1.0,
            bias: &[-0.0; 40],
            residual: &[0.0; 40],
        };
        add_and_normalize(sum(&[3.0; 40]), norm, &mut out);
        assert!(out.iter().all(|&v| v == 0.5), "{out:?}");
        let product: Vec<f32> = (0..width).map(|i| i as f32).collect();
        let mut with_nothing = vec![0.0; width];
        add_and_normalize(sum(&product), norm, &mut with_nothing);
        let mut direct = vec![0.0; width];
        let zeros = vec![0.0; width];
        let plain = RowSum {
            product: &zeros,
            step: 1.0,
            bias: &[-0.0; 40],
            residual: &product,
        };
        add_and_normalize(plain, norm, &mut direct);
        assert_eq!(with_nothing, direct);
    }
}
