//! Makes an int8 graph written by an older bertqa portable across CPUs, without its
//! checkpoint: each integer product's weight is re-quantized under the pair bound of
//! [`super::quantize`], so no CPU without VNNI saturates it. Model folders whose training run
//! is gone (the step-3,000 default model's was) keep their graph, one rounding coarser.

use std::collections::HashSet;

use super::proto::{data_type, GraphProto, TensorProto};
use super::quantize::{requantize_columns, worst_pair_sum};
use super::ExportError;

/// What [`make_portable`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortabilityReport {
    /// Integer products whose weight was checked.
    pub products: usize,
    /// Of those, the ones whose codes had to change.
    pub rewritten: usize,
    /// The largest 16-bit lane sum before and after (portable when ≤ `i16::MAX`).
    pub worst_before: u32,
    /// See `worst_before`.
    pub worst_after: u32,
}

/// Where an integer product keeps its weight and the weight's per-column scales.
fn weight_and_scale_inputs(op: &str) -> Option<(usize, usize)> {
    match op {
        // A, B, b_scale, b_zero_point, bias
        "DynamicQuantizeMatMul" => Some((1, 2)),
        // A, B, a_scale, b_scale, a_zero_point
        "MatMulIntegerToFloat" => Some((1, 3)),
        _ => None,
    }
}

/// The (weight, scale) value names of every integer product of `graph`, in node order.
fn integer_products(graph: &GraphProto) -> Vec<(String, String)> {
    graph
        .node
        .iter()
        .filter_map(|n| {
            let (w, s) = weight_and_scale_inputs(&n.op_type)?;
            Some((n.input.get(w)?.clone(), n.input.get(s)?.clone()))
        })
        .collect()
}

/// The int8 weight `name` of `graph` as codes with its `[in, out]` shape.
fn int8_matrix(graph: &GraphProto, name: &str) -> Result<(Vec<i8>, usize, usize), ExportError> {
    let weight = initializer(graph, name, data_type::INT8)?;
    let (inputs, outputs) = match weight.dims[..] {
        [i, o] => (i as usize, o as usize),
        _ => return Err(malformed(name, "is not a matrix")),
    };
    let values: Vec<i8> = weight.raw_data.iter().map(|&b| b as i8).collect();
    if values.len() != inputs * outputs {
        return Err(malformed(name, "does not match its shape"));
    }
    Ok((values, inputs, outputs))
}

/// The int8 weight of `graph` that comes closest to saturating a 16-bit lane, with its
/// [`worst_pair_sum`] (None for a graph without integer products): a model folder can be
/// judged portable without running it on a CPU that lacks VNNI.
pub fn graph_worst_pair_sum(graph: &GraphProto) -> Result<Option<(String, u32)>, ExportError> {
    let mut worst: Option<(String, u32)> = None;
    for (name, _) in integer_products(graph) {
        let (values, inputs, outputs) = int8_matrix(graph, &name)?;
        let sum = worst_pair_sum(&values, inputs, outputs);
        if worst.as_ref().is_none_or(|(_, w)| sum > *w) {
            worst = Some((name, sum));
        }
    }
    Ok(worst)
}

