//! bertqa: fine-tune BERT for extractive question answering (SQuAD) and serve it.
//!
//! Three flows share one core, so that training, offline prediction and the HTTP service
//! can never disagree on how text becomes windows or how logits become answers:
//!
//! ```text
//! serving:   question + context ─► features (windows) ─► model ─► logits ─► decode ─► answer
//! training:  SQuAD file ─► features + labels ─► model ─► loss ─► checkpoint ─► export
//! evaluate:  SQuAD file ─► (serving flow) ─► predictions ─► squad::metrics (EM/F1)
//! ```
//!
//! * [`squad`]: the dataset files (schema, loading with located errors, official metrics).
//! * [`features`]: question + context → sliding windows, with training labels.
//! * [`decode`]: start/end logits of a question's windows → ranked answers with offsets.
//! * [`serve`]: the HTTP service (routes, batching queue, inference thread, metrics).
//! * [`text`]: character/byte offset bookkeeping and Python-compatible text rules.

pub mod batch;
pub mod calibrate;
pub mod cpu;
pub mod decode;
pub mod engine;
pub mod export;
pub mod features;
pub mod model;
pub mod onnx;
pub mod predict;
pub mod serve;
pub mod squad;
pub mod text;
#[cfg(feature = "train")]
pub mod train;
