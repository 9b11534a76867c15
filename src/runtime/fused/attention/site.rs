//! Finds the exporter's primitive attention (`onnx::bert::layers`, `OpStyle::Primitive`) in a
//! graph: per layer, Q, K and V each `Reshape`d to heads and `Transpose`d, `MatMul`, `Mul` by
//! the scale, `Add` of the mask, `Softmax`, `MatMul` by V, `Transpose` and `Reshape` back.
//! Each is replaced by one [`ATTENTION`](super::ATTENTION) node only when every node, constant
//! and reader is exactly that.

use crate::onnx::proto::NodeProto;
use crate::runtime::fused::pattern::{attribute, Site, Wiring};

use super::math::BLOCK;

/// The permutations the exporter writes: heads first (Q, V, the context) and K transposed.
const TO_HEADS: [i64; 4] = [0, 2, 1, 3];
const KEYS_TO_HEADS: [i64; 4] = [0, 2, 3, 1];

/// The value `Reshape`d into heads and `Transpose`d by `perm` to make `value`, which only
/// `reader` reads; with the heads shape's name and the two nodes.
fn unheaded<'g>(
    w: &Wiring<'g>,
    value: &str,
    perm: [i64; 4],
    reader: usize,
) -> Option<(&'g str, &'g str, [usize; 2])> {
    let transpose = w.made_by(value, "Transpose", 1)?;
    let split = w.node(transpose).input[0].as_str();
    let reshape = w.made_by(split, "Reshape", 2)?;
    let matches = attribute(w.node(transpose), "perm").is_some_and(|a| a.ints == perm)
        && w.only_reader(value, &w.node(reader).op_type) == Some(reader)
        && w.only_reader(split, "Transpose") == Some(transpose);
    let inputs = &w.node(reshape).input;
    matches.then(|| (inputs[0].as_str(), inputs[1].as_str(), [reshape, transpose]))
}

/// The attention whose `Softmax` is node `softmax`, if it is one the kernel can run.
pub fn site_at(w: &Wiring, softmax: usize, domain: &str, name: &str) -> Option<Site> {
    let soft = w.node(softmax);
    let (scores_value, probs) = (soft.input.first()?.as_str(), soft.output.first()?.as_str());
    let last_axis = attribute(soft, "axis").is_some_and(|a| a.i == -1 || a.i == 3);
    let masked = w.made_by(scores_value, "Add", 2)?;
    let [scaled_value, mask] = [0, 1].map(|i| w.node(masked).input[i].as_str());
    let scaled = w.made_by(scaled_value, "Mul", 2)?;
    let [raw, scale] = [0, 1].map(|i| w.node(scaled).input[i].as_str());
    let scores = w.made_by(raw, "MatMul", 2)?;
    let (q, heads, q_nodes) = unheaded(w, &w.node(scores).input[0], TO_HEADS, scores)?;
    let (k, k_heads, k_nodes) = unheaded(w, &w.node(scores).input[1], KEYS_TO_HEADS, scores)?;
    let weighted = w.only_reader(probs, "MatMul")?;
    let (v, v_heads, v_nodes) = unheaded(w, &w.node(weighted).input[1], TO_HEADS, weighted)?;
    let back = w.only_reader(&w.node(weighted).output[0], "Transpose")?;
    let merged = w.only_reader(&w.node(back).output[0], "Reshape")?;
    let shape = w.ints(heads)?;
    let matches = last_axis
        && w.node(weighted).input[0] == probs
        && w.only_reader(raw, "Mul") == Some(scaled)
        && w.only_reader(scaled_value, "Add") == Some(masked)
        && w.only_reader(scores_value, "Softmax") == Some(softmax)
        && w.scalar(scale).is_some()
        && attribute(w.node(back), "perm").is_some_and(|a| a.ints == TO_HEADS)
        && [k_heads, v_heads]
            .iter()
            .all(|h| w.ints(h).as_ref() == Some(&shape))
        && matches!(shape[..], [0, 0, h, d] if h > 0 && d > 0 && (d as usize).is_multiple_of(BLOCK))
        && w.ints(&w.node(merged).input[1]) == Some(vec![0, 0, shape[2] * shape[3]]);
    if !matches {
        return None;
    }
    let mut replaced = vec![scores, scaled, masked, softmax, weighted, back, merged];
    replaced.extend(q_nodes.into_iter().chain(k_nodes).chain(v_nodes));
    Some(Site {
        replaced,
        at: merged,
        node: NodeProto {
            input: [q, k, v, mask, heads, scale].map(String::from).to_vec(),
            output: w.node(merged).output.clone(),
            name: name.into(),
            op_type: super::ATTENTION.into(),
            attribute: Vec::new(),
            domain: domain.into(),
        },
    })
}
