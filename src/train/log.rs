//! The run's `log.jsonl`: one JSON object per optimizer step and per evaluation. On resume,
//! entries past the checkpoint's step are dropped, so the file reads like one unbroken run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde_json::Value;

use super::TrainError;

/// An append-only JSONL file.
pub struct RunLog {
    file: File,
}

impl RunLog {
    /// Opens the log; `keep_up_to` keeps only entries with `step` ≤ it (resume), `None` starts
    /// a fresh log.
    pub fn open(path: &Path, keep_up_to: Option<u64>) -> Result<Self, TrainError> {
        let error = |e: std::io::Error| TrainError::Io(format!("{}: {e}", path.display()));
        let kept: Vec<String> = match keep_up_to {
            None => vec![],
            Some(step) => std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter(|line| {
                    serde_json::from_str::<Value>(line)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s <= step)
                })
                .map(str::to_owned)
                .collect(),
        };
        let mut file = File::create(path).map_err(error)?;
        for line in kept {
            writeln!(file, "{line}").map_err(error)?;
        }
        let file = OpenOptions::new().append(true).open(path).map_err(error)?;
        Ok(Self { file })
    }

    /// Appends one entry.
    pub fn write(&mut self, entry: &Value) -> Result<(), TrainError> {
        writeln!(self.file, "{entry}").map_err(|e| TrainError::Io(format!("log.jsonl: {e}")))
    }
}
