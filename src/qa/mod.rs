//! The question-answering core, shared by every flow and free of any model runtime: SQuAD
//! files and their official metrics, character offsets, question + context → windows, logits
//! → answer spans, windows → padded batches. Nothing here imports from another layer.

pub mod batch;
pub mod calibration;
pub mod decode;
pub mod features;
pub mod numbers;
pub mod random;
pub mod reader;
pub mod squad;
pub mod text;
