//! What training and export agree on about a BERT checkpoint: its `config.json` and the
//! Hugging Face parameter names, so a tch checkpoint, an ONNX graph and `transformers` all read
//! the same file.

pub mod config;
pub mod manifest;
pub mod names;

pub use config::{BertConfig, ConfigError};

/// The last part of `path` (the whole path when it has none): how a model folder, its graph
/// and the data a model was calibrated on are named in `bertqa.json` and `/info`, without
/// the machine's own directories.
pub fn short_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
