//! Training works: a tiny random model memorises 16 questions (EM 100) and its exported graph
//! answers them the same offline and served, and a run interrupted with a checkpoint then
//! resumed has exactly the loss curve of an uninterrupted run, in the format it began in.
#![cfg(feature = "train")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use bertqa::model::BertConfig;
use bertqa::qa::squad::{load_squad, metrics};
use bertqa::train::config::{DeviceChoice, PrecisionChoice, TrainConfig};
use bertqa::train::precision::Precision;
use bertqa::train::trainer::train;
use common::server::{config as server_config, TestServer};

/// libtorch's random generator is global to the process: tests that train take turns, or
/// their seeds would interleave.
static TRAINING: Mutex<()> = Mutex::new(());

/// A model folder with a tiny config and the real tokenizer, and a 16-question SQuAD file.
fn workspace(dir: &Path, dropout: f64) -> (PathBuf, PathBuf) {
    let model = dir.join("tiny");
    std::fs::create_dir_all(&model).unwrap();
    let mut config = BertConfig::tiny(30522);
    (config.hidden_size, config.intermediate_size) = (64, 128);
    config.hidden_dropout_prob = dropout;
    config.attention_probs_dropout_prob = dropout;
    std::fs::write(
        model.join("config.json"),
        serde_json::to_string(&config).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        common::pretrained_dir().join("tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    let data = dir.join("sixteen.json");
    // The first question of each of the first 16 paragraphs: 16 different contexts.
    let mut dev = common::dev_squad();
    dev.data.truncate(1);
    dev.data[0].paragraphs.truncate(16);
    for paragraph in &mut dev.data[0].paragraphs {
        paragraph.qas.truncate(1);
    }
    std::fs::write(&data, serde_json::to_string(&dev).unwrap()).unwrap();
    (model, data)
}

fn config(model: &Path, data: &Path, out: &Path) -> TrainConfig {
    TrainConfig {
        model: model.into(),
        train: data.into(),
        dev: data.into(),
        out: out.into(),
        epochs: 1,
        lr: 3e-3,
        batch_size: 16,
        grad_accum: 1,
        warmup_ratio: 0.0,
        weight_decay: 0.0,
        max_seq_len: 384,
        doc_stride: 128,
        max_query_len: 64,
        max_steps: None,
        stop_after_steps: None,
        train_limit: None,
        negatives: 0.0,
        dev_limit: None,
        eval_every: 0,
        patience: 0,
        save_every: 1000,
        precision: PrecisionChoice::Fp32,
        device: DeviceChoice::Cpu,
        threads: Some(1),
        seed: 7,
        resume: false,
        random_init: true,
        eval_batch_tokens: 16_384,
        quiet: true,
    }
}

fn losses(out: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| Some((v["step"].as_u64()?, v["loss"].as_f64()?)))
        .collect()
}

#[test]
fn a_tiny_model_memorises_sixteen_questions() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = workspace(dir.path(), 0.0);
    let out = dir.path().join("run");
    let config = TrainConfig {
        epochs: 200,
        ..config(&model, &data, &out)
    };
    let summary = train(&config, &AtomicBool::new(false)).unwrap();
    let best = summary.best.unwrap();
    let curve: Vec<f64> = summary.evals.iter().map(|e| e.exact).collect();
    assert_eq!(best.exact, 100.0, "EM per epoch: {curve:?}");
    let curve = losses(&out);
    assert!(
        curve.last().unwrap().1 < curve[0].1 / 20.0,
        "loss fell from {} to {}",
        curve[0].1,
        curve.last().unwrap().1
    );
    for file in [
        "best/model.safetensors",
        "best/config.json",
        "best/tokenizer.json",
        "best/eval.json",
        "last/optimizer.safetensors",
        "metrics.json",
    ] {
        assert!(out.join(file).is_file(), "{file} written");
    }
    same_answers_in_every_flow(&out.join("model"), &data);
}

#[test]
fn negatives_add_unanswerable_windows_and_make_a_v2_model() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = workspace(dir.path(), 0.0);
    let out = dir.path().join("run");
    let with_negatives = TrainConfig {
        negatives: 1.0,
        max_steps: Some(2),
        ..config(&model, &data, &out)
    };
    let summary = train(&with_negatives, &AtomicBool::new(false)).unwrap();
    // Sixteen questions of one article: each paired with another of its paragraphs.
    assert_eq!(summary.data.negatives, 16, "{:?}", summary.data);
    assert_eq!(summary.data.questions, 32);
    assert!(summary.data.cls_labels >= 16, "{:?}", summary.data);
    let manifest = std::fs::read_to_string(out.join("model/bertqa.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["squad_version"], "2.0");
    let bad = TrainConfig {
        negatives: -1.0,
        ..config(&model, &data, &dir.path().join("bad"))
    };
    let err = train(&bad, &AtomicBool::new(false)).unwrap_err();
    assert!(err.to_string().contains("--negatives"), "{err}");
}

/// The one prediction path: the trainer's evaluation (tch) got every question right; the
/// exported graph through `predict_examples` (ONNX Runtime) and through the service's
/// `/evaluate` (its queue as the backend) give those same 16 answers.
fn same_answers_in_every_flow(folder: &Path, data: &Path) {
    let dataset = load_squad(data).unwrap();
    let examples = dataset.examples();
    let offline = common::offline_answers(folder, &examples);
    let scores = metrics::score(&dataset, &offline, None, 1.0).unwrap();
    assert_eq!(scores.overall().exact, 100.0, "{offline:?}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let served = runtime.block_on(async {
        let server = TestServer::start(server_config(folder, &["--graph", "fp32"])).await;
        let body = std::fs::read(data).unwrap();
        let (status, response) = server
            .post_raw("/evaluate?predictions=true", Some("application/json"), body)
            .await;
        assert_eq!(status, 200, "{response}");
        server.stop().await.unwrap();
        response
    });
    for (id, answer) in &offline {
        assert_eq!(
            served["predictions"][id].as_str(),
            Some(answer.as_str()),
            "{id}"
        );
    }
}

