//! The HTTP service end to end on a tiny random model exported at test time: the contract of
//! every endpoint, a table of bad inputs, batching correctness, overload, disconnects,
//! graceful shutdown, evaluation parity with `bertqa predict` + `score`, metrics and OpenAPI.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bertqa::engine::{DeviceKind, Engine, EngineConfig};
use bertqa::features::Featurizer;
use bertqa::predict::{predict_examples, prediction_files, PredictConfig};
use bertqa::squad::{load_squad, metrics, Example, SquadFile};
use common::server::{config, metric, TestServer};
use serde_json::{json, Value};

fn model(dir: &tempfile::TempDir) -> PathBuf {
    common::tiny_model_folder(dir.path())
}

fn dev() -> SquadFile {
    load_squad(&common::squad_dir().join("dev-v1.1.json.gz")).unwrap()
}

fn dev_examples(n: usize) -> Vec<Example> {
    dev().examples().into_iter().take(n).collect()
}

/// Characters `start..end` of `text`.
fn chars(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
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
        chars(&e.context, start as usize, end as usize)
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
        assert_eq!(answer["answer"], chars(&e.context, s as usize, t as usize));
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_status_and_error_type() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--max-context-chars",
        "1000",
        "--payload-limit",
        "65536",
        "--max-client-batch-size",
        "4",
        "--evaluate-payload-limit",
        "1000000",
    ];
    let server = TestServer::start(config(&model(&dir), &flags)).await;
    let ok = json!({"question": "Who?", "context": "Ann met Bob."});
    let with = |key: &str, value: Value| {
        let mut v = ok.clone();
        v[key] = value;
        v.to_string().into_bytes()
    };
    let json_ct = Some("application/json");
    let squad = br#"{"version":"1.1","data":[{"title":"t","paragraphs":[{"context":"Ann met Bob.","qas":[{"id":"1","question":"Who?","answers":[{"text":"Bob","answer_start":8}]}]}]}]}"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(squad).unwrap();
    let gz = gz.finish().unwrap();
    let many = |n: usize| Value::Array(vec![ok.clone(); n]).to_string().into_bytes();
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "empty question",
            "/answer",
            json_ct,
            with("question", json!("")),
            422,
            "validation",
        ),
        (
            "blank question",
            "/answer",
            json_ct,
            with("question", json!(" \t\n")),
            422,
            "validation",
        ),
        (
            "empty context",
            "/answer",
            json_ct,
            with("context", json!("")),
            422,
            "validation",
        ),
        (
            "blank context",
            "/answer",
            json_ct,
            with("context", json!("\u{3000} ")),
            422,
            "validation",
        ),
        (
            "context over the limit",
            "/answer",
            json_ct,
            with("context", json!("a ".repeat(501))),
            413,
            "payload_too_large",
        ),
        (
            "question of the wrong type",
            "/answer",
            json_ct,
            with("question", json!(7)),
            422,
            "validation",
        ),
        (
            "missing context",
            "/answer",
            json_ct,
            br#"{"question":"Who?"}"#.to_vec(),
            422,
            "validation",
        ),
        (
            "unknown field",
            "/answer",
            json_ct,
            with("topk", json!(2)),
            422,
            "validation",
        ),
        (
            "truncated JSON",
            "/answer",
            json_ct,
            br#"{"question":"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "invalid UTF-8",
            "/answer",
            json_ct,
            b"{\"question\":\"\xff\xfe\",\"context\":\"x\"}".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "top_k 0",
            "/answer",
            json_ct,
            with("top_k", json!(0)),
            422,
            "validation",
        ),
        (
            "top_k huge",
            "/answer",
            json_ct,
            with("top_k", json!(1_000_000)),
            422,
            "validation",
        ),
        (
            "top_k negative",
            "/answer",
            json_ct,
            with("top_k", json!(-1)),
            422,
            "validation",
        ),
        (
            "max_answer_len 0",
            "/answer",
            json_ct,
            with("max_answer_len", json!(0)),
            422,
            "validation",
        ),
        (
            "empty list",
            "/answer",
            json_ct,
            b"[]".to_vec(),
            422,
            "validation",
        ),
        (
            "list over the limit",
            "/answer",
            json_ct,
            many(5),
            422,
            "validation",
        ),
        (
            "list with a bad item",
            "/answer",
            json_ct,
            Value::Array(vec![ok.clone(), json!({"question": "", "context": "x"})])
                .to_string()
                .into_bytes(),
            422,
            "validation",
        ),
        (
            "a string body",
            "/answer",
            json_ct,
            br#""hello""#.to_vec(),
            422,
            "validation",
        ),
        (
            "text/plain",
            "/answer",
            Some("text/plain"),
            ok.to_string().into_bytes(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            "/answer",
            None,
            ok.to_string().into_bytes(),
            415,
            "unsupported_media_type",
        ),
        (
            "oversized body",
            "/answer",
            json_ct,
            with("context", json!("x".repeat(70_000))),
            413,
            "payload_too_large",
        ),
        (
            "evaluate: not SQuAD",
            "/evaluate",
            json_ct,
            br#"{"a":1}"#.to_vec(),
            422,
            "validation",
        ),
        (
            "evaluate: no questions",
            "/evaluate",
            json_ct,
            br#"{"version":"1.1","data":[]}"#.to_vec(),
            422,
            "validation",
        ),
        (
            "evaluate: malformed JSON",
            "/evaluate",
            json_ct,
            br#"{"data": ["#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "evaluate: truncated gzip",
            "/evaluate",
            Some("application/gzip"),
            gz[..gz.len() / 2].to_vec(),
            400,
            "bad_request",
        ),
        (
            "evaluate: text/plain",
            "/evaluate",
            Some("text/plain"),
            squad.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "evaluate: oversized",
            "/evaluate",
            json_ct,
            vec![b' '; 1_100_000],
            413,
            "payload_too_large",
        ),
        (
            "evaluate: form without a file",
            "/evaluate",
            Some("multipart/form-data; boundary=X"),
            b"--X--\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "unknown route",
            "/nope",
            json_ct,
            ok.to_string().into_bytes(),
            404,
            "not_found",
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, path, content_type, body, status, kind) in cases {
        let (got, value) = server.post_raw(path, content_type, body).await;
        assert_eq!(
            (got, value["error_type"].as_str()),
            (status, Some(kind)),
            "{name}: {value}"
        );
        assert!(!value["error"].as_str().unwrap_or("").is_empty(), "{name}");
    }
    let response = server
        .client
        .get(server.url("/answer"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let value: Value = response.json().await.unwrap();
    assert_eq!(value["error_type"], "method_not_allowed");
    // The server is still fine.
    let (status, _) = server.post_json("/answer", &ok).await;
    assert_eq!(status, 200);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_gets_429_with_retry_after_and_the_server_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--max-concurrent-requests",
        "2",
        "--max-batch-delay-ms",
        "300",
    ];
    let server = TestServer::start(config(&model(&dir), &flags)).await;
    let body = json!({"question": "Who?", "context": "Ann met Bob."});
    let sends = (0..8).map(|_| {
        let request = server.client.post(server.url("/answer")).json(&body);
        tokio::spawn(async move { request.send().await.unwrap() })
    });
    let handles: Vec<_> = sends.collect();
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
    let (status, _) = server.post_json("/answer", &body).await;
    assert_eq!(status, 200, "the server recovers");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_clients_windows_are_dropped_before_inference() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--max-batch-delay-ms", "1500"];
    let server = TestServer::start(config(&model(&dir), &flags)).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let body = json!({"question": "Who?", "context": "Ann met Bob."});
    let result = impatient
        .post(server.url("/answer"))
        .json(&body)
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
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--max-batch-delay-ms", "700"];
    let mut server = TestServer::start(config(&model(&dir), &flags)).await;
    let request = server
        .client
        .post(server.url("/answer"))
        .json(&json!({"question": "Who?", "context": "Ann met Bob."}));
    let in_flight = tokio::spawn(async move { request.send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
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

/// What `bertqa predict` + `bertqa score` give: the offline path, without the server.
fn offline_scores(folder: &Path, dataset: &SquadFile) -> (Value, HashMap<String, String>) {
    let config = EngineConfig {
        threads: Some(1),
        device: DeviceKind::Cpu,
        int8: false,
    };
    let mut engine = Engine::load(folder, &config).unwrap();
    let manifest = engine.manifest().clone();
    let featurizer =
        Featurizer::from_file(&folder.join("tokenizer.json"), manifest.window).unwrap();
    let examples = dataset.examples();
    let predictions = predict_examples(
        &examples,
        &featurizer,
        &PredictConfig::default(),
        |b| engine.run(b),
        |_, _| {},
    )
    .unwrap();
    let (answers, _) = prediction_files(&examples, &predictions, None);
    let scores = metrics::score(dataset, &answers, None, 1.0).unwrap();
    (Value::Object(scores), answers)
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
    let first = {
        let request = server
            .client
            .post(server.url("/evaluate"))
            .header("content-type", "application/json")
            .body(text.clone());
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, second) = server
        .post_raw("/evaluate", Some("application/json"), text)
        .await;
    assert_eq!(
        (status, second["error_type"].as_str()),
        (429, Some("evaluation_running"))
    );
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
    assert!(text.contains("bertqa_model_info{"));
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
