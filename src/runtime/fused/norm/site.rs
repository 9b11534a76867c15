//! Finds where the exporter ends a dense layer (`onnx::bert::dense` and `layers`): its product
//! (`MatMul`, or `MatMulIntegerToFloat`), the per-token step `Mul` of a row-wise int8 product,
//! the bias `Add`, the residual `Add` of the previous layer normalization's output, and
//! `LayerNormalization` over the last axis. Each is replaced by one
//! [`ADD_LAYER_NORMALIZATION`](super::ADD_LAYER_NORMALIZATION) node only when every node,
//! constant and reader is exactly that.

use crate::onnx::proto::{attribute_type, AttributeProto, NodeProto};
use crate::runtime::fused::pattern::{attribute, Site, Wiring};

/// ONNX's `LayerNormalization` epsilon when the node has none.
const DEFAULT_EPSILON: f32 = 1e-5;

/// The producers a dense layer's product may come from: (domain, operator).
const PRODUCTS: [(&str, &str); 2] = [("", "MatMul"), ("com.microsoft", "MatMulIntegerToFloat")];

/// The per-token step `Mul` that makes `value`, if it is one: the product times the step of
/// a per-token site (`Max` of the row maximum and the floor, over the levels), with nothing
/// else reading the product. With the product and the step.
fn row_step<'g>(w: &Wiring<'g>, value: &str) -> Option<(usize, &'g str, &'g str)> {
    let rescale = w.made_by(value, "Mul", 2)?;
    let [product, step] = [0, 1].map(|i| w.node(rescale).input[i].as_str());
    let divide = w.made_by(step, "Div", 2)?;
    w.made_by(&w.node(divide).input[0], "Max", 2)?;
    (w.only_reader(product, "Mul") == Some(rescale)).then_some((rescale, product, step))
}

/// The bias `Add` that makes `value`, if it is one (a constant vector second), with what it
/// adds the bias to and the bias.
fn bias_add<'g>(w: &Wiring<'g>, value: &str) -> Option<(usize, &'g str, &'g str)> {
    let add = w.made_by(value, "Add", 2)?;
    let [sum, bias] = [0, 1].map(|i| w.node(add).input[i].as_str());
    (w.is_vector(bias) && w.only_reader(sum, "Add") == Some(add)).then_some((add, sum, bias))
}

/// Whether `value` is a dense layer's product.
fn is_product(w: &Wiring, value: &str) -> bool {
    w.maker(value).is_some_and(|node| {
        PRODUCTS
            .iter()
            .any(|&(domain, op)| node.domain == domain && node.op_type == op)
    })
}

/// The layer's end whose `LayerNormalization` is node `norm`, if it is one the kernel runs.
pub fn site_at(w: &Wiring, norm: usize, domain: &str, name: &str) -> Option<Site> {
    let ln = w.node(norm);
    let [summed, gamma, beta] = [0, 1, 2].map(|i| ln.input.get(i).map(String::as_str));
    let (summed, gamma, beta) = (summed?, gamma?, beta?);
    let residual_add = w.made_by(summed, "Add", 2)?;
    let [layer, residual] = [0, 1].map(|i| w.node(residual_add).input[i].as_str());
    let biased = bias_add(w, layer);
    let unbiased = biased.map_or(layer, |(_, sum, _)| sum);
    let stepped = row_step(w, unbiased);
    let product = stepped.map_or(unbiased, |(_, product, _)| product);
    let last_axis = attribute(ln, "axis").is_none_or(|a| a.i == -1);
    let float_stash = attribute(ln, "stash_type").is_none_or(|a| a.i == 1);
    let matches = ln.input.len() == 3
        && ln.output.len() == 1
        && last_axis
        && float_stash
        && w.is_vector(gamma)
        && w.is_vector(beta)
        && w.only_reader(summed, "LayerNormalization") == Some(norm)
        && w.only_reader(layer, "Add") == Some(residual_add)
        && w.made_by(residual, "LayerNormalization", 3).is_some()
        && is_product(w, product);
    if !matches {
        return None;
    }
    let epsilon = attribute(ln, "epsilon").map_or(DEFAULT_EPSILON, |a| a.f);
    let step = stepped.map_or("", |(_, _, step)| step);
    let bias = biased.map_or("", |(_, _, bias)| bias);
    let mut replaced = vec![residual_add, norm];
    replaced.extend(biased.map(|(add, _, _)| add));
    replaced.extend(stepped.map(|(mul, _, _)| mul));
    Some(Site {
        replaced,
        at: norm,
        node: NodeProto {
            input: [product, step, bias, residual, gamma, beta]
                .map(String::from)
                .to_vec(),
            output: ln.output.clone(),
            name: name.into(),
            op_type: super::ADD_LAYER_NORMALIZATION.into(),
            attribute: vec![AttributeProto {
                name: super::EPSILON.into(),
                f: epsilon,
                r#type: attribute_type::FLOAT,
                ..AttributeProto::default()
            }],
            domain: domain.into(),
        },
    })
}