#[test]
fn an_interrupted_run_resumes_onto_the_same_loss_curve() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = workspace(dir.path(), 0.1);
    let base = |out: &Path| TrainConfig {
        epochs: 3,
        batch_size: 4,
        lr: 1e-3,
        warmup_ratio: 0.2,
        weight_decay: 0.01,
        ..config(&model, &data, out)
    };

    let straight = dir.path().join("straight");
    let whole = train(&base(&straight), &AtomicBool::new(false)).unwrap();
    assert!(
        whole.finished && whole.steps == whole.total_steps && whole.steps > 10,
        "{whole:?}"
    );

    let pieces = dir.path().join("pieces");
    let first = train(
        &TrainConfig {
            stop_after_steps: Some(5),
            ..base(&pieces)
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(!first.finished && first.steps == 5);
    let rest = train(
        &TrainConfig {
            resume: true,
            ..base(&pieces)
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(rest.finished && rest.steps == whole.steps);

    let (a, b) = (losses(&straight), losses(&pieces));
    assert_eq!(a.len() as u64, whole.steps);
    assert_eq!(a, b, "same losses, step for step");
    assert_eq!(whole.best.unwrap().f1, rest.best.unwrap().f1);

    // Changed settings are refused rather than silently mixed.
    let err = train(
        &TrainConfig {
            resume: true,
            lr: 5e-4,
            ..base(&pieces)
        },
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("settings differ"), "{err}");
}

#[test]
fn a_resumed_run_keeps_its_checkpoints_precision_under_auto() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = workspace(dir.path(), 0.0);
    let out = dir.path().join("run");
    let base = |precision| TrainConfig {
        batch_size: 4,
        precision,
        ..config(&model, &data, &out)
    };
    let first = TrainConfig {
        stop_after_steps: Some(1),
        ..base(PrecisionChoice::Bf16)
    };
    let first = train(&first, &AtomicBool::new(false)).unwrap();
    assert!(
        !first.finished && first.precision == Precision::Bf16,
        "{first:?}"
    );
    let state = std::fs::read_to_string(out.join("last/trainer_state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["precision"], "bf16");

    // Auto would time both formats on a fresh run (and mostly pick fp32 for a model this
    // small); a resumed one must not switch halfway.
    let rest = TrainConfig {
        resume: true,
        ..base(PrecisionChoice::Auto)
    };
    let rest = train(&rest, &AtomicBool::new(false)).unwrap();
    assert!(
        rest.finished && rest.precision == Precision::Bf16,
        "{rest:?}"
    );
    assert!(rest.precision_reason.contains("checkpoint"), "{rest:?}");
}

#[test]
fn bad_settings_and_files_are_clear_errors() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = workspace(dir.path(), 0.0);
    let out = dir.path().join("run");
    let cases = [
        (
            TrainConfig {
                batch_size: 0,
                ..config(&model, &data, &out)
            },
            "--batch-size",
        ),
        (
            TrainConfig {
                max_seq_len: 1024,
                ..config(&model, &data, &out)
            },
            "positions",
        ),
        (
            TrainConfig {
                doc_stride: 400,
                ..config(&model, &data, &out)
            },
            "doc_stride",
        ),
        (
            TrainConfig {
                train: dir.path().join("missing.json"),
                ..config(&model, &data, &out)
            },
            "missing.json",
        ),
        (
            TrainConfig {
                resume: true,
                ..config(&model, &data, &out)
            },
            "no checkpoint to resume",
        ),
        (
            TrainConfig {
                random_init: false,
                ..config(&model, &data, &out)
            },
            "model.safetensors",
        ),
    ];
    for (config, expected) in cases {
        let err = train(&config, &AtomicBool::new(false))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "expected '{expected}' in: {err}");
    }
}

/// libtorch's MKL asks `mkl_serv_intel_cpu_true` whether it may run its Intel (AVX-512) paths;
/// `finetune` answers it (`train::mkl_paths`) only if the dynamic linker binds libtorch's call
/// to the binary's export rather than to MKL's own definition.
#[test]
fn the_binary_answers_mkls_vendor_check() {
    let binary = env!("CARGO_BIN_EXE_finetune");
    let output = std::process::Command::new(binary)
        .arg("--help")
        .env("LD_BIND_NOW", "1")
        .env("LD_DEBUG", "bindings")
        .output()
        .unwrap();
    assert!(output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    let binding = log
        .lines()
        .find(|line| {
            line.contains("libtorch_cpu.so") && line.ends_with("`mkl_serv_intel_cpu_true'")
        })
        .expect("libtorch calls mkl_serv_intel_cpu_true");
    assert!(
        binding.contains(&format!(" to {binary} ")),
        "bound elsewhere: {binding}"
    );
}
