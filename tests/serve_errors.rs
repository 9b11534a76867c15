//! Every kind of bad input to the HTTP service gets its status code and `error_type` in the
//! JSON error shape, and the server stays healthy afterwards.

mod common;

use std::io::Write;

use common::server::{config, TestServer};
use serde_json::{json, Value};

const JSON: Option<&str> = Some("application/json");

/// One bad request and the status and `error_type` the server must answer it with.
struct Case {
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    error_type: &'static str,
}

impl Case {
    /// A JSON body to `/answer` that parses but breaks a rule: 422 `validation`.
    fn invalid(name: &'static str, body: Vec<u8>) -> Self {
        Self {
            name,
            path: "/answer",
            content_type: JSON,
            body,
            status: 422,
            error_type: "validation",
        }
    }

    /// The same request answered with another status and `error_type`.
    fn answered(self, status: u16, error_type: &'static str) -> Self {
        Self {
            status,
            error_type,
            ..self
        }
    }

    /// The same request sent to `path`.
    fn to(self, path: &'static str) -> Self {
        Self { path, ..self }
    }

    /// The same request with another `content-type` header (or none).
    fn typed(self, content_type: Option<&'static str>) -> Self {
        Self {
            content_type,
            ..self
        }
    }
}

/// A question the tiny model answers.
fn ok() -> Value {
    json!({"question": "Who?", "context": "Ann met Bob."})
}

/// [`ok`] with `key` set to `value`.
fn with(key: &str, value: Value) -> Vec<u8> {
    let mut question = ok();
    question[key] = value;
    question.to_string().into_bytes()
}

/// A question over these `contexts`.
fn passages(contexts: Value) -> Vec<u8> {
    json!({"question": "Who?", "contexts": contexts})
        .to_string()
        .into_bytes()
}

/// A one-question SQuAD v1.1 file.
const SQUAD: &[u8] = br#"{"version":"1.1","data":[{"title":"t","paragraphs":[{"context":"Ann met Bob.","qas":[{"id":"1","question":"Who?","answers":[{"text":"Bob","answer_start":8}]}]}]}]}"#;

/// Bodies that parse but break one of `/answer`'s rules (the server runs with at most 1,000
/// context characters, 3 passages and 4 questions a request).
fn rule_breaking_questions() -> Vec<Case> {
    let bad_item = json!([ok(), {"question": "", "context": "x"}]);
    vec![
        Case::invalid("empty question", with("question", json!(""))),
        Case::invalid("blank question", with("question", json!(" \t\n"))),
        Case::invalid("empty context", with("context", json!(""))),
        Case::invalid("blank context", with("context", json!("\u{3000} "))),
        Case::invalid(
            "context over the limit",
            with("context", json!("a ".repeat(501))),
        ),
        Case::invalid("question of the wrong type", with("question", json!(7))),
        Case::invalid("missing context", br#"{"question":"Who?"}"#.to_vec()),
        Case::invalid(
            "context and contexts",
            with("contexts", json!(["Ann met Bob."])),
        ),
        Case::invalid("null context", with("context", Value::Null)),
        Case::invalid("no contexts", passages(json!([]))),
        Case::invalid(
            "contexts over --max-contexts",
            passages(json!(["a", "b", "c", "d"])),
        ),
        Case::invalid(
            "a blank passage",
            passages(json!(["Ann met Bob.", {"id": "2", "text": " "}])),
        ),
        Case::invalid(
            "a passage over the limit",
            passages(json!(["Ann met Bob.", "a ".repeat(501)])),
        ),
        Case::invalid(
            "a passage object without text",
            passages(json!([{"id": "1"}])),
        ),
        Case::invalid("min_score above 1", with("min_score", json!(1.5))),
        // The next double after 1 (schemathesis found it passing as an f32's 1.0).
        Case::invalid(
            "min_score one ulp above 1",
            with("min_score", json!(1.000_000_000_000_000_2)),
        ),
        Case::invalid(
            "a null answer from a v1.1 model",
            with("handle_impossible_answer", json!(true)),
        ),
        Case::invalid("unknown field", with("topk", json!(2))),
        Case::invalid("top_k 0", with("top_k", json!(0))),
        Case::invalid("top_k huge", with("top_k", json!(1_000_000))),
        Case::invalid("top_k negative", with("top_k", json!(-1))),
        Case::invalid("max_answer_len 0", with("max_answer_len", json!(0))),
        Case::invalid("empty list", b"[]".to_vec()),
        Case::invalid(
            "list over the limit",
            Value::Array(vec![ok(); 5]).to_string().into_bytes(),
        ),
        Case::invalid("list with a bad item", bad_item.to_string().into_bytes()),
        Case::invalid("a string body", br#""hello""#.to_vec()),
    ]
}

/// Bodies to `/answer` that are not JSON, not typed as JSON, or too large (64 KiB).
fn unreadable_questions() -> Vec<Case> {
    let ok = ok().to_string().into_bytes();
    let invalid_utf8 = b"{\"question\":\"\xff\xfe\",\"context\":\"x\"}".to_vec();
    vec![
        Case::invalid("truncated JSON", br#"{"question":"#.to_vec()).answered(400, "invalid_json"),
        Case::invalid("invalid UTF-8", invalid_utf8).answered(400, "invalid_json"),
        Case::invalid("text/plain", ok.clone())
            .typed(Some("text/plain"))
            .answered(415, "unsupported_media_type"),
        Case::invalid("no content type", ok.clone())
            .typed(None)
            .answered(415, "unsupported_media_type"),
        Case::invalid("oversized body", with("context", json!("x".repeat(70_000))))
            .answered(413, "payload_too_large"),
        Case::invalid("unknown route", ok)
            .to("/nope")
            .answered(404, "not_found"),
    ]
}

/// Bad SQuAD files to `/evaluate` (limited to 1 MB).
fn bad_evaluations() -> Vec<Case> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(SQUAD).unwrap();
    let gz = gz.finish().unwrap();
    let evaluate = |name, body: &[u8]| Case::invalid(name, body.to_vec()).to("/evaluate");
    vec![
        evaluate("evaluate: not SQuAD", br#"{"a":1}"#),
        evaluate("evaluate: no questions", br#"{"version":"1.1","data":[]}"#),
        evaluate("evaluate: malformed JSON", br#"{"data": ["#).answered(400, "invalid_json"),
        evaluate("evaluate: truncated gzip", &gz[..gz.len() / 2])
            .typed(Some("application/gzip"))
            .answered(400, "bad_request"),
        evaluate("evaluate: text/plain", SQUAD)
            .typed(Some("text/plain"))
            .answered(415, "unsupported_media_type"),
        evaluate("evaluate: oversized", &[b' '; 1_100_000]).answered(413, "payload_too_large"),
        evaluate("evaluate: form without a file", b"--X--\r\n")
            .typed(Some("multipart/form-data; boundary=X"))
            .answered(400, "bad_request"),
    ]
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
        "--max-contexts",
        "3",
    ];
    let server = TestServer::start(config(&common::tiny_model_folder(dir.path()), &flags)).await;
    let groups = [
        rule_breaking_questions(),
        unreadable_questions(),
        bad_evaluations(),
    ];
    let cases: Vec<Case> = groups.into_iter().flatten().collect();
    assert!(cases.len() >= 20);
    for case in cases {
        let (name, body) = (case.name, case.body);
        let (got, value) = server.post_raw(case.path, case.content_type, body).await;
        assert_eq!(
            (got, value["error_type"].as_str()),
            (case.status, Some(case.error_type)),
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
    let (status, _) = server.post_json("/answer", &ok()).await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
}
