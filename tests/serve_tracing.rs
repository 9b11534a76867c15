//! Span export as an operator sees it: `bertqa serve --otlp-endpoint` sends each request's span
//! (with its fields, under the caller's W3C trace) to an OTLP/HTTP collector — here one run by
//! the test, decoding the real protobuf — sends the last spans when it is stopped, and counts
//! the spans a missing collector could not take. The server runs as its own process, because
//! span export hangs off the process's one global subscriber.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::mpsc;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN_ID: &str = "b7ad6b7169203331";
const QUESTION: &str = r#"{"question": "Who met Bob?", "context": "Ann met Bob in Paris."}"#;

/// A `bertqa serve` process and the address it printed.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    /// Starts the server on a free port and waits for its "listening" log line.
    fn start(model: &std::path::Path, flags: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bertqa"))
            .args([
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--threads",
                "1",
            ])
            .arg("--model-dir")
            .arg(model)
            .args(flags)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("bertqa starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let (_, rest) = line.split_once("listening address=")?;
                Some(rest.split_whitespace().next()?.to_string())
            })
            .expect("the server logs its address");
        // Keep reading, so a full pipe never blocks the server's log.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            base: format!("http://{address}"),
        }
    }

    /// SIGTERM, as Kubernetes stops a pod, then waits for the exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A collector on a free port: every export it receives, decoded.
async fn collector() -> (String, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    let (sender, received) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sender = sender.clone();
            async move {
                let export = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let _ = sender.send(export);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(value: Option<&AnyValue>) -> Option<&str> {
    match value {
        Some(AnyValue::StringValue(text)) => Some(text),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_the_collector_in_the_callers_trace_and_none_are_lost_at_shutdown() {
    let (endpoint, mut exports) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model_folder(dir.path());
    // The default batch delay (5 s) is kept: the spans must come from the flush at shutdown.
    let server = ServerProcess::start(
        &model,
        &[
            "--otlp-endpoint",
            &endpoint,
            "--otlp-service-name",
            "qa-under-test",
        ],
        &[],
    );
    let response = reqwest::Client::new()
        .post(format!("{}/answer", server.base))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .body(QUESTION)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(server.terminate().success());

    let mut resources = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    while let Ok(export) = exports.try_recv() {
        for resource_spans in export.resource_spans {
            resources.extend(resource_spans.resource.map(|r| r.attributes));
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }
    assert!(resources
        .iter()
        .all(|r| text(attribute(r, "service.name")) == Some("qa-under-test")));
    let request = spans
        .iter()
        .find(|s| s.name == "request" && text(attribute(&s.attributes, "route")) == Some("/answer"))
        .unwrap_or_else(|| panic!("no /answer request span among {spans:?}"));
    assert_eq!(hex(&request.trace_id), TRACE_ID);
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(
        text(attribute(&request.attributes, "request_id")),
        Some(request_id.as_str())
    );
    assert_eq!(
        attribute(&request.attributes, "status"),
        Some(&AnyValue::IntValue(200))
    );
    assert_eq!(
        attribute(&request.attributes, "questions"),
        Some(&AnyValue::IntValue(1))
    );
    assert!(matches!(
        attribute(&request.attributes, "inference_ms"),
        Some(AnyValue::DoubleValue(ms)) if *ms > 0.0
    ));
    // The handler's span hangs under the request's.
    assert!(spans
        .iter()
        .any(|s| s.name == "answer" && s.parent_span_id == request.span_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_a_missing_collector_cannot_take_are_counted_as_failed() {
    // A port that was free a moment ago: nothing listens there.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model_folder(dir.path());
    let server = ServerProcess::start(
        &model,
        &["--otlp-endpoint", &format!("http://{nowhere}")],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let client = reqwest::Client::new();
    let answered = client
        .post(format!("{}/answer", server.base))
        .header("content-type", "application/json")
        .body(QUESTION)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answered.status(),
        200,
        "a missing collector costs no answer"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let failed =
            common::server::metric(&metrics, r#"bertqa_trace_spans_total{outcome="failed"}"#);
        if failed.is_some_and(|n| n >= 1.0) {
            assert_eq!(
                common::server::metric(&metrics, r#"bertqa_trace_spans_total{outcome="exported"}"#),
                Some(0.0)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed export counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn an_https_collector_is_refused_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bertqa"))
        .args([
            "serve",
            "--otlp-endpoint",
            "https://collector:4318",
            "--model-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    common::failed_with(&output, "no TLS");
}
