//! How an int8 graph quantizes the input of its dense layers, in the two forms whose logits
//! never depend on the other windows of a batch (ONNX Runtime's fused dynamic-quantization
//! kernels take one scale per batch, so a window's answer would change with its batch mates):
//!
//! - **per row**: each token its own symmetric scale, found at run time, so a token with
//!   outlier activations never coarsens another's. ONNX Runtime's integer kernels take one
//!   activation scale per tensor, so this is `QuantizeLinear` (rounding, saturation and the
//!   cast in one pass) and `MatMulIntegerToFloat` (integer product, weight scales and the cast
//!   in one kernel) with the row scale and the bias applied after.
//! - **static**: one step per site, calibrated at export ([`super::clip`]): a single
//!   `QuantizeLinear` per site and one `MatMulIntegerToFloat` per layer with the bias folded
//!   in, none of the per-row search and rescaling that took about 40% of the row-wise graph's
//!   kernel time (bench/RESULTS.md).
//!
//! Both write codes -127..=127 as uint8 with zero point 128 (the u8 x s8 form ONNX Runtime's
//! integer kernels run fastest), once per input however many dense layers read it (the query,
//! key and value projections share one).

use super::graph::{attr_int, attr_ints, GraphBuilder};

/// A dense layer's input quantized to uint8 codes (zero point 128).
#[derive(Debug, Clone)]
pub enum QuantizedInput {
    /// Quantized row by row at run time.
    Rows {
        /// The codes.
        codes: String,
        /// Each row's step (`[.., 1]`).
        row_scale: String,
    },
    /// Quantized with the site's calibrated step.
    Static {
        /// The codes.
        codes: String,
        /// The step (a scalar constant).
        step: String,
    },
}

/// Quantizes `x` (`[.., in]`) row by row onto -127..=127.
pub fn quantize_rows(g: &mut GraphBuilder, x: &str) -> QuantizedInput {
    let magnitude = g.node("Abs", &[x], vec![]);
    let largest = g.node(
        "ReduceMax",
        &[&magnitude],
        vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
    );
    // An all-zero row keeps a tiny positive scale instead of dividing by zero.
    let tiny = g.float_const("rowwise_tiny", &[1], &[1e-12]);
    let largest = g.node("Max", &[&largest, &tiny], vec![]);
    let levels = g.float_const("rowwise_levels", &[1], &[127.0]);
    let row_scale = g.node("Div", &[&largest, &levels], vec![]);
    let steps_per_unit = g.node("Div", &[&levels, &largest], vec![]);
    let steps = g.node("Mul", &[x, &steps_per_unit], vec![]);
    let unit = g.float_const("rowwise_unit", &[], &[1.0]);
    let zero = zero_point(g);
    let codes = g.node("QuantizeLinear", &[&steps, &unit, &zero], vec![]);
    QuantizedInput::Rows { codes, row_scale }
}

/// Quantizes `x` with the constant `step` of site `key`; values beyond 127 steps saturate.
pub fn quantize_static(g: &mut GraphBuilder, x: &str, key: &str, step: f32) -> QuantizedInput {
    let step = g.float_tensor(&format!("static_step.{key}"), &[], &[step]);
    let zero = zero_point(g);
    let codes = g.node("QuantizeLinear", &[x, &step, &zero], vec![]);
    QuantizedInput::Static { codes, step }
}

fn zero_point(g: &mut GraphBuilder) -> String {
    g.uint8_const("activation_zero_point", &[], &[128])
}

/// `x @ W + bias` for the quantized `x` and int8 `values` (`[in, out]`, zero point 0) with
/// per-column `w_scales`.
pub fn int8_matmul(
    g: &mut GraphBuilder,
    x: &QuantizedInput,
    values: &str,
    w_scales: &str,
    bias: &str,
) -> String {
    let zero = zero_point(g);
    match x {
        QuantizedInput::Rows { codes, row_scale } => {
            let unit = g.float_const("rowwise_unit", &[], &[1.0]);
            let product = g.contrib(
                "MatMulIntegerToFloat",
                &[codes, values, &unit, w_scales, &zero],
                vec![],
            );
            // The row scale applies after the kernel, so the bias can only be added after it.
            let product = g.node("Mul", &[&product, row_scale], vec![]);
            g.node("Add", &[&product, bias], vec![])
        }
        QuantizedInput::Static { codes, step } => g.contrib(
            "MatMulIntegerToFloat",
            &[codes, values, step, w_scales, &zero, "", bias],
            vec![],
        ),
    }
}
