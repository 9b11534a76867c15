//! A small builder for ONNX graphs: nodes with generated value names, weights as initializers,
//! typed inputs and outputs.

use super::proto::{
    attribute_type, data_type, AttributeProto, Dimension, GraphProto, NodeProto, TensorProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};

/// Operators of ONNX Runtime's contrib domain (fused transformer kernels, dynamic int8).
pub const MICROSOFT: &str = "com.microsoft";

/// Accumulates nodes and initializers in topological order.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next_id: usize,
}

/// An integer attribute.
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: value,
        r#type: attribute_type::INT,
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: value,
        r#type: attribute_type::FLOAT,
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: values.to_vec(),
        r#type: attribute_type::INTS,
        ..Default::default()
    }
}

/// A tensor input/output whose dimensions are fixed (`Ok`) or named dynamic axes (`Err`).
pub fn tensor_value(name: &str, elem_type: i32, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Ok(v) => Dimension {
                dim_value: Some(*v),
                dim_param: None,
            },
            Err(n) => Dimension {
                dim_value: None,
                dim_param: Some((*n).to_string()),
            },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

impl GraphBuilder {
    fn fresh(&mut self, hint: &str) -> String {
        self.next_id += 1;
        format!("{hint}_{}", self.next_id)
    }

    /// Adds a node with `outputs` results (named after the operator) and returns their names.
    pub fn node_multi(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
        outputs: usize,
    ) -> Vec<String> {
        let names: Vec<String> = (0..outputs).map(|_| self.fresh(op)).collect();
        self.push(domain, op, inputs, attribute, names.clone());
        names
    }

    /// Adds a single-output node of the default domain.
    pub fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.node_multi("", op, inputs, attribute, 1).remove(0)
    }

    /// Adds a single-output contrib (`com.microsoft`) node.
    pub fn contrib(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.node_multi(MICROSOFT, op, inputs, attribute, 1)
            .remove(0)
    }

    /// Adds a node whose single output gets a fixed name (graph outputs).
    pub fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
        output: &str,
    ) {
        self.push("", op, inputs, attribute, vec![output.to_string()]);
    }

    fn push(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
        output: Vec<String>,
    ) {
        let name = self.fresh(&format!("{op}_node"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_string()).collect(),
            output,
            name,
            op_type: op.into(),
            attribute,
            domain: domain.into(),
        });
    }

    fn initializer(
        &mut self,
        name: &str,
        data_type: i32,
        dims: &[usize],
        raw_data: Vec<u8>,
    ) -> String {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.into(),
            raw_data,
        });
        name.to_string()
    }

    /// A float32 weight.
    pub fn float_tensor(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        self.initializer(
            name,
            data_type::FLOAT,
            dims,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    /// An int8 weight.
    pub fn int8_tensor(&mut self, name: &str, dims: &[usize], values: &[i8]) -> String {
        self.initializer(
            name,
            data_type::INT8,
            dims,
            values.iter().map(|&v| v as u8).collect(),
        )
    }

    /// A uint8 constant under a fresh name.
    pub fn uint8_const(&mut self, hint: &str, dims: &[usize], values: &[u8]) -> String {
        let name = self.fresh(hint);
        self.initializer(&name, data_type::UINT8, dims, values.to_vec())
    }

    /// An int64 constant.
    pub fn int64_tensor(&mut self, name: &str, dims: &[usize], values: &[i64]) -> String {
        self.initializer(
            name,
            data_type::INT64,
            dims,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    /// A float32 constant under a fresh name (constants that repeat per layer).
    pub fn float_const(&mut self, hint: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(hint);
        self.float_tensor(&name, dims, values)
    }

    /// An int64 constant under a fresh name.
    pub fn int64_const(&mut self, hint: &str, dims: &[usize], values: &[i64]) -> String {
        let name = self.fresh(hint);
        self.int64_tensor(&name, dims, values)
    }

    /// The finished graph.
    pub fn finish(
        self,
        name: &str,
        input: Vec<ValueInfoProto>,
        output: Vec<ValueInfoProto>,
    ) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: name.into(),
            initializer: self.initializers,
            input,
            output,
        }
    }
}
