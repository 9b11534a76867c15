//! Paths shared by the integration tests: the SQuAD data and the pretrained tokenizer.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::path::PathBuf;

/// `$BERTQA_SQUAD_DIR`, else the `shared/` folder beside the checkout.
pub fn squad_dir() -> PathBuf {
    std::env::var_os("BERTQA_SQUAD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/squad"))
}

/// The pretrained model folder installed by `scripts/setup-native.sh`.
pub fn pretrained_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("BERTQA_PRETRAINED_DIR").expect(
            "BERTQA_PRETRAINED_DIR is set by .cargo/config.toml; run scripts/setup-native.sh",
        ),
    )
}

/// Asserts that a command failed and that its stderr names `needle`.
pub fn failed_with(output: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(needle),
        "expected failure with '{needle}', got: {stderr}"
    );
}

/// A committed fixture file.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
