//! The exported graphs run in ONNX Runtime: shapes, padding invariance, int8 close to fp32, the
//! fused and primitive graph forms alike, and clear errors for broken model folders or a missing
//! provider. A tiny random model is exported at test time; the int8 forms' own checks are in
//! `int8_forms.rs`.

mod common;

use std::path::{Path, PathBuf};

use bertqa::pipeline::export::{export_model_folder, ExportOptions};
use bertqa::qa::batch::PaddedBatch;
use bertqa::qa::features::Window;
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig, EngineError};
use bertqa::runtime::fused::Kernels;
use common::engine::{batching_effect, cpu, real_token_correlation, sample_batch};

/// The tiny model's folder (in a temporary directory the caller keeps alive) and its
/// [`sample_batch`].
fn tiny_model_and_batch() -> (tempfile::TempDir, PathBuf, Vec<Window>, PaddedBatch) {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let (windows, batch) = sample_batch(&folder);
    (dir, folder, windows, batch)
}

#[test]
fn fp32_and_int8_graphs_run_padding_invariant_and_agree() {
    let (_dir, folder, windows, batch) = tiny_model_and_batch();
    let mut fp32 = Engine::load(&folder, &cpu(false)).unwrap();
    let (start, end) = fp32.run(&batch).unwrap();
    assert_eq!(
        (start.len(), end.len()),
        (batch.padded_tokens(), batch.padded_tokens())
    );
    assert!(start.iter().chain(&end).all(|v| v.is_finite()));
    let spread = start.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(spread > 0.1, "logits carry signal ({spread})");

    // Each window alone (no padding) gives the same logits on its real tokens.
    let diff = batching_effect(&mut fp32, &windows);
    assert!(diff < 1e-4, "batching changed logits by {diff}");

    let mut int8 = Engine::load(&folder, &cpu(true)).unwrap();
    let (start8, _) = int8.run(&batch).unwrap();
    let corr = real_token_correlation(&start, &start8, &batch);
    assert!(corr > 0.97, "int8 vs fp32 logit correlation {corr}");
}

#[test]
fn an_engine_warmed_with_the_largest_batch_answers_as_a_fresh_one() {
    let (_dir, folder, _, batch) = tiny_model_and_batch();
    for int8 in [false, true] {
        let fresh = Engine::load(&folder, &cpu(int8))
            .unwrap()
            .run(&batch)
            .unwrap();
        let mut warmed = Engine::load(&folder, &cpu(int8)).unwrap();
        // The default limits' shapes: 21 windows of 384 tokens, 32 of 256.
        warmed.reserve(21, 384).unwrap();
        warmed.reserve(32, 256).unwrap();
        assert_eq!(warmed.run(&batch).unwrap(), fresh, "int8 {int8}");
    }
}

#[test]
fn primitive_ops_graph_computes_what_the_fused_graph_computes() {
    let dir = tempfile::tempdir().unwrap();
    let primitive = common::tiny_model_folder(dir.path());
    let fused = dir.path().join("fused");
    let options = ExportOptions {
        ops: bertqa::onnx::bert::OpStyle::Fused,
        ..ExportOptions::default()
    };
    export_model_folder(&dir.path().join("checkpoint"), &fused, &options).unwrap();
    let (_, batch) = sample_batch(&fused);
    for int8 in [false, true] {
        let (a, _) = Engine::load(&fused, &cpu(int8))
            .unwrap()
            .run(&batch)
            .unwrap();
        let (b, _) = Engine::load(&primitive, &cpu(int8))
            .unwrap()
            .run(&batch)
            .unwrap();
        let worst = a
            .iter()
            .zip(&b)
            .zip(&batch.attention_mask)
            .filter(|(_, &m)| m == 1)
            .fold(0.0f32, |w, ((x, y), _)| w.max((x - y).abs()));
        let tolerance = if int8 { 0.05 } else { 1e-4 };
        assert!(
            worst <= tolerance,
            "int8={int8}: fused vs primitive differ by {worst}"
        );
    }
}

#[test]
fn broken_model_folders_are_named_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let error = |path: &Path, int8: bool| match Engine::load(path, &cpu(int8)) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    };
    let missing = error(&dir.path().join("nowhere"), false);
    assert!(
        matches!(missing, EngineError::ModelFolder { .. })
            && missing.to_string().contains("bertqa.json"),
        "{missing}"
    );

    std::fs::remove_file(folder.join("model-int8.onnx")).unwrap();
    let no_int8 = error(&folder, true);
    assert!(
        no_int8.to_string().contains("model-int8.onnx is missing"),
        "{no_int8}"
    );

    std::fs::write(folder.join("model.onnx"), b"not a graph").unwrap();
    let garbage = error(&folder, false);
    assert!(
        garbage
            .to_string()
            .contains("model.onnx is not an ONNX model"),
        "{garbage}"
    );
}

#[test]
fn cuda_loads_or_says_which_provider_piece_is_missing() {
    // On the CPU-only runtime the CUDA provider is missing; on the onnxruntime-gpu runtime
    // (scripts/gpu-check.sh) it is there, and without a GPU it fails to start. Either way the
    // error is a provider error that says what to install or what failed, never a panic.
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let config = EngineConfig {
        threads: Some(1),
        device: DeviceKind::Cuda,
        int8: false,
        kernels: Kernels::Fused,
    };
    match Engine::load(&folder, &config) {
        Ok(mut engine) => {
            let (start, _) = engine.run(&sample_batch(&folder).1).unwrap();
            assert!(start.iter().all(|v| v.is_finite()));
        }
        Err(EngineError::Provider(message)) => assert!(
            message.contains("onnxruntime-gpu") || message.contains("failed to start"),
            "{message}"
        ),
        Err(other) => panic!("CUDA: not a provider error: {other}"),
    }
}
