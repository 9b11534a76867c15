//! What every request leaves behind: an id (the client's `x-request-id`, or a new one) on the
//! response, in its error body and in its logs; timing headers saying where its time went;
//! one access-log line; and its count, latency and error type in the metrics. One middleware,
//! outside everything else, so refusals, axum's rejections and panics are all covered.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::{field, Instrument};

use super::batcher::Inferred;
use super::error::{ErrorBody, ErrorReport};
use super::AppState;

/// The request id header, read from clients and always written back.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Milliseconds spent tokenizing the request's questions (summed over questions).
pub const TOKENIZATION_TIME: HeaderName = HeaderName::from_static("x-tokenization-time");
/// Milliseconds the request's windows waited for a batch (its slowest question).
pub const QUEUE_TIME: HeaderName = HeaderName::from_static("x-queue-time");
/// Milliseconds of inference in the batches that held its windows (its slowest question).
pub const INFERENCE_TIME: HeaderName = HeaderName::from_static("x-inference-time");

/// Longest client-chosen request id kept; longer ones (or ones with odd bytes) are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// What a request's handlers record about its work, shared with the middleware through the
/// request's extensions (handlers take it with `Extension<Arc<RequestRecord>>`).
#[derive(Debug, Default)]
pub struct RequestRecord {
    questions: AtomicU64,
    windows: AtomicU64,
    tokenization_us: AtomicU64,
    queue_us: AtomicU64,
    inference_us: AtomicU64,
}

impl RequestRecord {
    /// One question was tokenized into `windows` windows in `took`.
    pub fn tokenized(&self, windows: usize, took: Duration) {
        self.questions.fetch_add(1, Ordering::Relaxed);
        self.windows.fetch_add(windows as u64, Ordering::Relaxed);
        self.tokenization_us
            .fetch_add(micros(took), Ordering::Relaxed);
    }

    /// One question's windows came back from the inference thread.
    pub fn inferred(&self, inferred: &Inferred) {
        self.queue_us
            .fetch_max(micros(inferred.queue_time), Ordering::Relaxed);
        self.inference_us
            .fetch_max(micros(inferred.inference_time), Ordering::Relaxed);
    }

    fn millis(counter: &AtomicU64) -> f64 {
        counter.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

fn signed(counter: &AtomicU64) -> i64 {
    i64::try_from(counter.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
}

fn micros(duration: Duration) -> u64 {
    duration.as_micros().min(u128::from(u64::MAX)) as u64
}

/// The client's request id when it is a sane header value, else a new random one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(new_request_id, str::to_string)
}

/// 128 random bits as 32 hex digits (std's hasher keys are random per process; a counter
/// keeps ids of one process distinct).
fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut halves = [0u64; 2];
    for (salt, half) in halves.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(count);
        hasher.write_usize(salt);
        *half = hasher.finish();
    }
    format!("{:016x}{:016x}", halves[0], halves[1])
}

/// The middleware: ids, timing headers, error bodies with the id, metrics, the access log.
pub async fn track(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request_id(request.headers());
    let record = Arc::new(RequestRecord::default());
    request.extensions_mut().insert(record.clone());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        request_id = %id,
        status = field::Empty,
        questions = field::Empty,
        windows = field::Empty,
        tokenization_ms = field::Empty,
        queue_ms = field::Empty,
        inference_ms = field::Empty,
        duration_ms = field::Empty,
    );
    super::telemetry::continue_trace(&span, request.headers());
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let took = started.elapsed();
    let status = response.status();
    if let Some(report) = response.extensions_mut().remove::<ErrorReport>() {
        state
            .metrics
            .errors
            .with_label_values(&[route.as_str(), report.error_type])
            .inc();
        with_request_id(&mut response, report, &id);
    }
    state
        .metrics
        .requests
        .with_label_values(&[route.as_str(), status.as_str()])
        .inc();
    state
        .metrics
        .request_seconds
        .with_label_values(&[route.as_str()])
        .observe(took.as_secs_f64());
    write_headers(response.headers_mut(), &id, &record);
    // Counts are recorded as i64: OpenTelemetry has no unsigned attribute, and a u64 would be
    // exported as text.
    span.record("status", i64::from(status.as_u16()));
    span.record("questions", signed(&record.questions));
    span.record("windows", signed(&record.windows));
    span.record(
        "tokenization_ms",
        RequestRecord::millis(&record.tokenization_us),
    );
    span.record("queue_ms", RequestRecord::millis(&record.queue_us));
    span.record("inference_ms", RequestRecord::millis(&record.inference_us));
    span.record("duration_ms", took.as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::info!("request"));
    response
}

/// Rewrites an error body with the request's id in it.
fn with_request_id(response: &mut Response, report: ErrorReport, id: &str) {
    let body = ErrorBody {
        error: report.message,
        error_type: report.error_type.to_string(),
        request_id: Some(id.to_string()),
    };
    if let Ok(bytes) = serde_json::to_vec(&body) {
        response
            .headers_mut()
            .remove(axum::http::header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(bytes);
    }
}

fn write_headers(headers: &mut HeaderMap, id: &str, record: &RequestRecord) {
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(REQUEST_ID, value);
    }
    if record.questions.load(Ordering::Relaxed) == 0 {
        return;
    }
    let timings = [
        (TOKENIZATION_TIME, &record.tokenization_us),
        (QUEUE_TIME, &record.queue_us),
        (INFERENCE_TIME, &record.inference_us),
    ];
    for (name, counter) in timings {
        let text = format!("{:.3}", RequestRecord::millis(counter));
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_when_sane_and_replaced_otherwise() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("trace-42"));
        assert_eq!(request_id(&headers), "trace-42");
        headers.insert(REQUEST_ID, HeaderValue::from_str(&"x".repeat(200)).unwrap());
        let replaced = request_id(&headers);
        assert_eq!(replaced.len(), 32);
        assert!(replaced.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(new_request_id(), new_request_id());
    }
}
