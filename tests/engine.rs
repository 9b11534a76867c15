//! The exported graphs run in ONNX Runtime: shapes, padding invariance, int8 close to fp32, and
//! clear errors for broken model folders. A tiny random model is exported at test time.

mod common;

use std::path::{Path, PathBuf};

use prost::Message;

use bertqa::model::BertConfig;
use bertqa::onnx::bert::WeightFormat;
use bertqa::onnx::portable::graph_worst_pair_sum;
use bertqa::onnx::proto::ModelProto;
use bertqa::onnx::smooth::Site;
use bertqa::onnx::weights::Weights;
use bertqa::pipeline::calibrate::{calibrate, Calibrated, Calibration};
use bertqa::pipeline::export::{export_model_folder, ExportOptions};
use bertqa::qa::batch::PaddedBatch;
use bertqa::qa::features::{Featurizer, WindowConfig};
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig, EngineError};
use bertqa::runtime::fused::Kernels;

fn cpu(int8: bool) -> EngineConfig {
    EngineConfig {
        threads: Some(1),
        device: DeviceKind::Cpu,
        int8,
        kernels: Kernels::Fused,
    }
}

fn windows_batch(featurizer: &Featurizer) -> Vec<bertqa::qa::features::Window> {
    let pairs = [
        ("Who won?", "The Denver Broncos won Super Bowl 50."),
        ("Where was it played?", "Super Bowl 50 was played at Levi's Stadium in the San Francisco Bay Area at Santa Clara, California, on February 7, 2016."),
        ("When?", "In 2016."),
    ];
    pairs
        .iter()
        .flat_map(|(q, c)| featurizer.windows(q, c).unwrap())
        .collect()
}

/// The tiny model's folder (in a temporary directory the caller keeps alive), the windows of
/// [`windows_batch`] and those windows as one padded batch.
fn tiny_model_and_batch() -> (
    tempfile::TempDir,
    PathBuf,
    Vec<bertqa::qa::features::Window>,
    PaddedBatch,
) {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let featurizer =
        Featurizer::from_file(&folder.join("tokenizer.json"), WindowConfig::default()).unwrap();
    let windows = windows_batch(&featurizer);
    let refs: Vec<_> = windows.iter().collect();
    let batch = PaddedBatch::from_windows(&refs, 0);
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

/// Largest change of any real token's start logit between running each window alone and
/// running all of them as one padded batch.
fn batching_effect(engine: &mut Engine, windows: &[bertqa::qa::features::Window]) -> f32 {
    let refs: Vec<_> = windows.iter().collect();
    let batch = PaddedBatch::from_windows(&refs, 0);
    let (start, _) = engine.run(&batch).unwrap();
    let mut largest = 0.0f32;
    for (row, w) in windows.iter().enumerate() {
        let (alone, _) = engine.run(&PaddedBatch::from_windows(&[w], 0)).unwrap();
        let padded = &start[row * batch.seq_len..row * batch.seq_len + w.len()];
        largest = alone
            .iter()
            .zip(padded)
            .fold(largest, |m, (a, b)| m.max((a - b).abs()));
    }
    largest
}

#[test]
fn rowwise_int8_answers_do_not_depend_on_batch_mates() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let rowwise = common::tiny_int8_export(dir.path(), WeightFormat::Int8Rowwise, "rowwise");
    assert_batch_invariant_and_close_to_fp32(&folder, &rowwise, "row-wise int8");
}

/// Calibration on the first `questions` training questions.
fn first_train_questions(questions: usize) -> Calibration {
    Calibration {
        questions,
        ..Calibration::on(common::squad_dir().join("train-v1.1-rebuilt.json.gz"))
    }
}

/// Every dense input of every layer is measured, with its own width, on real tokens, and the
/// static form gets a positive step for each.
fn assert_every_site_calibrated(calibrated: &Calibrated, config: &BertConfig) {
    let (ranges, clips) = (&calibrated.ranges, calibrated.clips.as_ref().unwrap());
    assert_eq!(ranges.by_site.len(), 4 * config.num_hidden_layers);
    assert_eq!(clips.by_site.len(), 4 * config.num_hidden_layers);
    for l in 0..config.num_hidden_layers {
        for site in Site::ALL {
            let key = site.key(l);
            let range = &ranges.by_site[&key];
            let width = if site == Site::Gelu {
                config.intermediate_size
            } else {
                config.hidden_size
            };
            assert_eq!(range.len(), width, "{key}");
            assert!(range.iter().all(|v| v.is_finite() && *v >= 0.0));
            assert!(range.iter().any(|v| *v > 0.0), "{key} never active");
            assert!(clips.step(&key).unwrap() > 0.0, "{key}");
        }
    }
}

