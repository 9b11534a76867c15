//! bertqa's fused CPU kernels (`--kernels fused`) give the logits of the graph run
//! operator by operator (`--kernels onnx`) bit for bit, on the shipped model and on a row-wise
//! export, and replace only the sites that are exactly what the exporter writes.

mod common;

use std::path::Path;

use prost::Message;

use bertqa::onnx::proto::{data_type, ModelProto};
use bertqa::qa::batch::PaddedBatch;
use bertqa::runtime::fused::{fuse, Kernels};

/// Windows of the first dev questions (one context's several questions, a long one split),
/// padded into one batch, as the server would batch them.
fn dev_batch(folder: &Path, questions: usize) -> PaddedBatch {
    let windows = common::windows_of(folder, common::dev_examples().iter().take(questions));
    let refs: Vec<_> = windows.iter().collect();
    PaddedBatch::from_windows(&refs, 0)
}

fn model_count(model: &ModelProto, op: &str) -> usize {
    let graph = model.graph.as_ref().unwrap();
    graph.node.iter().filter(|n| n.op_type == op).count()
}

fn logits(folder: &Path, kernels: Kernels, threads: usize, batch: &PaddedBatch) -> Vec<f32> {
    let mut engine = common::int8_engine(folder, kernels, threads);
    let (start, end) = engine.run(batch).unwrap();
    start.into_iter().chain(end).collect()
}

fn assert_same_logits(folder: &Path, batch: &PaddedBatch, what: &str) {
    for threads in [1, 2] {
        let fused = logits(folder, Kernels::Fused, threads, batch);
        let onnx = logits(folder, Kernels::Onnx, threads, batch);
        let differing = fused.iter().zip(&onnx).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{what}, {threads} threads: logits differ");
    }
}

#[test]
fn the_shipped_graph_fuses_every_quantization_site_and_answers_bit_for_bit() {
    let folder = common::shipped_model();
    let (bytes, model) = common::int8_graph(&folder);
    let (fused, sites) =
        fuse(&model, &bytes, Kernels::Fused).expect("the shipped graph has fusable sites");
    assert_eq!(sites, 24, "four sites a layer");
    let graph = fused.graph.as_ref().unwrap();
    let count = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
    // One per-token site a layer (the GELU output), three with calibrated steps.
    assert_eq!(count("SmoothRowQuantize"), 6);
    assert_eq!(count("SmoothQuantize"), 18);
    assert_eq!((count("QuantizeLinear"), count("Abs")), (0, 0));
    // The 24 factors and the 6 rescalings by levels / max went in; the attention scaling,
    // the GELU's products and the rows' steps after the products stay.
    assert_eq!(count("Mul"), model_count(&model, "Mul") - 30);
    let batch = dev_batch(&folder, 12);
    assert!(batch.batch_size >= 12 && batch.attention_mask.contains(&0));
    assert_same_logits(&folder, &batch, "shipped graph");
}

#[test]
fn a_rowwise_export_fuses_every_site_and_a_site_unlike_the_exporters_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (rowwise, bytes, model) = common::tiny_rowwise_int8(dir.path());
    let layers = 2;
    assert_eq!(
        fuse(&model, &bytes, Kernels::Fused).map(|(_, n)| n),
        Some(4 * layers)
    );
    assert_same_logits(&rowwise, &dev_batch(&rowwise, 6), "row-wise export");

    // One site's QuantizeLinear with a step of 2 instead of 1 is not the exporter's: that
    // site stays, the others are fused.
    let mut changed = model.clone();
    let graph = changed.graph.as_mut().unwrap();
    let quantize = graph.node.iter().find(|n| n.op_type == "QuantizeLinear");
    let step = quantize.unwrap().input[1].clone();
    let constant = graph
        .initializer
        .iter_mut()
        .find(|t| t.name == step)
        .unwrap();
    assert_eq!(constant.data_type, data_type::FLOAT);
    constant.raw_data = 2.0f32.to_le_bytes().to_vec();
    let changed_bytes = changed.encode_to_vec();
    let fused = fuse(&changed, &changed_bytes, Kernels::Fused).map(|(_, n)| n);
    assert_eq!(fused, Some(4 * layers - 1));

    // Bytes the decoded message does not hold all of (a field it does not declare) are not
    // rewritten, and neither is a graph without the pattern (fp32).
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0x9a, 0x01, 0x01, 0x00]); // field 19, 1 byte: unknown here
    assert!(fuse(
        &ModelProto::decode(longer.as_slice()).unwrap(),
        &longer,
        Kernels::Fused
    )
    .is_none());
    let fp32 = std::fs::read(dir.path().join("model").join("model.onnx")).unwrap();
    assert!(fuse(
        &ModelProto::decode(fp32.as_slice()).unwrap(),
        &fp32,
        Kernels::Fused
    )
    .is_none());
}
