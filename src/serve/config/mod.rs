//! `bertqa serve` settings: one struct, every flag also an environment variable (`BERTQA_*`)
//! so that containers and Kubernetes ConfigMaps configure it without a command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::auth::ApiKey;
use super::telemetry::{LogFormat, OtlpEndpoint, OtlpTarget};
use crate::model::manifest::ModelManifest;
use crate::qa::features::WindowConfig;
use crate::runtime::cpu::cores;
use crate::runtime::engine::{DeviceKind, GraphChoice};
use crate::runtime::fused::Kernels;

mod workers;

/// A feature that can be turned on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Turned on.
    On,
    /// Turned off.
    Off,
}

/// Settings of the HTTP service.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Model folder from `bertqa export` (model.onnx / model-int8.onnx, tokenizer.json, bertqa.json).
    #[arg(
        long,
        env = "BERTQA_MODEL_DIR",
        default_value = "models/minilm-l6-squad1"
    )]
    pub model_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "BERTQA_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "BERTQA_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Execution provider for ONNX Runtime.
    #[arg(long, env = "BERTQA_DEVICE", value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Graph to run.
    #[arg(long, env = "BERTQA_GRAPH", value_enum, default_value_t = GraphChoice::Auto)]
    pub graph: GraphChoice,
    /// CPU kernels: `fused-attention` runs each layer's attention as one bertqa kernel, its
    /// GELU inside the quantization after it, each dense layer's end with its layer
    /// normalization as one, and an int8 graph's activation quantization as bertqa's fused
    /// operators (faster; the answers of the graph on 98.5% of dev, the same on every CPU:
    /// bench/RESULTS.md), `fused` only the quantization (ONNX Runtime's logits bit for bit),
    /// `onnx` every operator as the file writes it.
    #[arg(long, env = "BERTQA_KERNELS", value_enum, default_value_t = Kernels::FusedAttention)]
    pub kernels: Kernels,
    /// Inference workers: ONNX Runtime sessions running batches side by side, each with
    /// `--threads` intra-op threads. Several small sessions keep the cores busier under load
    /// than one large one, and the lone-batch session gives a lone question every core
    /// (bench/RESULTS.md, "Inference workers", for the CPUs measured). Default: on CPU one
    /// per core up to 4, on CUDA one.
    #[arg(long, env = "BERTQA_WORKERS")]
    pub workers: Option<usize>,
    /// ONNX Runtime intra-op threads per worker (default: the cores shared out among the
    /// workers; with one worker, all cores).
    #[arg(long, alias = "threads-per-worker", env = "BERTQA_THREADS")]
    pub threads: Option<usize>,
    /// Intra-op threads of the lone-batch session: one more session, which runs a batch by
    /// itself when it is all the work there is (every worker idle, nothing else queued or
    /// arriving), so that a lone client's question gets every core while concurrent load
    /// runs on the workers side by side. Default: all cores when there are several workers
    /// with fewer threads each on CPU, else none; 0 turns it off.
    #[arg(long, env = "BERTQA_LONE_BATCH_THREADS")]
    pub lone_batch_threads: Option<usize>,
    /// Most padded tokens (windows x longest window) in one inference batch.
    #[arg(long, env = "BERTQA_MAX_BATCH_TOKENS", default_value_t = 8192)]
    pub max_batch_tokens: usize,
    /// Most windows in one inference batch (default on CPU: 1 for 1-thread workers, else 4;
    /// on CUDA 32). On CPU a window costs more in a large batch than in a small one (padding,
    /// activations outgrowing the caches), so small batches answer more questions per second
    /// under load; a GPU needs large ones to fill. Measured in bench/RESULTS.md.
    #[arg(long, env = "BERTQA_MAX_BATCH_SIZE")]
    pub max_batch_size: Option<usize>,
    /// How long a lone window may wait for others to share its batch.
    #[arg(long, env = "BERTQA_MAX_BATCH_DELAY_MS", default_value_t = 2)]
    pub max_batch_delay_ms: u64,
    /// Run the largest batch these limits allow once at start-up, so ONNX Runtime's memory
    /// arena reaches its peak before traffic: resident memory stays flat under load, and a
    /// memory limit too small for the batch limits fails at start. `false` starts faster
    /// and grows memory as larger batches arrive.
    #[arg(long, env = "BERTQA_WARM_UP_LARGEST_BATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub warm_up_largest_batch: bool,
    /// Questions handled at once (a batch-form request counts each of its questions, an
    /// evaluation counts one); more get 429 with Retry-After.
    #[arg(
        long,
        alias = "max-concurrent-requests",
        env = "BERTQA_MAX_CONCURRENT_QUESTIONS",
        default_value_t = 512
    )]
    pub max_concurrent_questions: usize,
    /// Threads that parse, tokenize and decode requests (default: one per core).
    #[arg(long, env = "BERTQA_TOKENIZER_WORKERS")]
    pub tokenizer_workers: Option<usize>,
    /// `/answer` windows waiting for inference at most; a request that would exceed it gets
    /// 429. An evaluation's windows do not count: it keeps only a few batches queued itself.
    #[arg(long, env = "BERTQA_MAX_QUEUED_WINDOWS", default_value_t = 4096)]
    pub max_queued_windows: usize,
    /// Questions in one batch-form `/answer` request.
    #[arg(long, env = "BERTQA_MAX_CLIENT_BATCH_SIZE", default_value_t = DEFAULT_MAX_CLIENT_BATCH_SIZE)]
    pub max_client_batch_size: usize,
    /// Passages (`contexts`) one question may bring.
    #[arg(long, env = "BERTQA_MAX_CONTEXTS", default_value_t = DEFAULT_MAX_CONTEXTS)]
    pub max_contexts: usize,
    /// Longest context (each passage) accepted, in characters.
    #[arg(long, env = "BERTQA_MAX_CONTEXT_CHARS", default_value_t = DEFAULT_MAX_CONTEXT_CHARS)]
    pub max_context_chars: usize,
    /// Window length (default: the model folder's bertqa.json).
    #[arg(long, env = "BERTQA_MAX_SEQ_LEN")]
    pub max_seq_len: Option<usize>,
    /// Window overlap (default: the model folder's bertqa.json).
    #[arg(long, env = "BERTQA_DOC_STRIDE")]
    pub doc_stride: Option<usize>,
    /// Longest answer in tokens, unless a request asks for another (default: bertqa.json).
    #[arg(long, env = "BERTQA_MAX_ANSWER_LEN")]
    pub max_answer_len: Option<usize>,
    /// Largest `/answer` body in bytes.
    #[arg(long, env = "BERTQA_PAYLOAD_LIMIT", default_value_t = 2 * 1024 * 1024)]
    pub payload_limit: usize,
    /// Largest `/evaluate` body in bytes (also the most a gzip upload may inflate to, x4).
    #[arg(long, env = "BERTQA_EVALUATE_PAYLOAD_LIMIT", default_value_t = 64 * 1024 * 1024)]
    pub evaluate_payload_limit: usize,
    /// `/health` fails when work has waited this long with no inference batch finishing
    /// (a wedged inference thread), so the orchestrator restarts the server.
    #[arg(long, env = "BERTQA_STALL_TIMEOUT_SECS", default_value_t = 60)]
    pub stall_timeout_secs: u64,
    /// API keys that `/answer` (and `/evaluate`, unless it has its own) accept as
    /// `Authorization: Bearer KEY`; several with commas. Without any, the routes are open.
    #[arg(
        long = "api-key",
        env = "BERTQA_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<ApiKey>,
    /// Keys for `/evaluate` only (then the `--api-key` keys do not open it).
    #[arg(
        long = "evaluate-api-key",
        env = "BERTQA_EVALUATE_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub evaluate_api_keys: Vec<ApiKey>,
    /// Whether `POST /evaluate` and the `/evaluations` jobs are served (off: 404).
    #[arg(long, env = "BERTQA_EVALUATE", value_enum, default_value_t = Switch::On)]
    pub evaluate: Switch,
    /// Evaluation jobs that may wait behind the running one (each holds its parsed file);
    /// more are refused with 429.
    #[arg(long, env = "BERTQA_MAX_QUEUED_EVALUATIONS", default_value_t = 4)]
    pub max_queued_evaluations: usize,
    /// Finished evaluation jobs kept for `GET /evaluations/{id}`, oldest forgotten first.
    #[arg(long, env = "BERTQA_EVALUATIONS_KEPT", default_value_t = 16)]
    pub evaluations_kept: usize,
    /// Seconds a finished evaluation job is kept.
    #[arg(long, env = "BERTQA_EVALUATION_RETENTION_SECS", default_value_t = 3600)]
    pub evaluation_retention_secs: u64,
    /// `/metrics` needs an `--api-key` too (by default it is open, like the probes).
    #[arg(long, env = "BERTQA_METRICS_AUTH")]
    pub metrics_auth: bool,
    /// Origins browsers may call the API from (CORS), several with commas; `*` for any.
    #[arg(
        long = "cors-allow-origin",
        env = "BERTQA_CORS_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_allow_origins: Vec<String>,
    /// Log line format.
    #[arg(long, env = "BERTQA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Send each request's span to an OpenTelemetry collector over OTLP/HTTP (protobuf), e.g.
    /// `http://otel-collector:4318` (`/v1/traces` is added); a request with a W3C
    /// `traceparent` joins the caller's trace. Off when unset.
    #[arg(long, env = "BERTQA_OTLP_ENDPOINT", value_parser = clap::value_parser!(OtlpEndpoint))]
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// The `service.name` the exported spans are filed under.
    #[arg(long, env = "BERTQA_OTLP_SERVICE_NAME", default_value = "bertqa")]
    pub otlp_service_name: String,
}

