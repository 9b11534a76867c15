//! What training and export agree on about a BERT checkpoint: its `config.json` and the
//! Hugging Face parameter names, so a tch checkpoint, an ONNX graph and `transformers` all read
//! the same file.

pub mod config;
pub mod manifest;
pub mod names;

pub use config::{BertConfig, ConfigError};
