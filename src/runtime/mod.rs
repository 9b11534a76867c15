//! Running a model folder's graph: the ONNX Runtime engine and the CPU facts that decide
//! which kernels it gets. Imports the layers below only (`qa`, `model`, `onnx`).

pub mod cpu;
pub mod engine;
mod environment;
pub mod fused;
pub mod shared;
pub mod widest;