/// The static graph quantizes each site once with a constant: no per-row search. The mix
/// searches rows at the GELU output alone, so only the down projection's product takes a row
/// scale instead of a static step.
fn assert_static_sites_quantized_once(dir: &Path, layers: usize) {
    for (name, per_row_sites) in [("static int8", 0), ("static int8, gelu per row", 1)] {
        let bytes = std::fs::read(dir.join(name).join("model-int8.onnx")).unwrap();
        let model = ModelProto::decode(bytes.as_slice()).unwrap();
        let graph = model.graph.as_ref().unwrap();
        let count = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
        assert_eq!(count("QuantizeLinear"), 4 * layers, "{name}");
        assert_eq!(count("MatMulIntegerToFloat"), 6 * layers, "{name}");
        assert_eq!(count("ReduceMax"), per_row_sites * layers, "{name}");
        assert_eq!(count("Abs"), per_row_sites * layers, "{name}");
        let steps = graph.initializer.iter();
        let steps = steps.filter(|t| t.name.starts_with("static_step."));
        assert_eq!(steps.count(), (4 - per_row_sites) * layers, "{name}");
        let row_scaled = graph.node.iter().filter(|n| {
            n.op_type == "MatMulIntegerToFloat" && !n.input[2].starts_with("static_step.")
        });
        assert_eq!(row_scaled.count(), per_row_sites * layers, "{name}");
        assert!(model
            .metadata_props
            .iter()
            .any(|p| p.key == "clip_percentile" && p.value == "99.999"));
    }
}

#[test]
fn smoothed_int8_is_calibrated_in_process_and_stays_close_to_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let checkpoint = dir.path().join("checkpoint");
    let calibration = first_train_questions(8);
    let config = BertConfig::from_file(&checkpoint.join("config.json")).unwrap();
    let weights = Weights::load(&checkpoint.join("model.safetensors")).unwrap();
    let calibrated = calibrate(
        &weights,
        &config,
        &checkpoint.join("tokenizer.json"),
        WindowConfig::default(),
        &calibration,
        WeightFormat::Int8Static,
    )
    .unwrap();
    assert_every_site_calibrated(&calibrated, &config);
    for (format, name) in [
        (WeightFormat::Int8Rowwise, "smoothed int8"),
        (WeightFormat::Int8Static, "static int8"),
        (
            WeightFormat::Int8StaticGeluRowwise,
            "static int8, gelu per row",
        ),
    ] {
        let out = dir.path().join(name);
        let options = ExportOptions {
            int8: Some(format),
            calibration: Some(calibration.clone()),
            ..ExportOptions::default()
        };
        export_model_folder(&checkpoint, &out, &options).unwrap();
        assert_batch_invariant_and_close_to_fp32(&folder, &out, name);
    }
    assert_static_sites_quantized_once(dir.path(), config.num_hidden_layers);
}

/// Calibration only means something for the batch-invariant graphs, and the static one cannot
/// do without it.
#[test]
fn calibration_goes_with_the_graphs_that_use_it() {
    let dir = tempfile::tempdir().unwrap();
    common::tiny_model_folder(dir.path());
    let checkpoint = dir.path().join("checkpoint");
    let calibration = first_train_questions(8);
    let misuse = [
        (
            WeightFormat::Int8,
            Some(calibration),
            "int8-rowwise, int8-static or int8-static-gelu-rowwise",
        ),
        (
            WeightFormat::Int8Static,
            None,
            "int8-static needs calibration data",
        ),
        (
            WeightFormat::Int8StaticGeluRowwise,
            None,
            "int8-static-gelu-rowwise needs calibration data",
        ),
    ];
    for (format, calibration, message) in misuse {
        let options = ExportOptions {
            int8: Some(format),
            calibration,
            ..ExportOptions::default()
        };
        let error = export_model_folder(&checkpoint, &dir.path().join("no"), &options)
            .unwrap_err()
            .to_string();
        assert!(error.contains(message), "{error}");
    }
}

#[test]
fn int8_graphs_cannot_saturate_a_16_bit_product_on_any_cpu() {
    // Without VNNI, ONNX Runtime adds pairs of u8 x s8 products in saturating 16-bit lanes:
    // every int8 form must keep 255 x (|w_k| + |w_k+1|) within i16::MAX, whatever CPU runs it.
    let dir = tempfile::tempdir().unwrap();
    common::tiny_model_folder(dir.path());
    let checkpoint = dir.path().join("checkpoint");
    let calibration = first_train_questions(4);
    let forms = [
        (WeightFormat::Int8, None),
        (WeightFormat::Int8Mixed, None),
        (WeightFormat::Int8Rowwise, None),
        (WeightFormat::Int8Rowwise, Some(calibration.clone())),
        (WeightFormat::Int8Static, Some(calibration.clone())),
        (WeightFormat::Int8StaticGeluRowwise, Some(calibration)),
    ];
    for (i, (format, calibration)) in forms.into_iter().enumerate() {
        let out = dir.path().join(format!("form{i}"));
        let options = ExportOptions {
            fp32: false,
            int8: Some(format),
            calibration,
            ..ExportOptions::default()
        };
        export_model_folder(&checkpoint, &out, &options).unwrap();
        let bytes = std::fs::read(out.join("model-int8.onnx")).unwrap();
        let model = ModelProto::decode(bytes.as_slice()).unwrap();
        let graph = model.graph.expect("a graph");
        let (name, worst) = graph_worst_pair_sum(&graph)
            .unwrap()
            .expect("integer products");
        assert!(
            worst <= i16::MAX as u32,
            "{format:?} #{i}: {name} reaches {worst} in a 16-bit lane"
        );
    }
}

