//! Checkpoint tensors as f32 arrays under `BertForQuestionAnswering` names, read with the
//! pure-Rust safetensors crate (no libtorch needed to export).

use std::collections::HashMap;
use std::path::Path;

use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use super::ExportError;
use crate::model::{names, BertConfig};

/// One tensor: shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

/// All tensors of a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    tensors: HashMap<String, Array>,
}

fn to_f32(view: &TensorView<'_>, name: &str) -> Result<Vec<f32>, ExportError> {
    let bytes = view.data();
    let values = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(ExportError::Checkpoint(format!(
                "tensor {name} has unsupported dtype {other:?}"
            )))
        }
    };
    Ok(values)
}

impl Weights {
    /// Reads `model.safetensors` (bare `BertModel` or `BertForQuestionAnswering` names).
    pub fn load(path: &Path) -> Result<Self, ExportError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ExportError::Checkpoint(format!("cannot read {}: {e}", path.display())))?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| {
            ExportError::Checkpoint(format!("{} is not a safetensors file: {e}", path.display()))
        })?;
        let mut tensors = HashMap::new();
        for (name, view) in file.tensors() {
            if names::is_ignored(&name) {
                continue;
            }
            let data = to_f32(&view, &name)?;
            tensors.insert(
                names::canonical(&name),
                Array {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(Self { tensors })
    }

    /// The tensor `name`, checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Array, ExportError> {
        let array = self
            .tensors
            .get(name)
            .ok_or_else(|| ExportError::Checkpoint(format!("checkpoint has no tensor {name}")))?;
        if array.shape != shape {
            return Err(ExportError::Checkpoint(format!(
                "{name} has shape {:?}, config.json implies {shape:?}",
                array.shape
            )));
        }
        Ok(array)
    }

    /// Random weights of the right shapes for `config` (normal, std `initializer_range`; LayerNorm
    /// at 1/0), seeded: a stand-in model for tests and smoke runs before a trained one exists.
    pub fn random(config: &BertConfig, seed: u64) -> Self {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut normal = move || {
            // Irwin-Hall sum of 12 uniforms: mean 6, variance 1.
            let mut sum = 0.0f32;
            for _ in 0..12 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                sum += (state >> 40) as f32 / (1u64 << 24) as f32;
            }
            sum - 6.0
        };
        let std = config.initializer_range as f32;
        let mut tensors = HashMap::new();
        for (name, shape) in parameter_shapes(config) {
            let len = shape.iter().product();
            let data = if name.contains("LayerNorm.weight") {
                vec![1.0; len]
            } else if name.ends_with(".bias") {
                vec![0.0; len]
            } else {
                (0..len).map(|_| normal() * std).collect()
            };
            tensors.insert(name, Array { shape, data });
        }
        Self { tensors }
    }

    /// Writes the tensors as a safetensors checkpoint.
    pub fn save(&self, path: &Path) -> Result<(), ExportError> {
        let raw: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, a)| {
                (
                    n.clone(),
                    a.shape.clone(),
                    a.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = raw
            .iter()
            .map(|(n, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (n.clone(), v))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| ExportError::Checkpoint(e.to_string()))?;
        safetensors::serialize_to_file(views, None, path)
            .map_err(|e| ExportError::Checkpoint(format!("{}: {e}", path.display())))
    }
}

/// Every parameter of `BertForQuestionAnswering` with its shape.
pub fn parameter_shapes(config: &BertConfig) -> Vec<(String, Vec<usize>)> {
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let mut shapes = vec![
        (
            "bert.embeddings.word_embeddings.weight".to_string(),
            vec![config.vocab_size, h],
        ),
        (
            "bert.embeddings.position_embeddings.weight".into(),
            vec![config.max_position_embeddings, h],
        ),
        (
            "bert.embeddings.token_type_embeddings.weight".into(),
            vec![config.type_vocab_size, h],
        ),
        ("bert.embeddings.LayerNorm.weight".into(), vec![h]),
        ("bert.embeddings.LayerNorm.bias".into(), vec![h]),
        ("qa_outputs.weight".into(), vec![2, h]),
        ("qa_outputs.bias".into(), vec![2]),
    ];
    for l in 0..config.num_hidden_layers {
        let p = format!("bert.encoder.layer.{l}.");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            shapes.push((format!("{p}{name}.weight"), vec![out, inp]));
            shapes.push((format!("{p}{name}.bias"), vec![out]));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{p}{norm}.weight"), vec![h]));
            shapes.push((format!("{p}{norm}.bias"), vec![h]));
        }
    }
    shapes
}
