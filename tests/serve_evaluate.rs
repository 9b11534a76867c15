//! `POST /evaluate` end to end: the same scores and answers as `bertqa predict` + `bertqa score`
//! in every upload form, metrics updated, and one evaluation at a time while `/answer` flows.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bertqa::qa::squad::{load_squad, metrics, SquadFile};
use common::server::{config, metric, TestServer};
use serde_json::{json, Value};

fn model(dir: &tempfile::TempDir) -> PathBuf {
    common::tiny_model_folder(dir.path())
}

fn dev() -> SquadFile {
    load_squad(&common::squad_dir().join("dev-v1.1.json.gz")).unwrap()
}

/// What `bertqa predict` + `bertqa score` give: the offline path, without the server.
fn offline_scores(folder: &Path, dataset: &SquadFile) -> (Value, HashMap<String, String>) {
    let answers = common::offline_answers(folder, &dataset.examples());
    let scores = metrics::score(dataset, &answers, None, 1.0).unwrap();
    (Value::Object(scores.to_official_json()), answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_scores_like_predict_and_score_in_every_upload_form() {
    let dir = tempfile::tempdir().unwrap();
    let folder = model(&dir);
    let dataset = dev().truncated(60);
    let (offline, offline_answers) = offline_scores(&folder, &dataset);
    let server = TestServer::start(config(&folder, &["--graph", "fp32"])).await;
    let text = serde_json::to_vec(&dataset).unwrap();
    let (status, plain) = server
        .post_raw(
            "/evaluate?predictions=true",
            Some("application/json"),
            text.clone(),
        )
        .await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["total"], 60);
    let served: HashMap<String, String> =
        serde_json::from_value(plain["predictions"].clone()).unwrap();
    let same = served
        .iter()
        .filter(|(id, a)| offline_answers.get(*id) == Some(a))
        .count();
    assert_eq!(same, 60, "answers agree with bertqa predict");
    assert_eq!(plain["exact_match"], offline["exact_match"]);
    assert_eq!(plain["f1"], offline["f1"]);
    assert!(plain["questions_per_second"].as_f64().unwrap() > 0.0);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text).unwrap();
    let gz = gz.finish().unwrap();
    let (status, zipped) = server
        .post_raw("/evaluate?limit=20", Some("application/gzip"), gz.clone())
        .await;
    assert_eq!((status, &zipped["total"]), (200, &json!(20)));
    assert!(zipped.get("predictions").is_none());
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(gz).file_name("dev.json.gz"),
    );
    let response = server
        .client
        .post(server.url("/evaluate?limit=20"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let uploaded: Value = response.json().await.unwrap();
    assert_eq!(uploaded["f1"], zipped["f1"]);

    let (_, metrics_text) = server.get_text("/metrics").await;
    assert_eq!(
        metric(&metrics_text, r#"bertqa_evaluations_total{outcome="ok"}"#),
        Some(3.0)
    );
    let last_f1 = metric(&metrics_text, "bertqa_last_evaluation_f1").unwrap();
    assert!((last_f1 - uploaded["f1"].as_f64().unwrap()).abs() < 1e-9);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_evaluation_waits_its_turn_while_answers_keep_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--max-batch-size", "2"];
    let server = TestServer::start(config(&model(&dir), &flags)).await;
    let text = serde_json::to_vec(&dev().truncated(400)).unwrap();
    let first = spawn_evaluation(&server, text);
    let second = refused_while_running(&server, &first).await;
    assert_eq!(second["error_type"].as_str(), Some("evaluation_running"));
    let (status, _) = server
        .post_json(
            "/answer",
            &json!({"question": "Who?", "context": "Ann met Bob."}),
        )
        .await;
    assert_eq!(status, 200, "answers are served during an evaluation");
    assert_eq!(first.await.unwrap(), 200);
    server.stop().await.unwrap();
}

/// Starts `POST /evaluate` of the JSON SQuAD file `text`; the task yields its status.
fn spawn_evaluation(server: &TestServer, text: Vec<u8>) -> tokio::task::JoinHandle<u16> {
    let request = server
        .client
        .post(server.url("/evaluate"))
        .header("content-type", "application/json")
        .body(text);
    tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
}

/// Sends one-question evaluations until one is refused with 429 because `running` holds the
/// evaluation slot (small ones that get in first just finish); returns the refusal's body.
async fn refused_while_running(
    server: &TestServer,
    running: &tokio::task::JoinHandle<u16>,
) -> Value {
    let one = serde_json::to_vec(&dev().truncated(1)).unwrap();
    loop {
        assert!(
            !running.is_finished(),
            "the evaluation ended before it was seen running"
        );
        let (status, body) = server
            .post_raw("/evaluate", Some("application/json"), one.clone())
            .await;
        if status == 429 {
            return body;
        }
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_never_spends_the_interactive_budget() {
    // The interactive budget is one batch (2 windows) while the evaluation keeps four batches
    // of its own queued: counted together, every /answer would be refused with 429.
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--max-batch-size", "2", "--max-queued-windows", "2"];
    let server = TestServer::start(config(&model(&dir), &flags)).await;
    let text = serde_json::to_vec(&dev().truncated(1000)).unwrap();
    let evaluation = spawn_evaluation(&server, text);
    refused_while_running(&server, &evaluation).await;
    // Past its tokenization: the evaluation's windows are going through the batcher.
    let batches = |text: &str| metric(text, "bertqa_batch_size_count").unwrap_or(0.0);
    let (_, before) = server.get_text("/metrics").await;
    loop {
        let (_, now) = server.get_text("/metrics").await;
        if batches(&now) >= batches(&before) + 10.0 {
            break;
        }
        assert!(!evaluation.is_finished(), "the evaluation ended first");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let (status, body) = server
            .post_json(
                "/answer",
                &json!({"question": "Who?", "context": "Ann met Bob."}),
            )
            .await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "during an evaluation: {body}");
    }
    assert!(
        !evaluation.is_finished(),
        "the evaluation ended before the answers: nothing was shown"
    );
    // Interactive windows go first, so an answer never waits for the evaluation's queue.
    assert!(
        slowest < Duration::from_secs(5),
        "slowest answer {slowest:?}"
    );
    assert_eq!(evaluation.await.unwrap(), 200);
    server.stop().await.unwrap();
}
