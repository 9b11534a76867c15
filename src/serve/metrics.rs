//! Prometheus metrics of one server. A registry per server (not a global recorder), so tests
//! can run several servers in one process and read each one's numbers.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the service exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status code.
    pub requests: IntCounterVec,
    /// Failed requests by route and `error_type`.
    pub errors: IntCounterVec,
    /// Whole-request latency by route.
    pub request_seconds: HistogramVec,
    /// Time to turn a request's questions into windows.
    pub tokenize_seconds: Histogram,
    /// Time a window waits between arrival and its batch starting.
    pub queue_seconds: Histogram,
    /// Time ONNX Runtime takes per batch.
    pub inference_seconds: Histogram,
    /// Windows per batch.
    pub batch_windows: Histogram,
    /// Padded tokens per batch.
    pub batch_tokens: Histogram,
    /// Batches run by each inference worker (how evenly `--workers` share the load).
    pub worker_batches: IntCounterVec,
    /// Windows waiting for inference now.
    pub queue_depth: IntGauge,
    /// Windows dropped before inference because their client went away.
    pub dropped_windows: IntCounter,
    /// Evaluation runs by outcome (`ok`, `error`).
    pub evaluations: IntCounterVec,
    /// Evaluation jobs kept by the server, by state (queued, running, done, failed,
    /// cancelled): how full the job queue is and what finished ones still hold memory.
    pub evaluation_jobs: IntGaugeVec,
    /// Exact Match of the last finished evaluation, in percent.
    pub last_exact_match: Gauge,
    /// F1 of the last finished evaluation, in percent.
    pub last_f1: Gauge,
    /// Always 1; its labels are the facts of `GET /info` (model, graph, CPU, version).
    pub info: IntGaugeVec,
}

/// Labels of `bertqa_info`, in the order [`crate::serve::info::ServiceInfo::labels`] fills.
pub const INFO_LABELS: [&str; 12] = [
    "model",
    "squad_version",
    "graph",
    "weights",
    "precision",
    "device",
    "workers",
    "threads",
    "max_seq_len",
    "cpu_features",
    "version",
    "commit",
];

fn buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    prometheus::exponential_buckets(start, factor, count).unwrap_or_default()
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("bertqa".into()), None)?;
        let seconds = buckets(0.0005, 2.0, 18);
        let histogram = |name: &str, help: &str, b: Vec<f64>| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(b))
        };
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new("requests_total", "HTTP requests by route and status"),
                &["route", "status"],
            )?,
            errors: IntCounterVec::new(
                Opts::new("errors_total", "Failed requests by route and error_type"),
                &["route", "error_type"],
            )?,
            request_seconds: HistogramVec::new(
                HistogramOpts::new("request_duration_seconds", "Request latency by route")
                    .buckets(seconds.clone()),
                &["route"],
            )?,
            tokenize_seconds: histogram(
                "tokenization_duration_seconds",
                "Time to build a request's windows",
                seconds.clone(),
            )?,
            queue_seconds: histogram(
                "queue_duration_seconds",
                "Time a window waits for its batch",
                seconds.clone(),
            )?,
            inference_seconds: histogram(
                "inference_duration_seconds",
                "ONNX Runtime time per batch",
                seconds,
            )?,
            batch_windows: histogram(
                "batch_size",
                "Windows per inference batch",
                buckets(1.0, 2.0, 10),
            )?,
            batch_tokens: histogram(
                "batch_padded_tokens",
                "Padded tokens per inference batch",
                buckets(64.0, 2.0, 12),
            )?,
            worker_batches: IntCounterVec::new(
                Opts::new(
                    "worker_batches_total",
                    "Inference batches run by each worker",
                ),
                &["worker"],
            )?,
            queue_depth: IntGauge::new("queue_depth", "Windows waiting for inference")?,
            dropped_windows: IntCounter::new(
                "dropped_windows_total",
                "Windows dropped before inference because the client went away",
            )?,
            evaluations: IntCounterVec::new(
                Opts::new("evaluations_total", "Evaluation runs by outcome"),
                &["outcome"],
            )?,
            evaluation_jobs: IntGaugeVec::new(
                Opts::new("evaluation_jobs", "Evaluation jobs kept, by state"),
                &["state"],
            )?,
            last_exact_match: Gauge::new(
                "last_evaluation_exact_match",
                "Exact Match (percent) of the last evaluation",
            )?,
            last_f1: Gauge::new("last_evaluation_f1", "F1 (percent) of the last evaluation")?,
            info: IntGaugeVec::new(
                Opts::new("info", "What is served and where (value is always 1)"),
                &INFO_LABELS,
            )?,
            registry,
        };
        metrics.register_all()?;
        Ok(metrics)
    }

    fn register_all(&self) -> Result<(), prometheus::Error> {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.requests.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.request_seconds.clone()),
            Box::new(self.tokenize_seconds.clone()),
            Box::new(self.queue_seconds.clone()),
            Box::new(self.inference_seconds.clone()),
            Box::new(self.batch_windows.clone()),
            Box::new(self.batch_tokens.clone()),
            Box::new(self.worker_batches.clone()),
            Box::new(self.queue_depth.clone()),
            Box::new(self.dropped_windows.clone()),
            Box::new(self.evaluations.clone()),
            Box::new(self.evaluation_jobs.clone()),
            Box::new(self.last_exact_match.clone()),
            Box::new(self.last_f1.clone()),
            Box::new(self.info.clone()),
            Box::new(super::telemetry::EXPORTED_SPANS.clone()),
        ];
        collectors
            .into_iter()
            .try_for_each(|c| self.registry.register(c))
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_in_the_exposition() {
        let metrics = Metrics::new().unwrap();
        metrics
            .requests
            .with_label_values(&["/answer", "200"])
            .inc();
        metrics.queue_depth.set(3);
        let text = metrics.render().unwrap();
        assert!(text.contains(r#"bertqa_requests_total{route="/answer",status="200"} 1"#));
        assert!(text.contains("bertqa_queue_depth 3"));
    }
}
