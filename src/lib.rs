//! bertqa: fine-tune BERT for extractive question answering (SQuAD) and serve it.
//!
//! Three flows share one core, so that training, offline prediction and the HTTP service
//! can never disagree on how text becomes windows or how logits become answers:
//!
//! ```text
//! serving:   question + context ─► windows ─► queue ─► ONNX Runtime ─► logits ─► decode ─► answer
//! training:  SQuAD file ─► windows + labels ─► tch BERT ─► loss ─► checkpoint ─► export
//! evaluate:  SQuAD file ─► pipeline::predict (any backend) ─► predictions ─► EM/F1
//! ```
//!
//! The modules are layers; each imports only the ones listed before it (a test checks it):
//!
//! * [`qa`]: SQuAD files and metrics, text offsets, windows, span decoding, batches.
//! * [`model`]: what a model is: BERT config, parameter names, the model folder's manifest.
//! * [`onnx`]: writing ONNX graphs from Rust: the BERT-QA graph, int8 quantization.
//! * [`runtime`]: the ONNX Runtime engine and the CPU features it can use.
//! * [`pipeline`]: whole-dataset prediction, export, calibration.
//! * [`serve`]: the HTTP service (routes, batching queue, inference thread, metrics).
//! * `train` (feature `train`): fine-tuning with libtorch.

// Bottom layer first (rustfmt keeps each group's order).
pub mod qa;

pub mod model;

pub mod onnx;

pub mod runtime;

pub mod pipeline;

pub mod serve;
#[cfg(feature = "train")]
pub mod train;
