//! Every kind of bad input to the HTTP service gets its status code and `error_type` in the
//! JSON error shape, and the server stays healthy afterwards.

mod common;

use std::io::Write;

use common::server::{config, TestServer};
use serde_json::{json, Value};

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
        "--max-contexts",
        "3",
    ];
    let server = TestServer::start(config(&common::tiny_model_folder(dir.path()), &flags)).await;
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
    let passages = |contexts: Value| {
        json!({"question": "Who?", "contexts": contexts})
            .to_string()
            .into_bytes()
    };
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
            422,
            "validation",
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
            "context and contexts",
            "/answer",
            json_ct,
            with("contexts", json!(["Ann met Bob."])),
            422,
            "validation",
        ),
        (
            "null context",
            "/answer",
            json_ct,
            with("context", Value::Null),
            422,
            "validation",
        ),
        (
            "no contexts",
            "/answer",
            json_ct,
            passages(json!([])),
            422,
            "validation",
        ),
        (
            "contexts over --max-contexts",
            "/answer",
            json_ct,
            passages(json!(["a", "b", "c", "d"])),
            422,
            "validation",
        ),
        (
            "a blank passage",
            "/answer",
            json_ct,
            passages(json!(["Ann met Bob.", {"id": "2", "text": " "}])),
            422,
            "validation",
        ),
        (
            "a passage over the limit",
            "/answer",
            json_ct,
            passages(json!(["Ann met Bob.", "a ".repeat(501)])),
            422,
            "validation",
        ),
        (
            "a passage object without text",
            "/answer",
            json_ct,
            passages(json!([{"id": "1"}])),
            422,
            "validation",
        ),
        (
            "min_score above 1",
            "/answer",
            json_ct,
            with("min_score", json!(1.5)),
            422,
            "validation",
        ),
        (
            // The next double after 1 (schemathesis found it passing as an f32's 1.0).
            "min_score one ulp above 1",
            "/answer",
            json_ct,
            with("min_score", json!(1.000_000_000_000_000_2)),
            422,
            "validation",
        ),
        (
            "a null answer from a v1.1 model",
            "/answer",
            json_ct,
            with("handle_impossible_answer", json!(true)),
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
