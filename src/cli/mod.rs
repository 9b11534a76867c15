//! The `bertqa` subcommands other than `serve`: each is a clap argument struct with a `run`
//! that turns the flags into the library's options, so `main.rs` only dispatches.

pub mod calibrate;
pub mod export;
pub mod model;
pub mod passages;
pub mod predict;
pub mod score;

use std::path::Path;

use anyhow::Context;

/// Reads a JSON file, naming the file and the JSON path of the first bad value.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de)
        .with_context(|| format!("{what} {} is not the expected JSON object", path.display()))
}

/// Writes `value` as compact JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec(value)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
