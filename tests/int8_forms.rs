//! The int8 forms of the export: calibration where a form needs it, batch invariance and
//! closeness to fp32, weights that no CPU's 16-bit products can saturate. A tiny random model
//! is exported at test time.

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
use bertqa::qa::features::WindowConfig;
use bertqa::runtime::engine::Engine;
use common::engine::{assert_batch_invariant_and_close_to_fp32, cpu, sample_batch};

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
    let (start, _) = Engine::load(&mixed, &cpu(true))
        .unwrap()
        .run(&sample_batch(&mixed).1)
        .unwrap();
    assert!(start.iter().all(|v| v.is_finite()));
}
