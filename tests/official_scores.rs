//! `bertqa score` and `squad::metrics` reproduce the official SQuAD scripts' numbers to 1e-9
//! on real prediction files. The numbers come from `scripts/reference/official_scores.py`,
//! which builds the same prediction sets by the same rules as `prediction_sets` below.

mod common;

use std::collections::HashMap;
use std::process::Command;

use bertqa::qa::squad::{load_squad, metrics, SquadFile};
use serde_json::{Map, Value};

struct Sets {
    by_name: Vec<(&'static str, HashMap<String, String>)>,
    na_probs: Map<String, Value>,
}

fn prediction_sets(dataset: &SquadFile) -> Sets {
    let names = [
        "gold",
        "empty",
        "first_sentence",
        "missing_half",
        "perturbed",
    ];
    let mut sets: Vec<HashMap<String, String>> = vec![HashMap::new(); names.len()];
    let mut na_probs = Map::new();
    for (i, (paragraph, qa)) in dataset.questions().enumerate() {
        let context = &paragraph.context;
        let gold = qa.answers.first().map_or("", |a| a.text.as_str());
        let id = qa.id.clone();
        sets[0].insert(id.clone(), gold.to_string());
        sets[1].insert(id.clone(), String::new());
        sets[2].insert(
            id.clone(),
            context.split(". ").next().unwrap_or("").to_string(),
        );
        if i % 2 == 0 {
            sets[3].insert(id.clone(), gold.to_string());
        }
        let perturbed = match i % 4 {
            0 => gold.to_uppercase(),
            1 => format!("The {gold}!"),
            2 => gold
                .split(bertqa::qa::text::is_python_whitespace)
                .rfind(|w| !w.is_empty())
                .unwrap_or("")
                .to_string(),
            _ => match qa.answers.first() {
                None => String::new(),
                Some(a) => {
                    let chars: Vec<char> = context.chars().collect();
                    let from = a.answer_start.saturating_sub(10);
                    let to = (a.answer_start + gold.chars().count() + 10).min(chars.len());
                    chars[from.min(to)..to].iter().collect()
                }
            },
        };
        sets[4].insert(id.clone(), perturbed);
        na_probs.insert(id, Value::from(((i * 7919) % 1000) as f64 / 1000.0));
    }
    Sets {
        by_name: names.into_iter().zip(sets).collect(),
        na_probs,
    }
}

/// Runs `bertqa score DATA PREDS`.
fn score_command(data: &std::path::Path, preds: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bertqa"))
        .arg("score")
        .args([data, preds])
        .output()
        .unwrap()
}

fn reference() -> Value {
    let text = std::fs::read_to_string(common::fixture("official-scores.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn assert_same(case: &str, got: &Map<String, Value>, want: &Value) {
    let want = want
        .as_object()
        .unwrap_or_else(|| panic!("no reference for {case}"));
    let got_keys: Vec<&String> = got.keys().collect();
    let want_keys: Vec<&String> = want.keys().collect();
    assert_eq!(got_keys, want_keys, "{case}: keys and their order");
    for (key, w) in want {
        let (g, w) = (got[key].as_f64().unwrap(), w.as_f64().unwrap());
        assert!(
            (g - w).abs() <= 1e-9,
            "{case}.{key}: ours {g}, official {w}"
        );
    }
}

#[test]
fn v1_scores_equal_the_official_script() {
    let dataset = load_squad(&common::squad_dir().join("dev-v1.1.json.gz")).unwrap();
    let reference = reference();
    let sets = prediction_sets(&dataset);
    for (name, predictions) in &sets.by_name {
        let got = metrics::score(&dataset, predictions, None, 1.0)
            .unwrap()
            .to_official_json();
        assert_same(name, &got, &reference["dev-v1.1"][*name]);
    }
}

#[test]
fn v2_scores_equal_the_official_script() {
    let dataset = load_squad(&common::squad_dir().join("dev-v2.0-rebuilt.json.gz")).unwrap();
    let reference = &reference()["dev-v2.0"];
    let sets = prediction_sets(&dataset);
    let mut cases = 0;
    for (name, predictions) in &sets.by_name {
        if *name == "missing_half" {
            let err = metrics::score(&dataset, predictions, None, 1.0).unwrap_err();
            assert!(
                matches!(
                    err,
                    metrics::ScoreError::MissingPredictions { missing: 5936, .. }
                ),
                "{err}"
            );
            continue;
        }
        assert_same(
            name,
            &metrics::score(&dataset, predictions, None, 1.0)
                .unwrap()
                .to_official_json(),
            &reference[*name],
        );
        let with_na = metrics::score(&dataset, predictions, Some(&sets.na_probs), 1.0)
            .unwrap()
            .to_official_json();
        assert_same(
            &format!("{name}+na_probs"),
            &with_na,
            &reference[format!("{name}+na_probs")],
        );
        cases += 2;
    }
    let perturbed = &sets.by_name[4].1;
    let got = metrics::score(&dataset, perturbed, Some(&sets.na_probs), 0.5)
        .unwrap()
        .to_official_json();
    assert_same(
        "perturbed+na_probs+thresh0.5",
        &got,
        &reference["perturbed+na_probs+thresh0.5"],
    );
    assert_eq!(cases + 1, reference.as_object().unwrap().len());
}

#[test]
fn score_command_prints_the_official_json() {
    let data = common::squad_dir().join("dev-v2.0-rebuilt.json.gz");
    let dataset = load_squad(&data).unwrap();
    let sets = prediction_sets(&dataset);
    let dir = tempfile::tempdir().unwrap();
    let preds = dir.path().join("preds.json");
    let na = dir.path().join("na.json");
    std::fs::write(&preds, serde_json::to_vec(&sets.by_name[4].1).unwrap()).unwrap();
    std::fs::write(&na, serde_json::to_vec(&sets.na_probs).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bertqa"))
        .arg("score")
        .args([&data, &preds])
        .arg("--na-prob-file")
        .arg(&na)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_same(
        "cli perturbed+na_probs",
        printed.as_object().unwrap(),
        &reference()["dev-v2.0"]["perturbed+na_probs"],
    );

    // A v2.0 file with missing predictions is refused with a message, not a crash.
    std::fs::write(&preds, serde_json::to_vec(&sets.by_name[3].1).unwrap()).unwrap();
    common::failed_with(
        &score_command(&data, &preds),
        "needs a prediction for every question",
    );
}

#[test]
fn score_command_reports_bad_files_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.json");
    let preds = dir.path().join("preds.json");
    std::fs::write(
        &data,
        r#"{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": 1}]}]}]}"#,
    )
    .unwrap();
    std::fs::write(&preds, "{}").unwrap();
    common::failed_with(
        &score_command(&data, &preds),
        "data[0].paragraphs[0].qas[0].id",
    );
    std::fs::write(&data, r#"{"version": "1.1", "data": []}"#).unwrap();
    std::fs::write(&preds, r#"{"q": 3}"#).unwrap();
    common::failed_with(&score_command(&data, &preds), "prediction file");
}
