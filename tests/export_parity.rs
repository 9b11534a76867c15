//! The ONNX graph computes what the tch model computes: fp32 logits within 1e-4 on real SQuAD
//! windows at several batch sizes and lengths, from one checkpoint saved by the trainer's code.
#![cfg(feature = "train")]

mod common;

use bertqa::model::BertConfig;
use bertqa::pipeline::export::{export_model_folder, ExportOptions};
use bertqa::qa::batch::PaddedBatch;
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig};
use bertqa::runtime::fused::Kernels;
use bertqa::train::bert::BertForQuestionAnswering;
use bertqa::train::checkpoint::{load_weights, save_weights};
use tch::{nn::VarStore, Device, Tensor};

#[test]
fn onnx_runtime_logits_match_the_tch_model() {
    let pretrained = common::pretrained_dir();
    let config = BertConfig::from_file(&pretrained.join("config.json")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = BertForQuestionAnswering::new(&vs.root(), &config);
    load_weights(&vs, &pretrained.join("model.safetensors")).unwrap();
    load_weights(&vs, &common::fixture("qa-head.safetensors")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    std::fs::create_dir_all(&checkpoint).unwrap();
    save_weights(&vs, &checkpoint.join("model.safetensors")).unwrap();
    std::fs::copy(
        pretrained.join("config.json"),
        checkpoint.join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        pretrained.join("tokenizer.json"),
        checkpoint.join("tokenizer.json"),
    )
    .unwrap();
    let folder = dir.path().join("model");
    export_model_folder(&checkpoint, &folder, &ExportOptions::default()).unwrap();
    let mut engine = Engine::load(
        &folder,
        &EngineConfig {
            threads: None,
            device: DeviceKind::Cpu,
            int8: false,
            kernels: Kernels::Fused,
        },
    )
    .unwrap();

    let dev = common::dev_examples();
    let windows = common::windows_of(&pretrained, dev.iter().step_by(97).take(40));
    for batch_size in [1usize, 3, 8, 16] {
        for chunk in windows.chunks(batch_size).take(3) {
            let refs: Vec<_> = chunk.iter().collect();
            let batch = PaddedBatch::from_windows(&refs, 0);
            let (ort_start, ort_end) = engine.run(&batch).unwrap();
            let shape = [batch.batch_size as i64, batch.seq_len as i64];
            let t = |v: &[i64]| Tensor::from_slice(v).view(shape);
            let (start, end) = tch::no_grad(|| {
                model.forward_t(
                    &t(&batch.input_ids),
                    &t(&batch.token_type_ids),
                    &t(&batch.attention_mask),
                    false,
                )
            });
            let tch_start: Vec<f32> = Vec::try_from(start.flatten(0, -1)).unwrap();
            let tch_end: Vec<f32> = Vec::try_from(end.flatten(0, -1)).unwrap();
            let mut worst = 0.0f32;
            for i in 0..batch.padded_tokens() {
                if batch.attention_mask[i] == 1 {
                    worst = worst
                        .max((ort_start[i] - tch_start[i]).abs())
                        .max((ort_end[i] - tch_end[i]).abs());
                }
            }
            eprintln!(
                "batch {batch_size}x{}: max |ORT - tch| = {worst:e}",
                batch.seq_len
            );
            assert!(
                worst <= 1e-4,
                "batch {batch_size}x{}: max |ORT - tch| = {worst}",
                batch.seq_len
            );
        }
    }
}
