//! Where the service's logs and spans go: stderr always (text or JSON lines), and an
//! OpenTelemetry collector over OTLP/HTTP when `--otlp-endpoint` names one, so that a request's
//! span (its id, route, status and where its time went) shows up in the trace of the caller
//! that sent it (W3C `traceparent`), beside the retriever and the rest of a pipeline.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use axum::http::HeaderMap;
use clap::ValueEnum;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use prometheus::{IntCounterVec, Opts};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The path OTLP/HTTP collectors take spans on, added to a base endpoint (as the
/// `OTEL_EXPORTER_OTLP_ENDPOINT` convention does).
const TRACES_PATH: &str = "/v1/traces";

/// A collector's OTLP/HTTP address, checked when the flag is read: plain `http://` only,
/// because this build carries no TLS stack (collectors run beside the service: a sidecar or a
/// cluster service, which then forwards over TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint(String);

impl OtlpEndpoint {
    /// The URL spans are posted to: the endpoint as given when it already ends in
    /// `/v1/traces`, else the endpoint with that path added.
    pub fn traces_url(&self) -> String {
        let base = self.0.trim_end_matches('/');
        if base.ends_with(TRACES_PATH) {
            base.to_string()
        } else {
            format!("{base}{TRACES_PATH}")
        }
    }
}

impl FromStr for OtlpEndpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.starts_with("https://") {
            return Err(
                "https is not supported (this build has no TLS): send to a collector \
                        over http, e.g. http://otel-collector:4318"
                    .into(),
            );
        }
        let host = text
            .strip_prefix("http://")
            .ok_or("the OTLP endpoint must be an http:// URL, e.g. http://otel-collector:4318")?;
        if host.is_empty() || host.starts_with('/') {
            return Err("the OTLP endpoint has no host".into());
        }
        Ok(Self(text.to_string()))
    }
}

/// Where spans are exported and the `service.name` they are filed under.
#[derive(Debug, Clone)]
pub struct OtlpTarget {
    /// The collector.
    pub endpoint: OtlpEndpoint,
    /// The resource's `service.name`.
    pub service_name: String,
}

/// Why spans cannot be exported as asked.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter for {url}: {source}")]
pub struct TelemetryError {
    url: String,
    source: opentelemetry_otlp::ExporterBuildError,
}

/// Spans handed to the collector, by outcome (`exported`, `failed`): a process-wide count,
/// because the exporter is process-wide (it hangs off the global subscriber); every server's
/// registry shows it, with the registry's `bertqa_` prefix. Both outcomes start at 0, so
/// alerts on `failed` have a series before the first failure.
pub static EXPORTED_SPANS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "trace_spans_total",
            "Spans sent to the OTLP collector, by outcome (exported, failed)",
        ),
        &["outcome"],
    )
    .unwrap_or_else(|error| unreachable!("a fixed, valid metric definition: {error}"));
    for outcome in ["exported", "failed"] {
        counter.with_label_values(&[outcome]);
    }
    counter
});

/// The installed logging (and exporter, when one is set up). Dropping it sends the spans
/// still queued, so the last requests before a shutdown are not lost.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sets up logging in `format` (`RUST_LOG` filters, default `info`) on stderr, like every
    /// diagnostic of the command line, so that a failure to start reads the same in a terminal,
    /// a test and a container log; and span export to `otlp` when given. Only `bertqa` spans
    /// are exported: the exporter's own HTTP client must not trace itself.
    pub fn init(format: LogFormat, otlp: Option<&OtlpTarget>) -> Result<Self, TelemetryError> {
        let provider = otlp.map(tracer_provider).transpose()?;
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let text = (format == LogFormat::Text).then(|| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
        });
        let json = (format == LogFormat::Json).then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
        });
        let spans = provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("bertqa"))
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                    meta.target().starts_with("bertqa")
                }))
        });
        // A second call (tests, a library user's own subscriber) keeps the first subscriber.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(text)
            .with(json)
            .with(spans)
            .try_init();
        Ok(Self { provider })
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(error = %error, "spans still queued could not be sent");
            }
        }
    }
}

/// Sets up logging without span export (the batch commands).
pub fn init_logging(format: LogFormat) {
    // Without an exporter there is nothing to fail and nothing to flush.
    let _ = Telemetry::init(format, None);
}

/// Makes `span` a child of the caller's span when the request carries a W3C `traceparent`.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    // Without an exporter the span has no OpenTelemetry side, and there is nothing to join.
    let _ = span.set_parent(parent);
}

fn tracer_provider(target: &OtlpTarget) -> Result<SdkTracerProvider, TelemetryError> {
    let url = target.endpoint.traces_url();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|source| TelemetryError { url, source })?;
    let resource = Resource::builder()
        .with_service_name(target.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(CountedExporter { inner: exporter })
        .with_resource(resource)
        .build())
}

/// The OTLP exporter, with its outcomes counted in [`EXPORTED_SPANS`] and failures logged: a
/// collector that went away must show on the dashboards, not only in missing traces.
#[derive(Debug)]
struct CountedExporter {
    inner: opentelemetry_otlp::SpanExporter,
}

impl SpanExporter for CountedExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let outcome = match &result {
            Ok(()) => "exported",
            Err(error) => {
                tracing::warn!(error = %error, spans, "spans could not be sent to the collector");
                "failed"
            }
        };
        EXPORTED_SPANS.with_label_values(&[outcome]).inc_by(spans);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_traces_path_once_and_only_http_is_taken() {
        let url = |text: &str| text.parse::<OtlpEndpoint>().map(|e| e.traces_url());
        assert_eq!(
            url("http://collector:4318"),
            Ok("http://collector:4318/v1/traces".into())
        );
        assert_eq!(
            url("http://collector:4318/"),
            Ok("http://collector:4318/v1/traces".into())
        );
        assert_eq!(
            url("http://collector:4318/v1/traces"),
            Ok("http://collector:4318/v1/traces".into())
        );
        for bad in [
            "https://collector",
            "collector:4318",
            "http://",
            "http:///v1",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }
}
