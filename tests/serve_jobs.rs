//! `/evaluations`: a job scores like `/evaluate`, reports each question, shows its progress,
//! can be cancelled (freeing the evaluation slot), and the queue of jobs is bounded; and the
//! page that drives them is served from the binary (its behaviour: tests/browser/).

mod common;

use std::time::Duration;

use common::server::{config, metric, TestServer};
use serde_json::Value;

async fn start_job(server: &TestServer, questions: usize) -> (u16, Value, Option<String>) {
    let text = serde_json::to_vec(&common::dev_squad().truncated(questions)).unwrap();
    let response = server
        .client
        .post(server.url("/evaluations"))
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (status, response.json().await.unwrap(), location)
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let (status, text) = server.get_text(path).await;
    (status, serde_json::from_str(&text).unwrap())
}

async fn delete(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server.client.delete(server.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Polls `location` until its state is final; returns every status seen.
async fn follow(server: &TestServer, location: &str) -> Vec<Value> {
    let mut seen = vec![];
    for _ in 0..6000 {
        let (status, body) = get(server, location).await;
        assert_eq!(status, 200, "{body}");
        let state = body["state"].as_str().unwrap().to_string();
        seen.push(body);
        if ["done", "failed", "cancelled"].contains(&state.as_str()) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the job never ended");
}

/// A job's report lists `count` questions whose F1 averages to the job's `f1`, each
/// prediction a span of its own context, the 20 worst, and every question under a type.
fn assert_report_covers_every_question(report: &Value, f1: f64, count: usize) {
    let questions = report["questions"].as_array().unwrap();
    assert_eq!(questions.len(), count);
    let contexts = report["contexts"].as_array().unwrap();
    let mean_f1 = questions
        .iter()
        .map(|q| q["f1"].as_f64().unwrap())
        .sum::<f64>()
        / count as f64;
    assert!(
        (mean_f1 - f1).abs() < 1e-6,
        "per-question F1 averages to F1"
    );
    for q in questions {
        let context: Vec<char> = contexts[q["context"].as_u64().unwrap() as usize]
            .as_str()
            .unwrap()
            .chars()
            .collect();
        let prediction: Vec<char> = q["prediction"].as_str().unwrap().chars().collect();
        let start = q["prediction_start"].as_u64().unwrap() as usize;
        assert_eq!(
            &context[start..start + prediction.len()],
            &prediction[..],
            "{q}"
        );
    }
    let worst = report["worst"].as_array().unwrap();
    assert_eq!(worst.len(), 20);
    let grouped: u64 = report["by_question_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["questions"].as_u64().unwrap())
        .sum();
    assert_eq!(grouped, count as u64, "every question has a type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_scores_like_evaluate_and_reports_every_question() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let server = TestServer::start(config(&folder, &["--graph", "fp32"])).await;
    let (status, queued, location) = start_job(&server, 120).await;
    assert_eq!(status, 202, "{queued}");
    let location = location.expect("a Location header");
    assert_eq!(
        location,
        format!("/evaluations/{}", queued["id"].as_str().unwrap())
    );
    assert_eq!(queued["questions_total"], 120);
    let seen = follow(&server, &location).await;
    let done: Vec<u64> = seen
        .iter()
        .map(|s| s["questions_done"].as_u64().unwrap())
        .collect();
    assert!(
        done.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {done:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(last["state"], "done", "{last}");
    assert_eq!(last["questions_done"], 120);
    assert!(last["remaining_ms"].is_null());

    let text = serde_json::to_vec(&common::dev_squad().truncated(120)).unwrap();
    let (status, sync) = server
        .post_raw("/evaluate", Some("application/json"), text)
        .await;
    assert_eq!(status, 200, "{sync}");
    let scores = &last["result"]["scores"];
    assert_eq!(scores["exact_match"], sync["exact_match"]);
    assert_eq!(scores["f1"], sync["f1"]);
    assert_eq!(last["f1"], sync["f1"]);

    assert_report_covers_every_question(
        &last["result"]["report"],
        sync["f1"].as_f64().unwrap(),
        120,
    );

    let (_, list) = get(&server, "/evaluations").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(
        list[0].get("result").is_none(),
        "the list leaves results out"
    );
    let (_, metrics) = server.get_text("/metrics").await;
    assert_eq!(
        metric(&metrics, r#"bertqa_evaluation_jobs{state="done"}"#),
        Some(1.0)
    );
    let (status, deleted) = delete(&server, &location).await;
    assert_eq!(deleted["state"], "done");
    assert_eq!(status, 200, "a finished job is forgotten");
    let (status, gone) = get(&server, &location).await;
    assert_eq!(
        (status, gone["error_type"].as_str()),
        (404, Some("not_found"))
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_queue_in_bounds_and_cancel_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let flags = ["--max-batch-size", "2", "--max-queued-evaluations", "1"];
    let server = TestServer::start(config(&folder, &flags)).await;
    let (_, _, first) = start_job(&server, 2000).await;
    let first = first.unwrap();
    // Wait until it runs with some questions done: progress is visible before the end.
    loop {
        let (_, now) = get(&server, &first).await;
        if now["questions_done"].as_u64().unwrap() > 0 {
            assert_eq!(now["state"], "running");
            assert!(now["remaining_ms"].as_u64().is_some(), "{now}");
            assert!(now["f1"].as_f64().is_some(), "running F1: {now}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, waiting, second) = start_job(&server, 10).await;
    assert_eq!((status, waiting["state"].as_str()), (202, Some("queued")));
    let (status, refused, _) = start_job(&server, 10).await;
    assert_eq!(
        (status, refused["error_type"].as_str()),
        (429, Some("overloaded"))
    );
    let (status, sync) = server
        .post_raw("/evaluate", Some("application/json"), b"{}".to_vec())
        .await;
    assert_eq!(
        (status, sync["error_type"].as_str()),
        (429, Some("evaluation_running"))
    );

    let second = second.unwrap();
    let (status, cancelled) = delete(&server, &second).await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, last) = delete(&server, &first).await;
    assert_eq!((status, last["state"].as_str()), (200, Some("cancelled")));
    assert!(last["questions_done"].as_u64().unwrap() < 2000, "{last}");
    for deleted in [&first, &second] {
        let (status, gone) = get(&server, deleted).await;
        assert_eq!(
            (status, gone["error_type"].as_str()),
            (404, Some("not_found"))
        );
    }
    // Its queued windows are dropped and the slot is free: a new job runs to the end.
    let (_, _, third) = start_job(&server, 5).await;
    let seen = follow(&server, &third.unwrap()).await;
    assert_eq!(seen.last().unwrap()["state"], "done");
    let (_, metrics) = server.get_text("/metrics").await;
    let queued = metric(&metrics, "bertqa_queue_depth").unwrap();
    assert_eq!(queued, 0.0, "no window of the cancelled job is left queued");
    // The running job stopped before its end: its run ended as cancelled, not done.
    let cancelled = r#"bertqa_evaluations_total{outcome="cancelled"}"#;
    assert_eq!(metric(&metrics, cancelled), Some(1.0));
    let ok = r#"bertqa_evaluations_total{outcome="ok"}"#;
    assert_eq!(
        metric(&metrics, ok),
        Some(1.0),
        "only the third job finished"
    );
    let (status, unknown) = get(&server, "/evaluations/nope").await;
    assert_eq!(
        (status, unknown["error_type"].as_str()),
        (404, Some("not_found"))
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_need_the_evaluation_key_and_refuse_bad_files_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let server = TestServer::start(config(&folder, &["--api-key", "s3cret"])).await;
    let (status, body, _) = start_job(&server, 3).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = get(&server, "/evaluations").await;
    assert_eq!(status, 401);
    let response = server
        .client
        .post(server.url("/evaluations"))
        .bearer_auth("s3cret")
        .header("content-type", "application/json")
        .body(r#"{"version": "1.1", "data": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        422,
        "an empty file is refused, not queued"
    );
    server.stop().await.unwrap();

    let off = TestServer::start(config(&folder, &["--evaluate", "off"])).await;
    let (status, body, _) = start_job(&off, 3).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (404, Some("not_found"))
    );
    off.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_from_the_binary_under_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let server = TestServer::start(config(&folder, &["--api-key", "s3cret"])).await;
    let cases = [
        ("/", "text/html", "<title>bertqa</title>"),
        ("/assets/app.js", "text/javascript", "/evaluations"),
        ("/assets/style.css", "text/css", "mark.best"),
    ];
    for (path, media, needle) in cases {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            200,
            "{path} is open even with a key"
        );
        let header = |name: &str| {
            let value = response.headers().get(name).map(|v| v.to_str().unwrap());
            value.unwrap_or_default().to_string()
        };
        assert!(header("content-type").starts_with(media), "{path}");
        assert!(header("content-security-policy").contains("default-src 'none'"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    server.stop().await.unwrap();
}
