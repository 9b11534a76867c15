//! int8 matrix products whose activations are quantized per row (each token its own
//! symmetric scale) instead of per tensor: a window's logits then never depend on the other
//! windows of its batch, and a token with outlier activations no longer coarsens every other
//! token's quantization. Written with standard operators (`MatMulInteger` and elementwise
//! ops), since ONNX Runtime's fused int8 kernels only take one activation scale per tensor.

use super::graph::{attr_int, attr_ints, GraphBuilder};
use super::proto::data_type;

/// `x @ W + bias` for int8 `values` (`[in, out]`, zero point 0) with per-column `w_scales`,
/// quantizing `x` (`[.., in]`) row by row at run time.
pub fn rowwise_int8_matmul(
    g: &mut GraphBuilder,
    x: &str,
    values: &str,
    w_scales: &str,
    bias: &str,
) -> String {
    let magnitude = g.node("Abs", &[x], vec![]);
    let largest = g.node(
        "ReduceMax",
        &[&magnitude],
        vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
    );
    // An all-zero row keeps a tiny positive scale instead of dividing by zero.
    let floor = g.float_const("rowwise_floor", &[1], &[1e-12]);
    let largest = g.node("Max", &[&largest, &floor], vec![]);
    let per_step = g.float_const("rowwise_step", &[1], &[1.0 / 127.0]);
    let scale = g.node("Mul", &[&largest, &per_step], vec![]);
    let steps = g.node("Div", &[x, &scale], vec![]);
    let steps = g.node("Round", &[&steps], vec![]);
    // Steps lie in -127..=127; shifted by 128 they are uint8 with zero point 128, the u8 x s8
    // form ONNX Runtime's integer kernels run fastest.
    let shift = g.float_const("rowwise_shift", &[1], &[128.0]);
    let steps = g.node("Add", &[&steps, &shift], vec![]);
    let quantized = g.node(
        "Cast",
        &[&steps],
        vec![attr_int("to", data_type::UINT8.into())],
    );
    let zero_point = g.uint8_const("rowwise_zero_point", &[], &[128]);
    let product = g.node("MatMulInteger", &[&quantized, values, &zero_point], vec![]);
    let product = g.node(
        "Cast",
        &[&product],
        vec![attr_int("to", data_type::FLOAT.into())],
    );
    let product = g.node("Mul", &[&product, &scale], vec![]);
    let product = g.node("Mul", &[&product, w_scales], vec![]);
    g.node("Add", &[&product, bias], vec![])
}
