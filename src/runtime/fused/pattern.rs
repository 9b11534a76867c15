//! Finds the per-token quantization sites the exporter writes (`onnx::bert::dense`) in a
//! graph and replaces each by one node of bertqa's [`kernels`](super::kernels). A site is
//! replaced only when every node, constant and consumer is exactly what the exporter writes;
//! anything else stays as the file has it.

use std::collections::{HashMap, HashSet};

use crate::onnx::proto::{data_type, AttributeProto, GraphProto, NodeProto, TensorProto};

/// One site found: the nodes it replaces and the node that replaces them.
pub struct Site {
    pub(super) replaced: Vec<usize>,
    /// Where the new node goes (the last node it replaces, after all its inputs).
    pub(super) at: usize,
    pub(super) node: NodeProto,
}

/// The graph's wiring: who makes each value, who reads it, and the constants.
pub(super) struct Wiring<'g> {
    nodes: &'g [NodeProto],
    producer: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<usize>>,
    constants: HashMap<&'g str, &'g TensorProto>,
}

impl<'g> Wiring<'g> {
    pub(super) fn of(graph: &'g GraphProto) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, node) in graph.node.iter().enumerate() {
            for output in &node.output {
                producer.insert(output.as_str(), i);
            }
            for input in &node.input {
                consumers.entry(input.as_str()).or_default().push(i);
            }
        }
        let constants = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        Self {
            nodes: &graph.node,
            producer,
            consumers,
            constants,
        }
    }

    /// The node making `value` when it is a default-domain `op` with `arity` inputs.
    pub(super) fn made_by(&self, value: &str, op: &str, arity: usize) -> Option<usize> {
        let i = *self.producer.get(value)?;
        let node = &self.nodes[i];
        (node.op_type == op && node.domain.is_empty() && node.input.len() == arity).then_some(i)
    }

    /// The node making `value`, whatever it is.
    pub(super) fn maker(&self, value: &str) -> Option<&'g NodeProto> {
        self.producer.get(value).map(|&i| &self.nodes[i])
    }

    /// The single reader of `value` when it is a default-domain `op`.
    pub(super) fn only_reader(&self, value: &str, op: &str) -> Option<usize> {
        match self.consumers.get(value)?.as_slice() {
            [i] if self.nodes[*i].op_type == op && self.nodes[*i].domain.is_empty() => Some(*i),
            _ => None,
        }
    }

    /// Whether `value` has exactly the readers `readers`.
    fn read_only_by(&self, value: &str, readers: &[usize]) -> bool {
        let mut found = self.consumers.get(value).cloned().unwrap_or_default();
        found.sort_unstable();
        let mut expected = readers.to_vec();
        expected.sort_unstable();
        found == expected
    }

    /// The constant `name` when it is one f32.
    pub(super) fn scalar(&self, name: &str) -> Option<f32> {
        let tensor = self.constants.get(name)?;
        let bytes: [u8; 4] = tensor.raw_data.as_slice().try_into().ok()?;
        (tensor.data_type == data_type::FLOAT && tensor.dims.iter().product::<i64>() == 1)
            .then(|| f32::from_le_bytes(bytes))
    }

    /// The constant `name` when it is an int64 vector.
    pub(super) fn ints(&self, name: &str) -> Option<Vec<i64>> {
        let tensor = self.constants.get(name)?;
        let values = tensor.raw_data.chunks_exact(8);
        (tensor.data_type == data_type::INT64 && values.remainder().is_empty()).then(|| {
            values
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
                .collect()
        })
    }

    fn is_scalar(&self, name: &str, value: f32) -> bool {
        self.scalar(name)
            .is_some_and(|v| (v - value).abs() <= 1e-6 * value.abs())
    }

    /// Whether `name` is a constant f32 vector (smoothing factors, a bias).
    pub(super) fn is_vector(&self, name: &str) -> bool {
        self.constants.get(name).is_some_and(|t| {
            t.data_type == data_type::FLOAT
                && t.dims.len() == 1
                && t.raw_data.len() == 4 * t.dims[0] as usize
        })
    }

    /// Whether `name` is one u8 (a zero point).
    fn is_u8_scalar(&self, name: &str) -> bool {
        self.constants
            .get(name)
            .is_some_and(|t| t.data_type == data_type::UINT8 && t.raw_data.len() == 1)
    }

    pub(super) fn node(&self, i: usize) -> &'g NodeProto {
        &self.nodes[i]
    }
}

/// Whether a `ReduceMax` keeps the last axis only, as a row maximum with its dimension kept.
fn is_row_max(node: &NodeProto) -> bool {
    attribute(node, "axes").is_some_and(|a| a.ints == [-1])
        && attribute(node, "keepdims").is_none_or(|a| a.i == 1)
}

