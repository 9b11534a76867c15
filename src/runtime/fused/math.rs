//! Per-row int8 quantization of smoothed activations, in exactly the arithmetic of the
//! exported graph's operators (IEEE multiplications and divisions, rounding half to even,
//! no fused multiply-add), so the fused kernel's codes are those ONNX Runtime's operators
//! give, bit for bit, at whatever vector width the compiler picks for this CPU. The one
//! exception is a GELU site's erf (`activation`), bertqa's own: the same bits at every width,
//! not ONNX Runtime's.

use super::activation::{gelu, Activation};

/// Adding and subtracting 1.5 x 2^23 rounds an f32 of magnitude below 2^22 to the nearest
/// integer, ties to even (the default rounding mode), in two vectorizable additions.
const ROUNDER: f32 = 12_582_912.0;

/// How one row is quantized: the exported graph's constants for the site.
#[derive(Debug, Clone, Copy)]
pub struct RowQuantization {
    /// Codes either side of the zero point (127).
    pub levels: f32,
    /// Smallest row maximum, so that a row of zeros has a finite step.
    pub floor: f32,
    /// The code of 0.0 (128 for unsigned codes).
    pub zero_point: u8,
    /// Applied to each value before the factors (GELU only with `--kernels fused-attention`,
    /// whose codes may differ from ONNX Runtime's in a last-bit tie).
    pub activation: Activation,
}

/// One row: `scratch` <- the site's activation of `y`, times `smooth` (the SmoothQuant
/// factors), then `codes` <- its codes with one step for the row (its largest magnitude over
/// `levels`), which is returned. The graph's `Mul`, `Abs`, `ReduceMax`, `Max`, `Div`s, `Mul`
/// and `QuantizeLinear` (unit step) in one pass over the row and one over `scratch`, which
/// stays in the L1 cache.
#[inline(always)]
pub fn smooth_quantize_row(
    y: &[f32],
    smooth: &[f32],
    site: RowQuantization,
    scratch: &mut [f32],
    codes: &mut [u8],
) -> f32 {
    const LANES: usize = 16;
    let values = scratch.iter_mut().zip(y).zip(smooth);
    match site.activation {
        Activation::Identity => values.for_each(|((scaled, &y), &s)| *scaled = y * s),
        Activation::Gelu => values.for_each(|((scaled, &y), &s)| *scaled = gelu(y) * s),
    }
    // Sixteen running maxima, so the loop runs in vector registers.
    let mut widest = [0.0f32; LANES];
    let blocks = scratch.chunks_exact(LANES);
    let rest = blocks.remainder();
    for block in blocks {
        for (w, &v) in widest.iter_mut().zip(block) {
            let magnitude = v.abs();
            *w = if magnitude > *w { magnitude } else { *w };
        }
    }
    let largest = widest
        .iter()
        .chain(rest)
        .fold(site.floor, |m, &v| m.max(v.abs()));
    let inverse = site.levels / largest;
    let zero = f32::from(site.zero_point);
    for (code, &scaled) in codes.iter_mut().zip(scratch.iter()) {
        let shifted = ((scaled * inverse + ROUNDER) - ROUNDER) + zero;
        // `max`/`min` also send NaN to 0 (`clamp` would keep it), so the value converted is
        // always in 0..=255.
        #[allow(clippy::manual_clamp)]
        let clamped = shifted.max(0.0).min(255.0);
        // SAFETY: `clamped` is finite and within 0..=255 (see above).
        *code = unsafe { clamped.to_int_unchecked::<i32>() } as u8;
    }
    largest / site.levels
}

