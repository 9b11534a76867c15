//! Paths shared by the integration tests: the SQuAD data and the pretrained tokenizer.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bertqa::model::BertConfig;
use bertqa::onnx::bert::WeightFormat;
use bertqa::onnx::proto::ModelProto;
use bertqa::pipeline::export::{export_model_folder, write_random_checkpoint, ExportOptions};
use bertqa::pipeline::predict::{predict_examples, prediction_files, BatchRunner, PredictConfig};
use bertqa::qa::batch::PaddedBatch;
use bertqa::qa::features::{Featurizer, Window, WindowConfig};
use bertqa::qa::squad::{load_squad, Example, SquadFile};
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig};
use bertqa::runtime::fused::Kernels;
use prost::Message;

/// `$BERTQA_SQUAD_DIR`, else the `shared/` folder beside the checkout.
pub fn squad_dir() -> PathBuf {
    std::env::var_os("BERTQA_SQUAD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/squad"))
}

/// SQuAD dev v1.1 as the file has it (articles, paragraphs, questions).
pub fn dev_squad() -> SquadFile {
    load_squad(&squad_dir().join("dev-v1.1.json.gz")).unwrap()
}

/// Every example of dev v1.1, in file order.
pub fn dev_examples() -> Vec<Example> {
    dev_squad().examples()
}

/// The windows (default geometry) of `examples` with the tokenizer of `folder`, in order.
pub fn windows_of<'a>(folder: &Path, examples: impl Iterator<Item = &'a Example>) -> Vec<Window> {
    let featurizer =
        Featurizer::from_file(&folder.join("tokenizer.json"), WindowConfig::default()).unwrap();
    examples
        .flat_map(|e| featurizer.windows(&e.question, &e.context).unwrap())
        .collect()
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

/// A random tiny BERT (2 layers, 64 wide, the real uncased vocabulary) exported to a model
/// folder under `dir`: fast enough for every test, random enough to give varied answers.
pub fn tiny_model_folder(dir: &Path) -> PathBuf {
    let checkpoint = dir.join("checkpoint");
    let mut config = BertConfig::tiny(30522);
    (
        config.hidden_size,
        config.num_attention_heads,
        config.intermediate_size,
    ) = (64, 4, 128);
    config.initializer_range = 0.2;
    write_random_checkpoint(
        &checkpoint,
        &config,
        &pretrained_dir().join("tokenizer.json"),
        3,
    )
    .unwrap();
    let out = dir.join("model");
    let written = export_model_folder(&checkpoint, &out, &ExportOptions::default()).unwrap();
    assert_eq!(written.len(), 2);
    out
}

/// The checkpoint [`tiny_model_folder`] wrote under `dir`, exported again with int8 weights in
/// `format` (no calibration data) to `dir/name`.
pub fn tiny_int8_export(dir: &Path, format: WeightFormat, name: &str) -> PathBuf {
    let out = dir.join(name);
    let options = ExportOptions {
        int8: Some(format),
        ..ExportOptions::default()
    };
    export_model_folder(&dir.join("checkpoint"), &out, &options).unwrap();
    out
}

/// `bertqa predict`'s answers (id -> text) with the fp32 graph of `folder`, one thread: the
/// offline side of every offline-vs-served comparison.
pub fn offline_answers(folder: &Path, examples: &[Example]) -> HashMap<String, String> {
    let config = EngineConfig {
        threads: Some(1),
        device: DeviceKind::Cpu,
        int8: false,
        kernels: Kernels::Fused,
    };
    let mut engine = Engine::load(folder, &config).unwrap();
    let window = engine.manifest().window;
    let featurizer = Featurizer::from_file(&folder.join("tokenizer.json"), window).unwrap();
    let mut backend = BatchRunner::new(featurizer.pad_id(), |b: &PaddedBatch| engine.run(b));
    let predictions = predict_examples(
        examples,
        &featurizer,
        &PredictConfig::default(),
        &mut backend,
        |_, _| {},
    )
    .unwrap();
    prediction_files(examples, &predictions, None).0
}

pub mod engine;
pub mod server;

/// Characters `start..end` of `text`: an answer's span as its character offsets give it.
pub fn chars(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

/// The default model folder the repository ships.
pub fn shipped_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/minilm-l6-squad1")
}

/// `folder`'s int8 graph: the file's bytes and the message decoded from them.
pub fn int8_graph(folder: &Path) -> (Vec<u8>, ModelProto) {
    let bytes = std::fs::read(folder.join("model-int8.onnx")).unwrap();
    let model = ModelProto::decode(bytes.as_slice()).unwrap();
    (bytes, model)
}

/// A tiny random model's row-wise int8 export in `dir` (every dense input quantized per
/// token, so every kind of site): its folder, the graph's bytes and the graph.
pub fn tiny_rowwise_int8(dir: &Path) -> (PathBuf, Vec<u8>, ModelProto) {
    tiny_model_folder(dir);
    let export = tiny_int8_export(dir, WeightFormat::Int8Rowwise, "rowwise");
    let (bytes, model) = int8_graph(&export);
    (export, bytes, model)
}

/// An engine on `folder`'s int8 graph on CPU with `kernels` and `threads` intra-op threads.
pub fn int8_engine(folder: &Path, kernels: Kernels, threads: usize) -> Engine {
    let config = EngineConfig {
        threads: Some(threads),
        device: DeviceKind::Cpu,
        int8: true,
        kernels,
    };
    Engine::load(folder, &config).unwrap()
}