/// The int8 graph of `int8_folder` gives each window the same logits alone as in a padded
/// batch, and they correlate with the fp32 graph's of `fp32_folder` above 0.99.
fn assert_batch_invariant_and_close_to_fp32(fp32_folder: &Path, int8_folder: &Path, what: &str) {
    let featurizer =
        Featurizer::from_file(&fp32_folder.join("tokenizer.json"), WindowConfig::default())
            .unwrap();
    let windows = windows_batch(&featurizer);
    let mut engine = Engine::load(int8_folder, &cpu(true)).unwrap();
    let diff = batching_effect(&mut engine, &windows);
    assert!(diff < 1e-4, "{what}: batching changed logits by {diff}");
    let refs: Vec<_> = windows.iter().collect();
    let batch = PaddedBatch::from_windows(&refs, 0);
    let (fp32, _) = Engine::load(fp32_folder, &cpu(false))
        .unwrap()
        .run(&batch)
        .unwrap();
    let (int8, _) = engine.run(&batch).unwrap();
    let corr = real_token_correlation(&fp32, &int8, &batch);
    assert!(corr > 0.99, "{what} vs fp32 logit correlation {corr}");
}

/// Pearson correlation of two logit sets over the batch's real (unpadded) tokens.
fn real_token_correlation(a: &[f32], b: &[f32], batch: &PaddedBatch) -> f64 {
    let real: Vec<(f32, f32)> = a
        .iter()
        .zip(b)
        .zip(&batch.attention_mask)
        .filter(|(_, &m)| m == 1)
        .map(|((x, y), _)| (*x, *y))
        .collect();
    correlation(&real)
}

fn correlation(pairs: &[(f32, f32)]) -> f64 {
    let n = pairs.len() as f64;
    let (ma, mb) = pairs.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + f64::from(*x) / n, b + f64::from(*y) / n)
    });
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        let (dx, dy) = (f64::from(*x) - ma, f64::from(*y) - mb);
        cov += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    cov / (va * vb).sqrt()
}

#[test]
fn mixed_int8_keeps_the_feed_forward_down_projection_in_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let mixed = common::tiny_int8_export(dir.path(), WeightFormat::Int8Mixed, "mixed");
    let size = |p: PathBuf| std::fs::metadata(p).unwrap().len();
    let (all, part, fp32) = (
        size(folder.join("model-int8.onnx")),
        size(mixed.join("model-int8.onnx")),
        size(folder.join("model.onnx")),
    );
    assert!(
        all < part && part < fp32,
        "sizes: int8 {all}, mixed {part}, fp32 {fp32}"
    );
    let featurizer =
        Featurizer::from_file(&mixed.join("tokenizer.json"), WindowConfig::default()).unwrap();
    let windows = windows_batch(&featurizer);
    let refs: Vec<_> = windows.iter().collect();
    let (start, _) = Engine::load(&mixed, &cpu(true))
        .unwrap()
        .run(&PaddedBatch::from_windows(&refs, 0))
        .unwrap();
    assert!(start.iter().all(|v| v.is_finite()));
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
    let featurizer =
        Featurizer::from_file(&fused.join("tokenizer.json"), WindowConfig::default()).unwrap();
    let windows = windows_batch(&featurizer);
    let refs: Vec<_> = windows.iter().collect();
    let batch = PaddedBatch::from_windows(&refs, 0);
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
            let featurizer =
                Featurizer::from_file(&folder.join("tokenizer.json"), WindowConfig::default())
                    .unwrap();
            let windows = windows_batch(&featurizer);
            let refs: Vec<_> = windows.iter().collect();
            let (start, _) = engine.run(&PaddedBatch::from_windows(&refs, 0)).unwrap();
            assert!(start.iter().all(|v| v.is_finite()));
        }
        Err(EngineError::Provider(message)) => assert!(
            message.contains("onnxruntime-gpu") || message.contains("failed to start"),
            "{message}"
        ),
        Err(other) => panic!("CUDA: not a provider error: {other}"),
    }
}
