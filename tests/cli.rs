//! The `bertqa` command line end to end: export a checkpoint, predict a SQuAD file with the
//! exported graph, score the predictions; and its error messages.

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bertqa::model::BertConfig;
use bertqa::qa::squad::load_squad;

fn bertqa(args: &[&dyn AsRef<OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertqa"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

/// `bertqa` with `args`, then `flags`: one command that tests run with varied flags.
fn bertqa_then(args: &[&dyn AsRef<OsStr>], flags: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(flags.iter().map(|f| f as &dyn AsRef<OsStr>));
    bertqa(&all)
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A copy of the shipped model folder under `dir` and its `bertqa.json`, for tests that change
/// the manifest.
fn copy_of_default_model(dir: &std::path::Path) -> (std::path::PathBuf, serde_json::Value) {
    let folder = dir.join("model");
    std::fs::create_dir(&folder).unwrap();
    let shipped = common::shipped_model();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, folder.join(path.file_name().unwrap())).unwrap();
    }
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(folder.join("bertqa.json")).unwrap())
            .unwrap();
    (folder, manifest)
}

/// A tiny random checkpoint (BERT's vocabulary, the pretrained tokenizer) written and exported
/// to `dir/NAME` with `export_flags` by the `bertqa` commands themselves (`random-checkpoint`,
/// `export`; `common::tiny_model_folder` calls the library): the model folder.
fn exported_by_the_cli(dir: &Path, name: &str, export_flags: &[&str]) -> PathBuf {
    let checkpoint = dir.join(format!("{name}-checkpoint"));
    let config = dir.join(format!("{name}-config.json"));
    std::fs::write(
        &config,
        serde_json::to_string(&BertConfig::tiny(30522)).unwrap(),
    )
    .unwrap();
    ok(&bertqa(&[
        &"random-checkpoint",
        &"--config",
        &config,
        &"--tokenizer",
        &common::pretrained_dir().join("tokenizer.json"),
        &"--out",
        &checkpoint,
        &"--seed",
        &"1",
    ]));
    let folder = dir.join(name);
    let export: [&dyn AsRef<OsStr>; 5] =
        [&"export", &"--checkpoint", &checkpoint, &"--out", &folder];
    ok(&bertqa_then(&export, export_flags));
    folder
}

#[test]
fn export_then_predict_then_score() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_by_the_cli(
        dir.path(),
        "model",
        &["--int8", "--int8-mode", "int8-mixed"],
    );
    for file in [
        "model.onnx",
        "model-int8.onnx",
        "tokenizer.json",
        "bertqa.json",
    ] {
        assert!(model.join(file).is_file(), "{file}");
    }
    let data = common::squad_dir().join("dev-v1.1.json.gz");
    let preds = dir.path().join("preds.json");
    ok(&bertqa(&[
        &"predict",
        &"--model-dir",
        &model,
        &"--data",
        &data,
        &"--limit",
        &"12",
        &"--out",
        &preds,
        &"--graph",
        &"int8",
    ]));
    let answers: HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(&preds).unwrap()).unwrap();
    assert_eq!(answers.len(), 12);
    let dataset = load_squad(&data).unwrap().truncated(12);
    let subset = dir.path().join("subset.json");
    std::fs::write(&subset, serde_json::to_vec(&dataset).unwrap()).unwrap();
    let printed: serde_json::Value =
        serde_json::from_str(&ok(&bertqa(&[&"score", &subset, &preds]))).unwrap();
    // Every answer is a span of its own context, and `score` prints what the library computes.
    for example in dataset.examples() {
        assert!(example.context.contains(answers[&example.id].as_str()));
    }
    let expected = bertqa::qa::squad::metrics::score(&dataset, &answers, None, 1.0)
        .unwrap()
        .to_official_json();
    assert_eq!(printed, serde_json::Value::Object(expected));
}

