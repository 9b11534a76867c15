//! Weights in and out of a VarStore, as Hugging Face safetensors.
//!
//! Loading accepts bare `BertModel` checkpoints (no `bert.` prefix, e.g. all-MiniLM-L6-v2),
//! `BertForQuestionAnswering` ones, and legacy `gamma`/`beta` names; it says which parameters
//! were not in the file (e.g. a fresh `qa_outputs`) and which file tensors were not used.
//! Saving writes `BertForQuestionAnswering` names, atomically (temp file + rename), so an
//! interrupted save never leaves a half-written checkpoint behind.

use std::collections::HashMap;
use std::path::Path;

use tch::{nn::VarStore, Tensor};
use thiserror::Error;

use crate::model::names;

/// Why weights could not be loaded or saved.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// libtorch could not read or write the file.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// libtorch's or the OS's message.
        message: String,
    },
    /// A tensor's shape does not fit the model built from `config.json`.
    #[error("{name}: checkpoint shape {found:?} but the model expects {expected:?} (does config.json match the weights?)")]
    Shape {
        /// Parameter name.
        name: String,
        /// Shape in the file.
        found: Vec<i64>,
        /// Shape of the model's parameter.
        expected: Vec<i64>,
    },
}

/// What a load matched, for the user to check (a typo in a name shows up here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Model parameters the file did not have (they keep their random initialisation).
    pub missing: Vec<String>,
    /// File tensors no parameter took (pooler and position ids are not counted).
    pub unexpected: Vec<String>,
}

/// Copies every matching tensor of a safetensors file into `vs`.
pub fn load_weights(vs: &VarStore, path: &Path) -> Result<LoadReport, CheckpointError> {
    let io = |e: tch::TchError| CheckpointError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let tensors = Tensor::read_safetensors(path).map_err(io)?;
    let mut by_name: HashMap<String, Tensor> = HashMap::new();
    let mut report = LoadReport::default();
    for (name, tensor) in tensors {
        if names::is_ignored(&name) {
            continue;
        }
        by_name.insert(names::canonical(&name), tensor);
    }
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut variable) in variables {
        let Some(value) = by_name.remove(&name) else {
            report.missing.push(name);
            continue;
        };
        if value.size() != variable.size() {
            return Err(CheckpointError::Shape {
                name,
                found: value.size(),
                expected: variable.size(),
            });
        }
        tch::no_grad(|| {
            variable.copy_(&value.to_kind(variable.kind()).to_device(variable.device()))
        });
    }
    report.unexpected = by_name.into_keys().collect();
    report.unexpected.sort();
    Ok(report)
}

/// Writes tensors (any name → tensor map) to `path` atomically.
pub fn write_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<(), CheckpointError> {
    let io = |m: String| CheckpointError::Io {
        path: path.display().to_string(),
        message: m,
    };
    let tmp = path.with_extension("safetensors.tmp");
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.detach().to_device(tch::Device::Cpu).contiguous(),
            )
        })
        .collect();
    Tensor::write_safetensors(&cpu, &tmp).map_err(|e| io(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| io(e.to_string()))
}

/// Saves every parameter of `vs` under its `BertForQuestionAnswering` name.
pub fn save_weights(vs: &VarStore, path: &Path) -> Result<(), CheckpointError> {
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write_tensors(&tensors, path)
}
