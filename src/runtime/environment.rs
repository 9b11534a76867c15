//! The process-wide ONNX Runtime: finding its shared library and starting its one
//! environment, for every engine and exporter session of the process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::engine::EngineError;

/// Finds the ONNX Runtime library: `ORT_DYLIB_PATH`, else the `libonnxruntime.so*` in
/// `native/onnxruntime/` beside the current directory or the executable's ancestors (the
/// layout `setup-native.sh` makes), whatever version it installed.
fn runtime_library() -> Result<PathBuf, EngineError> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(EngineError::Runtime(format!(
                "ORT_DYLIB_PATH={} does not exist (run scripts/setup-native.sh)",
                path.display()
            )))
        };
    }
    let mut roots = vec![std::env::current_dir().unwrap_or_default()];
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots
        .into_iter()
        .find_map(|root| library_in(&root.join("native/onnxruntime")))
        .ok_or_else(|| {
            EngineError::Runtime(
                "libonnxruntime.so not found: set ORT_DYLIB_PATH or run scripts/setup-native.sh"
                    .into(),
            )
        })
}

/// The ONNX Runtime library in `dir`: the highest-named `libonnxruntime.so*` file.
fn library_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .max()
}

/// The process-wide ONNX Runtime environment (ONNX Runtime allows one per process), loaded on
/// first use; a failure is remembered so every later engine reports the same cause.
pub(super) fn runtime() -> Result<ort::environment::Environment, EngineError> {
    static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = runtime_library().map_err(|e| e.to_string())?;
            ort::init_from(&path).map_err(|e| format!("cannot load {}: {e}", path.display()))?;
            ort::init()
                .with_name("bertqa")
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(EngineError::Runtime)
}