#[test]
fn an_int8_only_folder_has_no_fp32_graph_to_serve_and_bad_limits_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = exported_by_the_cli(dir.path(), "int8-only", &["--int8-only"]);
    assert!(!shipped.join("model.onnx").exists());
    let manifest = bertqa::model::manifest::ModelManifest::load(&shipped).unwrap();
    assert_eq!(manifest.graphs, ["model-int8.onnx"]);
    let serve = |flags: &[&str]| {
        bertqa_then(
            &[&"serve", &"--model-dir", &shipped, &"--port", &"0"],
            flags,
        )
    };
    common::failed_with(
        &serve(&["--graph", "fp32"]),
        "--graph fp32, but the model folder has only",
    );
    common::failed_with(&serve(&["--max-batch-tokens", "100"]), "--max-batch-tokens");
}

/// Without --graph, predict picks like `serve --graph auto`: the int8-only default folder
/// works as it is, and asking it for fp32 is refused.
#[test]
fn predict_picks_the_graph_like_serve_auto() {
    let dir = tempfile::tempdir().unwrap();
    let default_model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/minilm-l6-squad1");
    let data = common::squad_dir().join("dev-v1.1.json.gz");
    let preds = dir.path().join("default.json");
    let predict = |flags: &[&str]| {
        let args: [&dyn AsRef<OsStr>; 7] = [
            &"predict",
            &"--model-dir",
            &default_model,
            &"--data",
            &data,
            &"--out",
            &preds,
        ];
        bertqa_then(&args, flags)
    };
    ok(&predict(&["--limit", "3"]));
    let answers: HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(&preds).unwrap()).unwrap();
    assert_eq!(answers.len(), 3);
    common::failed_with(&predict(&["--graph", "fp32"]), "--graph fp32");
}

#[test]
fn bad_paths_and_options_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere");
    let data = common::squad_dir().join("dev-v1.1.json.gz");
    common::failed_with(
        &bertqa(&[
            &"predict",
            &"--model-dir",
            &nowhere,
            &"--data",
            &data,
            &"--out",
            &dir.path().join("p.json"),
        ]),
        "bertqa.json",
    );
    common::failed_with(
        &bertqa(&[&"serve", &"--model-dir", &nowhere]),
        "bertqa.json",
    );
    common::failed_with(
        &bertqa(&[
            &"export",
            &"--checkpoint",
            &nowhere,
            &"--out",
            &dir.path().join("m"),
        ]),
        "config.json",
    );
    // Export flags that are refused before any file is read.
    let refused: [(&[&str], &str); 2] = [
        (
            &["--int8-mode", "fp32"],
            "--int8-mode must be int8, int8-mixed, int8-rowwise, int8-static or \
             int8-static-gelu-rowwise",
        ),
        (
            &["--int8-mode", "int8-static", "--clip-percentile", "100.5"],
            "--clip-percentile",
        ),
    ];
    for (flags, message) in refused {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"export",
            &"--checkpoint",
            &nowhere,
            &"--out",
            &nowhere,
            &"--int8",
        ];
        args.extend(flags.iter().map(|f| f as &dyn AsRef<std::ffi::OsStr>));
        common::failed_with(&bertqa(&args), message);
    }
    common::failed_with(
        &bertqa(&[
            &"random-checkpoint",
            &"--config",
            &nowhere,
            &"--tokenizer",
            &nowhere,
            &"--out",
            &dir.path().join("c"),
        ]),
        "nowhere",
    );
}

#[test]
fn calibrate_writes_the_fitted_score_into_the_model_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, mut manifest) = copy_of_default_model(dir.path());
    manifest
        .as_object_mut()
        .unwrap()
        .remove("score_calibration");
    std::fs::write(folder.join("bertqa.json"), manifest.to_string()).unwrap();
    let dev = common::squad_dir().join("dev-v1.1.json.gz");
    let printed = ok(&bertqa(&[
        &"calibrate",
        &"--model-dir",
        &folder,
        &"--data",
        &dev,
        &"--questions",
        &"60",
        &"--passages",
        &"3",
        &"--held-out-from-article",
        &"1",
    ]));
    let fitted: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("bertqa.json")).unwrap())
            .unwrap();
    assert_eq!(written["score_calibration"], fitted);
    assert_eq!(fitted["fit_questions"], 60);
    assert_eq!(fitted["fit_samples"], 180);
    // A longer span logit sum is more likely right.
    assert!(
        fitted["span_weight"].as_f64().unwrap() + fitted["margin_weight"].as_f64().unwrap() > 0.0
    );
    let ece = fitted["ece_with_distractors"].as_f64().unwrap();
    assert!((0.0..0.5).contains(&ece), "{fitted}");
}

