//! Weights held once for every inference worker: each worker is its own ONNX Runtime session,
//! which by default keeps its own copy of every initializer and of its packed form.

use std::fmt::Debug;
use std::sync::Arc;

use ort::session::builder::{PrepackedWeights, SessionBuilder};
use ort::value::{DynValue, PrimitiveTensorElementType, Tensor};

use super::engine::EngineError;
use crate::onnx::proto::{data_type, ModelProto, TensorProto};

/// A graph's initializers as ONNX Runtime values plus one container for their packed forms,
/// given to every session of that graph: ONNX Runtime shares packed weights only between
/// sessions that also share the initializers they come from.
#[derive(Debug, Clone)]
pub struct SharedWeights {
    initializers: Vec<(String, Arc<DynValue>)>,
    prepacked: PrepackedWeights,
}

impl SharedWeights {
    /// The initializers of `model` that can be shared (numeric tensors stored as raw data;
    /// any other stays in each session's own graph).
    pub fn of(model: &ModelProto) -> Result<Self, EngineError> {
        let mut initializers = Vec::new();
        for tensor in model.graph.iter().flat_map(|g| g.initializer.iter()) {
            if let Some(value) = ort_value(tensor)? {
                initializers.push((tensor.name.clone(), Arc::new(value)));
            }
        }
        Ok(Self {
            initializers,
            prepacked: PrepackedWeights::new(),
        })
    }

    /// `builder`, with these initializers in place of the graph's and the shared container.
    pub fn apply(&self, mut builder: SessionBuilder) -> Result<SessionBuilder, EngineError> {
        let runtime = |e: ort::Error<SessionBuilder>| EngineError::Runtime(e.to_string());
        for (name, value) in &self.initializers {
            builder = builder
                .with_initializer(name, Arc::clone(value))
                .map_err(runtime)?;
        }
        builder
            .with_prepacked_weights(&self.prepacked)
            .map_err(runtime)
    }
}

/// `tensor` as an ONNX Runtime value, or None for an element type it does not hold as
/// little-endian raw data of the size its shape says.
fn ort_value(tensor: &TensorProto) -> Result<Option<DynValue>, EngineError> {
    let shape = &tensor.dims;
    let raw = &tensor.raw_data;
    let made = match tensor.data_type {
        data_type::FLOAT => typed(shape, raw, f32::from_le_bytes),
        data_type::UINT8 => typed(shape, raw, u8::from_le_bytes),
        data_type::INT8 => typed(shape, raw, i8::from_le_bytes),
        data_type::INT32 => typed(shape, raw, i32::from_le_bytes),
        data_type::INT64 => typed(shape, raw, i64::from_le_bytes),
        _ => None,
    };
    made.transpose()
        .map_err(|e| EngineError::Runtime(format!("initializer {}: {e}", tensor.name)))
}

/// A tensor of `shape` read from `raw`, `N` bytes per element, or None when the sizes differ.
fn typed<T, const N: usize>(
    shape: &[i64],
    raw: &[u8],
    read: fn([u8; N]) -> T,
) -> Option<ort::Result<DynValue>>
where
    T: PrimitiveTensorElementType + Debug + Clone + 'static,
{
    let cells = usize::try_from(shape.iter().product::<i64>()).ok()?;
    if raw.len() != cells.checked_mul(N)? {
        return None;
    }
    let values: Vec<T> = raw
        .chunks_exact(N)
        .filter_map(|chunk| chunk.try_into().ok().map(read))
        .collect();
    Some(Tensor::from_array((shape.to_vec(), values)).map(Tensor::into_dyn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(data_type: i32, dims: Vec<i64>, raw_data: Vec<u8>) -> TensorProto {
        TensorProto {
            dims,
            data_type,
            name: "w".into(),
            raw_data,
        }
    }

    #[test]
    fn raw_tensors_become_values_of_their_shape_and_others_stay_in_the_graph() {
        let int8 = ort_value(&tensor(data_type::INT8, vec![2, 2], vec![1, 2, 3, 255]))
            .unwrap()
            .expect("an int8 tensor is shared");
        let (shape, values) = int8.try_extract_tensor::<i8>().unwrap();
        assert_eq!(
            (shape.to_vec(), values.to_vec()),
            (vec![2, 2], vec![1, 2, 3, -1])
        );
        let float = ort_value(&tensor(
            data_type::FLOAT,
            vec![1],
            1.5f32.to_le_bytes().to_vec(),
        ))
        .unwrap()
        .expect("a float tensor is shared");
        let (_, values) = float.try_extract_tensor::<f32>().unwrap();
        assert_eq!(values, [1.5]);
        // Data stored elsewhere than raw_data (or cut short) is left to the session's graph.
        assert!(ort_value(&tensor(data_type::FLOAT, vec![4], vec![0; 8]))
            .unwrap()
            .is_none());
        // So is an element type the engine has no use for (16-bit float).
        assert!(ort_value(&tensor(10, vec![1], vec![0; 2]))
            .unwrap()
            .is_none());
    }
}
