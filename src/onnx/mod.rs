//! ONNX export written in Rust (libtorch has no exporter): protobuf messages, a graph builder,
//! the BERT-QA graph (fp32 or int8 weights) and the checkpoint reader.

pub mod activation_quant;
pub mod bert;
pub mod clip;
pub mod graph;
pub mod portable;
pub mod proto;
pub mod quantize;
pub mod smooth;
pub mod summary;
pub mod weights;

use thiserror::Error;

/// Why a checkpoint could not be exported.
#[derive(Debug, Error)]
pub enum ExportError {
    /// Missing, unreadable or inconsistent checkpoint files.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Measuring activation ranges for the smoothed int8 graph failed.
    #[error("calibration: {0}")]
    Calibration(String),
    /// An existing graph does not have the shape bertqa writes.
    #[error("int8 graph: {0}")]
    Graph(String),
    /// Writing the model folder failed.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: String,
        /// The OS's message.
        message: String,
    },
}