/// `node`'s attribute `name`, if it has one.
pub(super) fn attribute<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// The site whose `Abs` is node `abs`, if it is one: `Abs`, `ReduceMax` over the row, `Max`
/// with a floor, the step (max / levels) and its inverse, `Mul` by the inverse and
/// `QuantizeLinear` with unit step and a u8 zero point; with the SmoothQuant `Mul` by constant
/// factors before it taken in too when nothing else reads its product, and with `gelu` the
/// exporter's GELU before those.
fn site_at(w: &Wiring, abs: usize, gelu: bool, domain: &str, name: &str) -> Option<Site> {
    let scaled = w.node(abs).input.first()?.as_str();
    let row_max = w.only_reader(&w.node(abs).output[0], "ReduceMax")?;
    let floored = w.only_reader(&w.node(row_max).output[0], "Max")?;
    let floor = w.node(floored).input.get(1)?.as_str();
    let [step, inverse] = step_and_inverse(w, &w.node(floored).output[0])?;
    let levels = w.node(step).input[1].as_str();
    let rescale = w.only_reader(&w.node(inverse).output[0], "Mul")?;
    let quantize = w.only_reader(&w.node(rescale).output[0], "QuantizeLinear")?;
    let quantize_inputs = &w.node(quantize).input;
    let matches = is_row_max(w.node(row_max))
        && w.scalar(floor).is_some()
        && w.scalar(levels).is_some()
        && w.node(rescale).input.iter().any(|i| i == scaled)
        && quantize_inputs.len() == 3
        && w.is_scalar(&quantize_inputs[1], 1.0)
        && w.is_u8_scalar(&quantize_inputs[2]);
    if !matches {
        return None;
    }
    let smoothing = w
        .made_by(scaled, "Mul", 2)
        .filter(|&m| w.is_vector(&w.node(m).input[1]) && w.read_only_by(scaled, &[abs, rescale]));
    let (activation, smooth, readers) = match smoothing {
        Some(m) => (
            w.node(m).input[0].as_str(),
            w.node(m).input[1].as_str(),
            vec![m],
        ),
        None => (scaled, "", vec![abs, rescale]),
    };
    let activated = gelu
        .then(|| gelu_before(w, activation))
        .flatten()
        .filter(|_| w.read_only_by(activation, &readers));
    let (activation, op_type) = match activated {
        Some((input, _)) => (input, super::kernels::GELU_PER_ROW),
        None => (activation, super::kernels::PER_ROW),
    };
    let node = NodeProto {
        input: [
            activation,
            smooth,
            levels,
            floor,
            quantize_inputs[2].as_str(),
        ]
        .map(String::from)
        .to_vec(),
        output: vec![
            w.node(quantize).output[0].clone(),
            w.node(step).output[0].clone(),
        ],
        name: name.into(),
        op_type: op_type.into(),
        attribute: Vec::new(),
        domain: domain.into(),
    };
    let mut replaced = vec![abs, row_max, floored, step, inverse, rescale, quantize];
    replaced.extend(smoothing);
    replaced.extend(activated.into_iter().flat_map(|(_, nodes)| nodes));
    Some(Site {
        replaced,
        at: quantize,
        node,
    })
}

/// The input of the exporter's GELU that makes `value` (`Div` by sqrt 2, `Erf`, `Add` 1, `Mul`
/// by the input, `Mul` by 0.5, constants exactly those) and its five nodes, when nothing
/// outside them reads their values.
fn gelu_before<'g>(w: &Wiring<'g>, value: &str) -> Option<(&'g str, [usize; 5])> {
    let input = |node: usize, i: usize| w.node(node).input[i].as_str();
    let output = |node: usize| w.node(node).output[0].as_str();
    let half = w.made_by(value, "Mul", 2)?;
    let product = w.made_by(input(half, 0), "Mul", 2)?;
    let x = input(product, 0);
    let plus_one = w.made_by(input(product, 1), "Add", 2)?;
    let erf = w.made_by(input(plus_one, 0), "Erf", 1)?;
    let divide = w.made_by(input(erf, 0), "Div", 2)?;
    let exactly = |name: &str, value: f32| w.scalar(name) == Some(value);
    let matches = input(divide, 0) == x
        && exactly(input(divide, 1), std::f32::consts::SQRT_2)
        && exactly(input(plus_one, 1), 1.0)
        && exactly(input(half, 1), 0.5)
        && w.read_only_by(x, &[divide, product])
        && w.read_only_by(output(divide), &[erf])
        && w.read_only_by(output(erf), &[plus_one])
        && w.read_only_by(output(plus_one), &[product])
        && w.read_only_by(output(product), &[half]);
    matches.then_some((x, [divide, erf, plus_one, product, half]))
}