/// One row of a site with a calibrated step: `codes` <- the codes of `y` x `smooth` at `step`,
/// as the graph's `Mul` and `QuantizeLinear` (MLAS: divide by the step, clamp to the codes'
/// range around the zero point, round half to even, add the zero point) make them.
#[inline(always)]
pub fn smooth_quantize_fixed(
    y: &[f32],
    smooth: &[f32],
    step: f32,
    zero_point: u8,
    codes: &mut [u8],
) {
    let zero = f32::from(zero_point);
    let (low, high) = (-zero, 255.0 - zero);
    for ((code, &y), &s) in codes.iter_mut().zip(y).zip(smooth) {
        let scaled = (y * s) / step;
        #[allow(clippy::manual_clamp)] // NaN goes to `low`, so the conversion below is sound
        let clamped = scaled.max(low).min(high);
        let shifted = ((clamped + ROUNDER) - ROUNDER) + zero;
        // SAFETY: `shifted` is finite and within 0..=255 (clamped around the zero point).
        *code = unsafe { shifted.to_int_unchecked::<i32>() } as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: RowQuantization = RowQuantization {
        levels: 127.0,
        floor: 1e-12,
        zero_point: 128,
        activation: Activation::Identity,
    };

    #[test]
    fn a_row_quantizes_as_the_exported_graphs_operators_do() {
        let y: Vec<f32> = (0..40).map(|i| (i as f32 - 17.0) * 0.37).collect();
        let smooth: Vec<f32> = (0..40).map(|i| 0.5 + i as f32 * 0.05).collect();
        let (mut scratch, mut codes) = (vec![0.0; 40], vec![0u8; 40]);
        let step = smooth_quantize_row(&y, &smooth, SITE, &mut scratch, &mut codes);
        // The operators one by one: Mul, Abs + ReduceMax, Max, Div, Div, Mul, QuantizeLinear.
        let scaled: Vec<f32> = y.iter().zip(&smooth).map(|(&v, &s)| v * s).collect();
        let largest = scaled.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
        assert_eq!(step, largest / 127.0);
        let inverse = 127.0 / largest;
        for (i, (&code, &v)) in codes.iter().zip(&scaled).enumerate() {
            let expected = ((v * inverse).round_ties_even() + 128.0).clamp(0.0, 255.0) as u8;
            assert_eq!(code, expected, "column {i}");
        }
        let ends = (codes.iter().min(), codes.iter().max());
        assert_eq!(
            ends,
            (Some(&107), Some(&255)),
            "-3.145 and 19.94 at a step of 19.94/127"
        );
    }

    #[test]
    fn a_gelu_site_quantizes_the_gelu_of_each_value() {
        let y: Vec<f32> = (0..40).map(|i| (i as f32 - 17.0) * 0.37).collect();
        let smooth = vec![0.5; 40];
        let (mut scratch, mut codes) = (vec![0.0; 40], vec![0u8; 40]);
        let site = RowQuantization {
            activation: Activation::Gelu,
            ..SITE
        };
        let step = smooth_quantize_row(&y, &smooth, site, &mut scratch, &mut codes);
        let activated: Vec<f32> = y.iter().map(|&v| gelu(v) * 0.5).collect();
        let (mut plain_scratch, mut plain_codes) = (vec![0.0; 40], vec![0u8; 40]);
        let plain = smooth_quantize_row(
            &activated,
            &[1.0; 40],
            SITE,
            &mut plain_scratch,
            &mut plain_codes,
        );
        assert_eq!((step, &codes), (plain, &plain_codes));
        assert!(
            codes[..10].iter().all(|&c| c == 128 || c == 127),
            "GELU of -6.3..-3 is about 0"
        );
    }

    #[test]
    fn a_fixed_step_divides_clamps_and_rounds_half_to_even() {
        let y = [0.25, 0.75, -0.25, 100.0, -100.0, 0.0, 1.25];
        let mut codes = [0u8; 7];
        smooth_quantize_fixed(&y, &[2.0; 7], 1.0, 128, &mut codes);
        // 0.5 -> 0, 1.5 -> 2, -0.5 -> 0, then the ends of the code range, 0, 2.5 -> 2.
        assert_eq!(codes, [128, 130, 128, 255, 0, 128, 130]);
    }

    #[test]
    fn ties_round_to_even_and_zeros_take_the_floor() {
        // 0.5 and 1.5 steps: ties go to the even code, as QuantizeLinear's do.
        let y = [127.0, 0.5, 1.5, -0.5, -2.5];
        let (mut scratch, mut codes) = (vec![0.0; 5], vec![0u8; 5]);
        let step = smooth_quantize_row(&y, &[1.0; 5], SITE, &mut scratch, &mut codes);
        assert_eq!((step, &codes[..]), (1.0, &[255, 128, 130, 128, 126][..]));
        let step = smooth_quantize_row(&[0.0; 5], &[1.0; 5], SITE, &mut scratch, &mut codes);
        assert_eq!((step, codes[0]), (1e-12 / 127.0, 128));
    }
}