/// Default `--max-context-chars` (also the `maxLength` in `openapi.yaml`).
pub const DEFAULT_MAX_CONTEXT_CHARS: usize = 100_000;

/// Default `--max-contexts`: a retriever's usual top-k, with room.
pub const DEFAULT_MAX_CONTEXTS: usize = 32;
/// Default `--max-client-batch-size` (also the `maxItems` in `openapi.yaml`).
pub const DEFAULT_MAX_CLIENT_BATCH_SIZE: usize = 64;

/// Longest window any BERT checkpoint supports (position embeddings).
const MAX_POSITIONS: usize = 512;

impl ServeConfig {
    /// Where spans go, when `--otlp-endpoint` is set.
    pub fn otlp_target(&self) -> Option<OtlpTarget> {
        self.otlp_endpoint.clone().map(|endpoint| OtlpTarget {
            endpoint,
            service_name: self.otlp_service_name.clone(),
        })
    }

    /// The socket address to bind.
    pub fn address(&self) -> Result<SocketAddr, String> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        format!("{host}:{}", self.port)
            .parse()
            .or_else(|_| format!("[{host}]:{}", self.port).parse())
            .map_err(|_| format!("--host {} is not an IP address", self.host))
    }

    /// Tokenizer pool threads: the flag, else one per core.
    pub fn tokenizer_workers(&self) -> usize {
        self.tokenizer_workers.unwrap_or_else(cores)
    }

    /// The window geometry: the model's, with this config's overrides.
    pub fn window(&self, manifest: &ModelManifest) -> WindowConfig {
        WindowConfig {
            max_seq_len: self.max_seq_len.unwrap_or(manifest.window.max_seq_len),
            doc_stride: self.doc_stride.unwrap_or(manifest.window.doc_stride),
            ..manifest.window
        }
    }

    /// Default answer length: this config's, else the model's.
    pub fn answer_len(&self, manifest: &ModelManifest) -> usize {
        self.max_answer_len.unwrap_or(manifest.max_answer_len)
    }

    /// Rejects settings that cannot work together, before anything starts.
    pub fn validate(&self, manifest: &ModelManifest) -> Result<(), String> {
        let window = self.window(manifest);
        let positive = [
            ("--max-batch-size", self.max_batch_size()),
            ("--max-concurrent-questions", self.max_concurrent_questions),
            ("--tokenizer-workers", self.tokenizer_workers()),
            ("--max-client-batch-size", self.max_client_batch_size),
            ("--max-context-chars", self.max_context_chars),
            ("--max-contexts", self.max_contexts),
            ("--payload-limit", self.payload_limit),
            ("--evaluate-payload-limit", self.evaluate_payload_limit),
            ("--max-queued-evaluations", self.max_queued_evaluations),
            ("--max-answer-len", self.answer_len(manifest)),
            ("--threads", self.threads.unwrap_or(1)),
            ("--workers", self.workers()),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{flag} must be at least 1"));
        }
        if window.max_seq_len > MAX_POSITIONS {
            return Err(format!(
                "--max-seq-len {} exceeds BERT's {MAX_POSITIONS} positions",
                window.max_seq_len
            ));
        }
        window.validate(3).map_err(|e| e.to_string())?;
        if self.max_batch_tokens < window.max_seq_len {
            return Err(format!(
                "--max-batch-tokens {} cannot hold one full window of {} tokens",
                self.max_batch_tokens, window.max_seq_len
            ));
        }
        if self.max_queued_windows < self.max_batch_size() {
            return Err(format!(
                "--max-queued-windows {} is smaller than one batch (--max-batch-size {})",
                self.max_queued_windows,
                self.max_batch_size()
            ));
        }
        self.validate_access()?;
        self.graph.int8(manifest, self.device)?;
        self.address().map(|_| ())
    }

    /// Access settings that contradict each other.
    fn validate_access(&self) -> Result<(), String> {
        if self.metrics_auth && self.api_keys.is_empty() {
            return Err("--metrics-auth needs at least one --api-key".into());
        }
        if self.evaluate == Switch::Off && !self.evaluate_api_keys.is_empty() {
            return Err("--evaluate-api-key is set but --evaluate is off".into());
        }
        for origin in &self.cors_allow_origins {
            if origin != "*" && axum::http::HeaderValue::from_str(origin).is_err() {
                return Err(format!(
                    "--cors-allow-origin {origin:?} is not a valid origin"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeConfig,
    }

    fn manifest() -> ModelManifest {
        ModelManifest {
            window: WindowConfig::default(),
            max_answer_len: 30,
            squad_version: crate::qa::squad::SquadVersion::V1,
            lowercase: true,
            graphs: vec!["model.onnx".into()],
            training_metrics: None,
            score_calibration: None,
            null_threshold: None,
        }
    }

    /// The settings these flags (after `bertqa serve`) give.
    pub(super) fn parse(args: &[&str]) -> ServeConfig {
        let mut all = vec!["bertqa"];
        all.extend_from_slice(args);
        Cli::parse_from(all).serve
    }

    #[test]
    fn defaults_are_valid_and_follow_the_model() {
        let config = parse(&[]);
        assert_eq!(config.validate(&manifest()), Ok(()));
        assert_eq!(config.window(&manifest()), WindowConfig::default());
        assert_eq!(config.graph.int8(&manifest(), config.device), Ok(false));
        assert_eq!(config.address().unwrap().port(), 8080);
    }

    #[test]
    fn impossible_combinations_are_refused_with_the_flag_named() {
        let cases: &[(&[&str], &str)] = &[
            (&["--max-batch-tokens", "100"], "--max-batch-tokens"),
            (&["--max-batch-size", "0"], "--max-batch-size"),
            (&["--max-seq-len", "600"], "--max-seq-len"),
            (&["--doc-stride", "400"], "doc_stride"),
            (&["--graph", "int8"], "--graph int8"),
            (&["--host", "not a host"], "--host"),
            (
                &["--max-batch-size", "4", "--max-queued-windows", "3"],
                "--max-queued-windows",
            ),
            (&["--threads", "0"], "--threads"),
            (&["--workers", "0"], "--workers"),
        ];
        for (args, needle) in cases {
            let err = parse(args).validate(&manifest()).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn auto_graph_is_int8_on_cpu_and_fp32_on_cuda_when_both_exist() {
        let both = ModelManifest {
            graphs: vec!["model.onnx".into(), "model-int8.onnx".into()],
            ..manifest()
        };
        let int8_only = ModelManifest {
            graphs: vec!["model-int8.onnx".into()],
            ..manifest()
        };
        let int8 = |args: &[&str], folder: &ModelManifest| {
            let config = parse(args);
            config.graph.int8(folder, config.device)
        };
        assert_eq!(int8(&[], &both), Ok(true));
        assert_eq!(int8(&["--device", "cuda"], &both), Ok(false));
        assert_eq!(int8(&["--device", "cuda"], &int8_only), Ok(true));
        // Asking for a graph the folder lacks is refused at start-up, naming the flag.
        let err = int8(&["--device", "cuda", "--graph", "fp32"], &int8_only).unwrap_err();
        assert!(err.contains("--graph fp32"), "{err}");
    }

    #[test]
    fn ipv6_hosts_bind() {
        let config = parse(&["--host", "::1", "--port", "0"]);
        assert!(config.address().unwrap().is_ipv6());
    }
}