#[test]
fn evaluate_passages_compares_the_scorings_with_one_and_with_several_passages() {
    let folder = common::shipped_model();
    let dev = common::squad_dir().join("dev-v1.1.json.gz");
    let rows = ok(&bertqa(&[
        &"evaluate-passages",
        &"--model-dir",
        &folder,
        &"--data",
        &dev,
        &"--questions",
        &"30",
        &"--passages",
        &"1,3",
        &"--from-article",
        &"1",
    ]));
    let rows: Vec<serde_json::Value> = rows
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6, "{rows:?}");
    let row = |n: u64, scoring: &str| {
        rows.iter()
            .find(|r| r["passages"] == n && r["scoring"] == scoring)
            .unwrap()
    };
    // With one passage every scoring picks the same answer from the right passage.
    for scoring in ["passage probability", "span logits", "calibrated"] {
        assert_eq!(row(1, scoring)["own_passage"], 100.0);
        assert_eq!(row(1, scoring)["exact"], row(1, "calibrated")["exact"]);
    }
    assert!(
        row(3, "calibrated")["own_passage"].as_f64().unwrap()
            >= row(3, "passage probability")["own_passage"]
                .as_f64()
                .unwrap()
    );
}

#[test]
fn calibrate_refuses_a_null_answer_the_model_does_not_have() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, mut manifest) = copy_of_default_model(dir.path());
    let dev = common::squad_dir().join("dev-v1.1.json.gz");
    // Served as v1.1 the model has no null answer to calibrate.
    manifest["squad_version"] = "1.1".into();
    manifest.as_object_mut().unwrap().remove("null_threshold");
    std::fs::write(folder.join("bertqa.json"), manifest.to_string()).unwrap();
    let err = bertqa(&[
        &"calibrate",
        &"--model-dir",
        &folder,
        &"--data",
        &dev,
        &"--null-data",
        &dev,
        &"--questions",
        &"10",
        &"--dry-run",
    ]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("no null answer"));
}

/// A v2.0 model abstains where its null score wins; `--always-answer` makes it give its best
/// span for every question instead (how a v1.1 file scores such a model).
#[test]
fn always_answer_gives_a_span_where_a_v2_model_abstains() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, mut manifest) = copy_of_default_model(dir.path());
    // Served as v2.0 with a threshold every null score beats: every question abstains.
    manifest["squad_version"] = "2.0".into();
    manifest["null_threshold"] = (-1.0e6).into();
    std::fs::write(folder.join("bertqa.json"), manifest.to_string()).unwrap();
    let data = common::squad_dir().join("dev-v1.1.json.gz");
    let predict = |out: &std::path::Path, extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"predict",
            &"--model-dir",
            &folder,
            &"--data",
            &data,
            &"--limit",
            &"5",
            &"--out",
        ];
        args.push(&out);
        args.extend_from_slice(extra);
        ok(&bertqa(&args));
        let answers: std::collections::HashMap<String, String> =
            serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
        answers
    };
    let abstained = predict(&dir.path().join("abstained.json"), &[]);
    assert_eq!(abstained.len(), 5);
    assert!(abstained.values().all(String::is_empty), "{abstained:?}");
    let odds_file = dir.path().join("odds.json");
    let answered = predict(
        &dir.path().join("answered.json"),
        &[&"--always-answer", &"--na-prob-out", &odds_file],
    );
    let odds: std::collections::HashMap<String, f64> =
        serde_json::from_slice(&std::fs::read(&odds_file).unwrap()).unwrap();
    let examples = load_squad(&data).unwrap().examples();
    for example in &examples[..5] {
        let answer = &answered[&example.id];
        assert!(!answer.is_empty() && example.context.contains(answer.as_str()));
        // The null odds stay in the file, for the official script's threshold sweep.
        assert!(odds[&example.id].is_finite());
    }
}
