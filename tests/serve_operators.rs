//! What operators rely on: health that tells the truth about the inference thread (faults are
//! injected with the `test-hooks` feature), overload refused with 429, a disconnected client's windows dropped and
//! in-flight answers finished at shutdown (the thread held by a fault meanwhile), API keys,
//! CORS, request ids and timing headers, and `GET /info` with its metric.

mod common;

use std::time::{Duration, Instant};

use bertqa::serve::batcher::Fault;
use common::server::{config, metric, TestServer};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};

const QUESTION: &str = r#"{"question": "Who met Bob?", "context": "Ann met Bob in Paris."}"#;

async fn get_json(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server.client.get(server.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `path` until it answers `status` (the health checks look at the thread's state,
/// which changes on the inference thread's own time).
async fn until_status(server: &TestServer, path: &str, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (now, body) = get_json(server, path).await;
        if now == status {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} stayed {now}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ask(server: &TestServer) -> reqwest::RequestBuilder {
    server
        .client
        .post(server.url("/answer"))
        .header(CONTENT_TYPE, "application/json")
        .body(QUESTION)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_clients_windows_are_dropped_before_inference() {
    // The inference thread is held (wedged) while the client gives up, so its window is still
    // queued when the thread comes back: it must be dropped, not run.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(&common::tiny_model_folder(dir.path()), &[])).await;
    server
        .state
        .batcher
        .inject(Fault::Wedge(Duration::from_millis(1500)));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let result = impatient
        .post(server.url("/answer"))
        .header(CONTENT_TYPE, "application/json")
        .body(QUESTION)
        .send()
        .await;
    assert!(result.is_err(), "the client gave up");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_, text) = server.get_text("/metrics").await;
    assert_eq!(metric(&text, "bertqa_dropped_windows_total"), Some(1.0));
    assert_eq!(metric(&text, "bertqa_batch_size_count"), Some(0.0));
    assert_eq!(metric(&text, "bertqa_queue_depth"), Some(0.0));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    // The inference thread is held for 700 ms, so the answer is still in flight when the
    // shutdown begins.
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let mut server = TestServer::start(config(&folder, &[])).await;
    server
        .state
        .batcher
        .inject(Fault::Wedge(Duration::from_millis(700)));
    let request = ask(&server);
    let in_flight = tokio::spawn(async move { request.send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!in_flight.is_finished(), "the answer is still in flight");
    server.begin_stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = reqwest::Client::new()
        .get(server.url("/health"))
        .send()
        .await;
    assert!(late.is_err(), "no new connections while draining");
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status().as_u16(), 200);
    server.join().await.expect("clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_gets_429_with_retry_after_and_the_server_recovers() {
    // Two questions may be in progress; the inference thread is held, so the first two stay
    // in progress while six more come.
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let server = TestServer::start(config(&folder, &["--max-concurrent-questions", "2"])).await;
    server
        .state
        .batcher
        .inject(Fault::Wedge(Duration::from_millis(1000)));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let request = ask(&server);
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for handle in handles {
        let response = handle.await.unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert_eq!(response.headers()["retry-after"], "1");
                let value: Value = response.json().await.unwrap();
                assert_eq!(value["error_type"], "overloaded");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");
    let (status, _) = get_json(&server, "/health").await;
    assert_eq!(status, 200);
    let recovered = ask(&server).send().await.unwrap();
    assert_eq!(recovered.status().as_u16(), 200, "the server recovers");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_inference_thread_fails_health_and_ends_the_server_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(config(&common::tiny_model_folder(dir.path()), &[])).await;
    until_status(&server, "/health", 200).await;
    until_status(&server, "/ready", 200).await;
    server.state.batcher.inject(Fault::Panic);
    // The server shuts itself down (so fast that a probe may find the port closed instead of
    // a 503: both fail it) and reports the failure, so `bertqa serve` exits non-zero.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while !server.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server kept running without its inference thread"
    );
    let verdict = server.state.health.verdict();
    assert!(
        verdict.problem().unwrap().contains("stopped"),
        "{verdict:?}"
    );
    server.begin_stop();
    assert!(server.join().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_or_failing_engine_fails_health_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let server = TestServer::start(config(&folder, &["--stall-timeout-secs", "1"])).await;
    assert_eq!(ask(&server).send().await.unwrap().status(), 200);

    // Wedged: an answer waits, no batch finishes for longer than the stall timeout.
    server
        .state
        .batcher
        .inject(Fault::Wedge(Duration::from_secs(3)));
    let waiting = tokio::spawn(ask(&server).send());
    let body = until_status(&server, "/health", 503).await;
    assert!(
        body["error"].as_str().unwrap().contains("no batch"),
        "{body}"
    );
    assert_eq!(get_json(&server, "/ready").await.0, 503);
    assert_eq!(waiting.await.unwrap().unwrap().status(), 200);
    until_status(&server, "/health", 200).await;

    // Failing: three batches in a row fail, then one succeeds again.
    server.state.batcher.inject(Fault::FailBatches(3));
    for _ in 0..3 {
        let response = ask(&server).send().await.unwrap();
        assert_eq!(response.status(), 500);
    }
    let body = until_status(&server, "/health", 503).await;
    assert!(body["error"].as_str().unwrap().contains("failed"), "{body}");
    assert_eq!(ask(&server).send().await.unwrap().status(), 200);
    until_status(&server, "/health", 200).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_answer_evaluate_and_metrics_but_not_the_probes() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--api-key",
        "k1,k2",
        "--evaluate-api-key",
        "e1",
        "--metrics-auth",
    ];
    let server = TestServer::start(config(&common::tiny_model_folder(dir.path()), &flags)).await;
    let refused = ask(&server).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_type"], "unauthorized", "{body}");
    let wrong = ask(&server).header(AUTHORIZATION, "Bearer k3").send().await;
    assert_eq!(wrong.unwrap().status(), 401);
    for key in ["k1", "k2"] {
        let ok = ask(&server).header(AUTHORIZATION, format!("Bearer {key}"));
        assert_eq!(ok.send().await.unwrap().status(), 200, "{key}");
    }
    let evaluate = |key: &str| {
        server
            .client
            .post(server.url("/evaluate"))
            .header(AUTHORIZATION, format!("Bearer {key}"))
            .json(&json!({"data": []}))
            .send()
    };
    assert_eq!(evaluate("k1").await.unwrap().status(), 401);
    // Past the key check: the (empty) file itself is what gets refused.
    assert_eq!(evaluate("e1").await.unwrap().status(), 422);
    assert_eq!(get_json(&server, "/health").await.0, 200);
    assert_eq!(get_json(&server, "/ready").await.0, 200);
    assert_eq!(get_json(&server, "/info").await.0, 200);
    let metrics = server.client.get(server.url("/metrics"));
    assert_eq!(metrics.send().await.unwrap().status(), 401);
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .header(AUTHORIZATION, "Bearer k1");
    let text = metrics.send().await.unwrap().text().await.unwrap();
    let refusals = metric(
        &text,
        r#"bertqa_errors_total{error_type="unauthorized",route="/answer"}"#,
    );
    assert_eq!(refusals, Some(2.0), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_can_be_turned_off_and_browsers_get_cors_headers() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--evaluate",
        "off",
        "--cors-allow-origin",
        "https://app.example",
    ];
    let server = TestServer::start(config(&common::tiny_model_folder(dir.path()), &flags)).await;
    let (status, body) = server.post_json("/evaluate", &json!({"data": []})).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("--evaluate off"));
    let preflight = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/answer"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = &preflight.headers()["access-control-allow-origin"];
    assert_eq!(allowed, "https://app.example");
    let other = ask(&server)
        .header("origin", "https://evil.example")
        .send()
        .await;
    let other = other.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_its_request_id_and_answers_say_where_time_went() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(&common::tiny_model_folder(dir.path()), &[])).await;
    let answered = ask(&server).header("x-request-id", "trace-7").send().await;
    let answered = answered.unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.headers()["x-request-id"], "trace-7");
    for timing in ["x-tokenization-time", "x-queue-time", "x-inference-time"] {
        let ms: f64 = answered.headers()[timing]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..60_000.0).contains(&ms), "{timing}: {ms}");
    }
    let inference: f64 = answered.headers()["x-inference-time"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(inference > 0.0, "a real batch ran");

    let refused = server
        .client
        .post(server.url("/answer"))
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"question": "", "context": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32, "a generated id: {id}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["request_id"], id.as_str(), "{body}");
    let (_, missing) = get_json(&server, "/nowhere").await;
    assert!(missing["request_id"].is_string(), "{missing}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_describes_the_served_model_and_matches_its_metric() {
    let dir = tempfile::tempdir().unwrap();
    let folder = common::tiny_model_folder(dir.path());
    let server = TestServer::start(config(&folder, &["--graph", "fp32"])).await;
    let (status, info) = get_json(&server, "/info").await;
    assert_eq!(status, 200);
    let architecture = &info["architecture"];
    assert_eq!(architecture["layers"], 2, "{info}");
    assert_eq!(architecture["hidden_size"], 64);
    assert_eq!(architecture["vocab_size"], 30522);
    assert_eq!(architecture["max_positions"], 512);
    assert!(architecture["parameters"].as_u64().unwrap() > 30522 * 64);
    assert_eq!(info["graph"]["file"], "model.onnx");
    assert_eq!(info["graph"]["precision"], "fp32");
    assert_eq!(info["squad_version"], "1.1");
    assert_eq!(info["window"]["max_seq_len"], 384);
    assert_eq!(info["device"], "cpu");
    assert!(!info["commit"].as_str().unwrap().is_empty());
    let (_, text) = server.get_text("/metrics").await;
    let line = text
        .lines()
        .find(|l| l.starts_with("bertqa_info{"))
        .unwrap_or_else(|| panic!("no bertqa_info in {text}"));
    assert!(line.contains(r#"precision="fp32""#), "{line}");
    let commit = format!(r#"commit="{}""#, info["commit"].as_str().unwrap());
    assert!(line.contains(&commit), "{line}");
    server.stop().await.unwrap();
}