/// Re-quantizes every integer product's weight of `graph` in place.
pub fn make_portable(graph: &mut GraphProto) -> Result<PortabilityReport, ExportError> {
    let pairs = integer_products(graph);
    let mut report = PortabilityReport {
        products: pairs.len(),
        rewritten: 0,
        worst_before: 0,
        worst_after: 0,
    };
    let mut done = HashSet::new();
    for (weight_name, scale_name) in pairs {
        if !done.insert(weight_name.clone()) {
            continue;
        }
        let (values, inputs, outputs) = int8_matrix(graph, &weight_name)?;
        let scale = initializer(graph, &scale_name, data_type::FLOAT)?;
        let scales: Vec<f32> = scale
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if scales.len() != outputs {
            return Err(malformed(&weight_name, "does not match its scales"));
        }
        let q = requantize_columns(&values, &scales, inputs, outputs);
        report.worst_before = report
            .worst_before
            .max(worst_pair_sum(&values, inputs, outputs));
        report.worst_after = report
            .worst_after
            .max(worst_pair_sum(&q.values, inputs, outputs));
        if q.values != values {
            report.rewritten += 1;
        }
        set_raw(
            graph,
            &weight_name,
            q.values.iter().map(|&v| v as u8).collect(),
        );
        set_raw(
            graph,
            &scale_name,
            q.scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
    }
    Ok(report)
}

fn initializer<'g>(
    graph: &'g GraphProto,
    name: &str,
    kind: i32,
) -> Result<&'g TensorProto, ExportError> {
    graph
        .initializer
        .iter()
        .find(|t| t.name == name && t.data_type == kind)
        .ok_or_else(|| malformed(name, "is not a constant of the expected type"))
}

fn set_raw(graph: &mut GraphProto, name: &str, raw: Vec<u8>) {
    if let Some(t) = graph.initializer.iter_mut().find(|t| t.name == name) {
        t.raw_data = raw;
    }
}

fn malformed(name: &str, what: &str) -> ExportError {
    ExportError::Graph(format!("weight {name} {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::NodeProto;

    fn tensor(name: &str, kind: i32, dims: &[i64], raw: Vec<u8>) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: kind,
            name: name.into(),
            raw_data: raw,
        }
    }

    /// One `MatMulIntegerToFloat` over a `[3, 2]` weight whose first column saturates.
    fn graph(codes: &[i8], scales: &[f32]) -> GraphProto {
        let node = NodeProto {
            input: ["a", "w", "a_scale", "w_scale", "a_zero"]
                .map(String::from)
                .to_vec(),
            output: vec!["y".into()],
            op_type: "MatMulIntegerToFloat".into(),
            ..NodeProto::default()
        };
        GraphProto {
            node: vec![node],
            initializer: vec![
                tensor(
                    "w",
                    data_type::INT8,
                    &[3, 2],
                    codes.iter().map(|&v| v as u8).collect(),
                ),
                tensor(
                    "w_scale",
                    data_type::FLOAT,
                    &[2],
                    scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
            ],
            ..GraphProto::default()
        }
    }

    #[test]
    fn saturating_weights_are_rewritten_within_one_step_and_then_left_alone() {
        // Column 0 holds 127, 127, 10 (255 x 254 saturates); column 1 is already portable.
        let mut g = graph(&[127, 1, 127, -127, 10, 127], &[0.01, 0.02]);
        let report = make_portable(&mut g).unwrap();
        assert_eq!((report.products, report.rewritten), (1, 1));
        assert_eq!(report.worst_before, 255 * 254);
        assert!(report.worst_after <= i16::MAX as u32, "{report:?}");
        let codes: Vec<i8> = g.initializer[0].raw_data.iter().map(|&b| b as i8).collect();
        let scale = f32::from_le_bytes(g.initializer[1].raw_data[..4].try_into().unwrap());
        for (k, old) in [127.0f32, 127.0, 10.0].iter().enumerate() {
            let back = f32::from(codes[k * 2]) * scale;
            assert!(
                (back - old * 0.01).abs() <= scale / 2.0 + 1e-6,
                "{k}: {back}"
            );
        }
        assert_eq!([codes[1], codes[3], codes[5]], [1, -127, 127]);
        let again = make_portable(&mut g).unwrap();
        assert_eq!(again.rewritten, 0);
    }

    #[test]
    fn a_weight_of_the_wrong_shape_is_an_error() {
        let mut g = graph(&[1, 2, 3, 4, 5, 6], &[1.0]);
        let error = make_portable(&mut g).unwrap_err().to_string();
        assert!(error.contains("does not match its scales"), "{error}");
    }
}
