//! The activation a per-token site may apply before it quantizes: GELU as the exporter writes
//! it (`x * (1 + erf(x / sqrt 2)) * 0.5`), taken into the quantization with `--kernels
//! fused-attention`, so the feed-forward's widest tensor is read once instead of written and
//! read again by ONNX Runtime's `Gelu`. erf is bertqa's own rational function, evaluated with
//! exactly rounded IEEE operations (each Horner step one fused multiply-add): the same bits at
//! every vector width and on every CPU, though not ONNX Runtime's (its erf rounds differently).

/// What a site does to each value before the smoothing factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Nothing: the site reads the activation as it is.
    Identity,
    /// The exporter's erf GELU.
    Gelu,
}

/// Past this, erf(x) is 1.0 in f32 (erf(3.92) = 1 - 3.4e-8), so arguments are clamped here.
const ERF_EDGE: f32 = 3.92;

/// erf(x) = x P(x^2) / Q(x^2) on [-3.92, 3.92]: coefficients of x^0 .. x^12 of P and
/// x^0 .. x^8 of Q, fitted by bertqa (weighted least squares on Chebyshev nodes); within 3.3e-7
/// of erf in this evaluation (every 37th f32 of the range checked).
const ERF_P: [f32; 7] = [
    1.128_378_9,
    0.203_587_3,
    0.051_059_4,
    0.003_861_170_5,
    0.000_145_976_5,
    -1.977_374e-6,
    1.989_322_1e-8,
];
/// See [`ERF_P`].
const ERF_Q: [f32; 5] = [
    1.0,
    0.513_754_55,
    0.116_515_49,
    0.014_669_226_5,
    0.000_995_853_6,
];

/// erf(x), as [`ERF_P`] says. Inlined into vectorized loops: every step is one exactly
/// rounded operation per element. The Horner steps are fused multiply-adds, one instruction
/// where the loop runs at AVX2 or AVX-512 width (`runtime::widest`): together with GELU's
/// division by sqrt 2 made a product, a GELU row took 0.55x the time of separate products and
/// sums on an Intel Xeon.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    // Two selects, which vectorize; NaN stays NaN, as through the graph's `Erf`.
    let x = if x > ERF_EDGE { ERF_EDGE } else { x };
    let x = if x < -ERF_EDGE { -ERF_EDGE } else { x };
    let z = x * x;
    let horner = |c: &[f32]| {
        c.iter()
            .rev()
            .fold(0.0f32, |acc: f32, &c| acc.mul_add(z, c))
    };
    (x * horner(&ERF_P)) / horner(&ERF_Q)
}

/// The exporter's GELU of `x`, its operators in its order (`Div` by sqrt 2, `Erf`, `Add` 1,
/// `Mul` by `x`, `Mul` by 0.5), except that the division is a product by 1 / sqrt 2: a vector
/// division costs several products, and the argument moves by at most one rounding.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    x * (erf(x * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by its series (x small) or continued fraction (x large), the definition the
    /// rational function approximates.
    fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let value = if a < 2.5 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut fraction = 0.0;
            for k in (1..60).rev() {
                fraction = f64::from(k) / 2.0 / (a + fraction);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + fraction)
        };
        value.copysign(x)
    }

    #[test]
    fn erf_is_within_four_tenths_of_a_millionth_everywhere() {
        let mut worst: f64 = 0.0;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((f64::from(erf(x)) - erf_f64(f64::from(x))).abs());
        }
        assert!(worst < 4e-7, "erf off by {worst}");
        assert_eq!(erf(100.0), erf(ERF_EDGE));
        assert!((erf(ERF_EDGE) - 1.0).abs() < 4e-7);
        assert_eq!(erf(0.0), 0.0);
    }

    #[test]
    fn gelu_follows_the_exported_formula() {
        for x in [-8.0f32, -2.5, -0.7, 0.0, 0.3, 1.0, 4.0, 9.0] {
            let exact = 0.5 * f64::from(x) * (1.0 + erf_f64(f64::from(x) / 2f64.sqrt()));
            assert!(
                (f64::from(gelu(x)) - exact).abs() < 1e-6 * (1.0 + exact.abs()),
                "{x}"
            );
        }
    }
}
