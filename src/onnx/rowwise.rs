//! int8 matrix products whose activations are quantized per row (each token its own
//! symmetric scale) instead of per tensor: a window's logits then never depend on the other
//! windows of its batch, and a token with outlier activations no longer coarsens every other
//! token's quantization. ONNX Runtime's fused dynamic-quantization kernels take one activation
//! scale per tensor, so this is written as `QuantizeLinear` (rounding, saturation and the cast
//! in one pass) and `MatMulIntegerToFloat` (integer product, weight scales and the cast in one
//! kernel), with the row scale applied after: 25% faster than the same arithmetic in
//! elementwise primitives (bench/RESULTS.md).

use super::graph::{attr_int, attr_ints, GraphBuilder};

/// An activation tensor quantized row by row at run time.
#[derive(Debug, Clone)]
pub struct RowQuantized {
    /// uint8 codes, zero point 128.
    pub codes: String,
    /// Each row's step (`[.., 1]`).
    pub row_scale: String,
}

/// Quantizes `x` (`[.., in]`) row by row onto -127..=127, stored as uint8 with zero point 128
/// (the u8 x s8 form ONNX Runtime's integer kernels run fastest). Done once per input, however
/// many dense layers read it (the query, key and value projections share one).
pub fn quantize_activation_rows(g: &mut GraphBuilder, x: &str) -> RowQuantized {
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
    let zero_point = g.uint8_const("rowwise_zero_point", &[], &[128]);
    let codes = g.node("QuantizeLinear", &[&steps, &unit, &zero_point], vec![]);
    RowQuantized { codes, row_scale }
}

/// `x @ W + bias` for row-quantized `x` and int8 `values` (`[in, out]`, zero point 0) with
/// per-column `w_scales`.
pub fn rowwise_int8_matmul(
    g: &mut GraphBuilder,
    x: &RowQuantized,
    values: &str,
    w_scales: &str,
    bias: &str,
) -> String {
    let unit = g.float_const("rowwise_unit", &[], &[1.0]);
    let zero_point = g.uint8_const("rowwise_zero_point", &[], &[128]);
    let product = g.contrib(
        "MatMulIntegerToFloat",
        &[&x.codes, values, &unit, w_scales, &zero_point],
        vec![],
    );
    let product = g.node("Mul", &[&product, &x.row_scale], vec![]);
    g.node("Add", &[&product, bias], vec![])
}
