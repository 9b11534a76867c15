//! The HTTP service end to end on a tiny random model exported at test time: the contract of
//! `/answer`, batching correctness, health, metrics and OpenAPI (many passages:
//! `serve_passages.rs`; bad inputs: `serve_errors.rs`; `/evaluate`: `serve_evaluate.rs`; jobs and the page: `serve_jobs.rs`;
//! overload, disconnects and graceful shutdown, which hold the inference thread:
//! `serve_operators.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bertqa::qa::squad::Example;
use common::server::{config, metric, TestServer};
use serde_json::{json, Value};

fn model(dir: &tempfile::TempDir) -> PathBuf {
    common::tiny_model_folder(dir.path())
}

fn dev_examples(n: usize) -> Vec<Example> {
    common::dev_examples().into_iter().take(n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_returns_spans_of_the_context_ranked_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(&model(&dir), &[])).await;
    let examples = dev_examples(3);
    let e = &examples[0];
    let (status, one) = server
        .post_json(
            "/answer",
            &json!({"question": e.question, "context": &*e.context}),
        )
        .await;
    assert_eq!(status, 200, "{one}");
    let (start, end) = (one["start"].as_u64().unwrap(), one["end"].as_u64().unwrap());
    assert_eq!(
        one["answer"],
        common::chars(&e.context, start as usize, end as usize)
    );
    let score = one["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score), "{score}");
    assert!(one.get("answers").is_none());

    let (status, ranked) = server
        .post_json(
            "/answer",
            &json!({"question": e.question, "context": &*e.context, "top_k": 5}),
        )
        .await;
    assert_eq!(status, 200);
    let answers = ranked["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 5);
    assert_eq!(answers[0]["answer"], one["answer"]);
    let scores: Vec<f64> = answers
        .iter()
        .map(|a| a["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    let batch: Vec<Value> = examples
        .iter()
        .map(|e| json!({"question": e.question, "context": &*e.context}))
        .collect();
    let (status, list) = server.post_json("/answer", &Value::Array(batch)).await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["answer"], one["answer"]);
    for (answer, e) in list.iter().zip(&examples) {
        let (s, t) = (
            answer["start"].as_u64().unwrap(),
            answer["end"].as_u64().unwrap(),
        );
        assert_eq!(
            answer["answer"],
            common::chars(&e.context, s as usize, t as usize)
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_batched_together_get_their_unbatched_answers() {
    let dir = tempfile::tempdir().unwrap();
    let folder = model(&dir);
    let examples = dev_examples(64);
    // fp32: the int8 graph quantizes activations per tensor, over the whole batch, so its
    // answers may shift with the batch-mates (measured in bench/RESULTS.md).
    let alone = TestServer::start(config(
        &folder,
        &["--max-batch-size", "1", "--graph", "fp32"],
    ))
    .await;
    let mut expected = vec![];
    for e in &examples {
        let (status, a) = alone
            .post_json(
                "/answer",
                &json!({"question": e.question, "context": &*e.context}),
            )
            .await;
        assert_eq!(status, 200);
        expected.push(a);
    }
    alone.stop().await.unwrap();

    let flags = [
        "--max-batch-delay-ms",
        "50",
        "--max-batch-size",
        "64",
        "--graph",
        "fp32",
    ];
    let batched = TestServer::start(config(&folder, &flags)).await;
    let client = batched.client.clone();
    let url = batched.url("/answer");
    let requests = examples.iter().map(|e| {
        let body = json!({"question": e.question, "context": &*e.context});
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            response.json::<Value>().await.unwrap()
        })
    });
    let handles: Vec<_> = requests.collect();
    for (handle, want) in handles.into_iter().zip(&expected) {
        let got = handle.await.unwrap();
        assert_eq!(
            (&got["answer"], &got["start"], &got["end"]),
            (&want["answer"], &want["start"], &want["end"])
        );
        let (a, b) = (
            got["score"].as_f64().unwrap(),
            want["score"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    let (_, text) = batched.get_text("/metrics").await;
    let batches = metric(&text, "bertqa_batch_size_count").unwrap();
    assert!(
        batches < 64.0,
        "64 requests ran in {batches} batches: nothing was batched"
    );
    batched.stop().await.unwrap();
}

/// The answers of `server` to `bodies`, all sent at once.
async fn answers_at_once(server: &TestServer, bodies: &[Value]) -> Vec<Value> {
    let handles: Vec<_> = bodies
        .iter()
        .map(|body| {
            let (client, url, body) = (server.client.clone(), server.url("/answer"), body.clone());
            tokio::spawn(async move {
                let response = client.post(url).json(&body).send().await.unwrap();
                response.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut answers = vec![];
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

/// Each worker runs the same graph: neither the session nor the batch-mates may change an
/// answer's span (fp32, as in the batching test above).
fn assert_same_spans(got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len());
    for (got, want) in got.iter().zip(want) {
        assert_eq!(
            (&got["answer"], &got["start"], &got["end"]),
            (&want["answer"], &want["start"], &want["end"])
        );
    }
}

/// Batches run by `worker` (an index, or `lone`) according to `/metrics` text.
fn worker_batches(text: &str, worker: &str) -> f64 {
    let series = format!("bertqa_worker_batches_total{{worker=\"{worker}\"}}");
    metric(text, &series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_workers_share_the_batches_and_give_one_workers_answers() {
    let dir = tempfile::tempdir().unwrap();
    let folder = model(&dir);
    let examples = dev_examples(48);
    let bodies: Vec<Value> = examples
        .iter()
        .map(|e| json!({"question": e.question, "context": &*e.context}))
        .collect();
    let one = TestServer::start(config(
        &folder,
        &["--max-batch-size", "1", "--graph", "fp32"],
    ))
    .await;
    let mut expected = vec![];
    for body in &bodies {
        let (status, answer) = one.post_json("/answer", body).await;
        assert_eq!(status, 200, "{answer}");
        expected.push(answer);
    }
    one.stop().await.unwrap();

    // Small batches, so that the 48 questions make many batches for 3 workers to share.
    let flags = ["--workers", "3", "--lone-batch-threads", "0"];
    let small = ["--max-batch-size", "4", "--graph", "fp32"];
    let three = TestServer::start(config(&folder, &[&flags[..], &small].concat())).await;
    assert_same_spans(&answers_at_once(&three, &bodies).await, &expected);
    let (_, info) = three.get_text("/info").await;
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        (info["workers"].as_u64(), info["threads"].as_u64()),
        (Some(3), Some(1))
    );
    assert!(info["lone_batch_threads"].is_null(), "{info}");
    let (_, text) = three.get_text("/metrics").await;
    let busy = (0..3)
        .filter(|w| worker_batches(&text, &w.to_string()) > 0.0)
        .count();
    assert!(busy >= 2, "only {busy} of 3 workers ran a batch:\n{text}");
    three.stop().await.unwrap();

    // A lone-batch session beside two workers: questions sent one at a time are each all the
    // work there is and run on it; a burst runs on the workers too.
    let flags = ["--workers", "2", "--lone-batch-threads", "2"];
    let lone = TestServer::start(config(&folder, &[&flags[..], &small].concat())).await;
    let mut one_by_one = vec![];
    for body in &bodies[..8] {
        one_by_one.push(lone.post_json("/answer", body).await.1);
    }
    assert_same_spans(&one_by_one, &expected[..8]);
    let (_, text) = lone.get_text("/metrics").await;
    let batches = metric(&text, "bertqa_batch_size_count").unwrap();
    assert_eq!(worker_batches(&text, "lone"), batches, "{text}");
    assert_same_spans(&answers_at_once(&lone, &bodies).await, &expected);
    let (_, text) = lone.get_text("/metrics").await;
    let on_workers = worker_batches(&text, "0") + worker_batches(&text, "1");
    assert!(
        on_workers > 0.0,
        "a burst of 48 ran on the lone session only:\n{text}"
    );
    let (_, info) = lone.get_text("/info").await;
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["lone_batch_threads"].as_u64(), Some(2), "{info}");
    lone.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_docs_and_metrics_report_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(&model(&dir), &[])).await;
    assert_eq!(server.get_text("/health").await.0, 200);
    let probe = |path: &str| {
        let url = server.url(path);
        let timeout = Duration::from_secs(3);
        std::thread::spawn(move || bertqa::serve::probe::probe(&url, timeout))
    };
    let healthy = probe("/health").join().unwrap();
    assert!(healthy.unwrap().contains("200"));
    assert!(probe("/nope").join().unwrap().unwrap_err().contains("404"));
    assert_eq!(server.get_text("/ready").await.0, 200);
    let (status, docs) = server.get_text("/docs/").await;
    assert_eq!(status, 200);
    assert!(docs.contains("swagger"), "the Swagger UI is served");
    let (status, spec) = server.get_text("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec.contains("/evaluate"));
    let body = json!({"question": "Who?", "context": "Ann met Bob."});
    server.post_json("/answer", &body).await;
    server.post_json("/answer", &json!({"question": ""})).await;
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    let series = [
        r#"bertqa_requests_total{route="/answer",status="200"}"#,
        r#"bertqa_requests_total{route="/answer",status="422"}"#,
        r#"bertqa_errors_total{error_type="validation",route="/answer"}"#,
        r#"bertqa_request_duration_seconds_count{route="/answer"}"#,
        "bertqa_tokenization_duration_seconds_count",
        "bertqa_queue_duration_seconds_count",
        "bertqa_inference_duration_seconds_count",
        "bertqa_batch_size_count",
        "bertqa_batch_padded_tokens_count",
    ];
    for series in series {
        assert!(
            metric(&text, series).unwrap_or(0.0) >= 1.0,
            "{series} in\n{text}"
        );
    }
    assert!(text.contains("bertqa_info{"));
    server.stop().await.unwrap();
}

#[test]
fn the_committed_openapi_yaml_is_the_generated_spec() {
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml"))
            .unwrap();
    let generated = bertqa::serve::openapi::yaml().unwrap();
    assert!(
        committed == generated,
        "openapi.yaml is stale: run `cargo run -- openapi > openapi.yaml`"
    );
}