/// The two `Div`s reading the floored row maximum: max / levels (the step) and levels / max
/// (its inverse), in that order.
fn step_and_inverse(w: &Wiring, largest: &str) -> Option<[usize; 2]> {
    let readers = w.consumers.get(largest)?;
    let [a, b] = readers.as_slice() else {
        return None;
    };
    let is_div = |i: usize| w.node(i).op_type == "Div" && w.node(i).input.len() == 2;
    if !(is_div(*a) && is_div(*b)) {
        return None;
    }
    let step = [*a, *b]
        .into_iter()
        .find(|&i| w.node(i).input[0] == largest)?;
    let inverse = [*a, *b]
        .into_iter()
        .find(|&i| w.node(i).input[1] == largest)?;
    (step != inverse && w.node(step).input[1] == w.node(inverse).input[0])
        .then_some([step, inverse])
}

/// The SmoothQuant `Mul` by constant factors whose product only a `QuantizeLinear` with a
/// constant step and u8 zero point reads, as one site, if node `quantize` ends one.
fn step_site_at(w: &Wiring, quantize: usize, domain: &str, name: &str) -> Option<Site> {
    let inputs = &w.node(quantize).input;
    let smoothing = w.made_by(inputs.first()?, "Mul", 2)?;
    let [activation, smooth] = [0, 1].map(|i| w.node(smoothing).input[i].as_str());
    let matches = inputs.len() == 3
        && w.scalar(&inputs[1]).is_some()
        && w.is_u8_scalar(&inputs[2])
        && w.is_vector(smooth)
        && w.read_only_by(&inputs[0], &[quantize]);
    matches.then(|| Site {
        replaced: vec![smoothing, quantize],
        at: quantize,
        node: NodeProto {
            input: [activation, smooth, inputs[1].as_str(), inputs[2].as_str()]
                .map(String::from)
                .to_vec(),
            output: w.node(quantize).output.clone(),
            name: name.into(),
            op_type: super::kernels::FIXED_STEP.into(),
            attribute: Vec::new(),
            domain: domain.into(),
        },
    })
}

/// Every site of `graph` bertqa's kernels can run, as `domain` nodes: the per-token sites
/// (found from their `Abs`) and the calibrated-step ones (from their `QuantizeLinear`), and
/// with `own_arithmetic` (kernels that round in their own way, the same on every CPU) each
/// layer's attention (from its `Softmax`), the GELU before a per-token site and each dense
/// layer's end with its layer normalization (from the `LayerNormalization`). No node belongs
/// to two: a per-token site's `QuantizeLinear` reads the rescaling `Mul`, whose second input
/// is no constant, its factors' product has two readers, an attention has no quantization,
/// and a layer's end starts after its product (whose step it reads, not makes).
pub fn find_sites(graph: &GraphProto, domain: &str, own_arithmetic: bool) -> Vec<Site> {
    let wiring = Wiring::of(graph);
    let found = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.domain.is_empty());
    found
        .filter_map(|(i, node)| match node.op_type.as_str() {
            "Abs" => site_at(
                &wiring,
                i,
                own_arithmetic,
                domain,
                &format!("smooth_row_quantize_{i}"),
            ),
            "QuantizeLinear" => step_site_at(&wiring, i, domain, &format!("smooth_quantize_{i}")),
            "Softmax" if own_arithmetic => {
                super::attention::site::site_at(&wiring, i, domain, &format!("attention_{i}"))
            }
            "LayerNormalization" if own_arithmetic => {
                super::norm::site::site_at(&wiring, i, domain, &format!("add_layer_norm_{i}"))
            }
            _ => None,
        })
        .collect()
}

/// `graph` with each site's nodes (found in it by [`find_sites`]) replaced by its node, and
/// the constants no node reads any more dropped.
pub fn replace(graph: &mut GraphProto, sites: Vec<Site>) {
    let replaced: HashSet<usize> = sites
        .iter()
        .flat_map(|s| s.replaced.iter().copied())
        .collect();
    let mut new_nodes: HashMap<usize, NodeProto> =
        sites.into_iter().map(|s| (s.at, s.node)).collect();
    let nodes = std::mem::take(&mut graph.node);
    for (i, node) in nodes.into_iter().enumerate() {
        if let Some(fused) = new_nodes.remove(&i) {
            graph.node.push(fused);
        } else if !replaced.contains(&i) {
            graph.node.push(node);
        }
    }
    let read: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    graph.initializer.retain(|t| read.contains(&t.name));
}
