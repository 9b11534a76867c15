//! `bertqa serve`: the HTTP service.
//!
//! ```text
//! trace ─► auth ─► handler ─► parse + tokenize (CPU pool) ─► BatcherHandle::infer ─┐
//!                                                                                  ▼
//!   inference thread: WindowQueue::decide ─► idle worker: Engine::run ─► oneshot per question
//!                                                                                  │
//! trace ◄─ JSON ◄─ handler ◄─ decode (CPU pool) ◄───────────────────────────────────┘
//! ```
//! Rooms: [`config`] (flags), [`queue`] (the pure batching rule), [`batcher`] (the thread
//! that drives it), [`workers`] (the sessions it hands batches to), [`health`] (its vital signs), [`pool`] (threads for requests' CPU work),
//! [`router`] (the route table), [`answer`] and [`evaluation`] (the routes), [`page`] (the page at `/`), [`ops`] and [`info`] (health, readiness, metrics,
//! facts), [`auth`] (API keys), [`trace`] (request ids, timings, access log, request metrics),
//! [`error`] (one error type → status codes), [`body`] (request bodies), [`metrics`] and
//! [`openapi`].

pub mod answer;
pub mod auth;
pub mod batcher;
pub mod body;
pub mod config;
pub mod error;
pub mod evaluation;
pub mod health;
pub mod info;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod page;
pub mod pool;
pub mod probe;
pub mod queue;
pub mod router;
pub mod telemetry;
pub mod trace;
pub mod workers;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::answer::RequestLimits;
use self::auth::AccessPolicy;
use self::batcher::BatcherHandle;
use self::config::ServeConfig;
use self::error::ApiError;
use self::evaluation::jobs::{EvaluationJobs, JobLimits};
use self::health::{InferenceHealth, Verdict};
use self::info::ServiceInfo;
use self::metrics::Metrics;
use self::pool::CpuPool;
use self::queue::BatchBudget;
use self::trace::RequestRecord;
use crate::model::manifest::ModelManifest;
use crate::qa::features::{Featurizer, Window, WindowConfig};
use crate::qa::reader::Scoring;
use crate::runtime::engine::EngineConfig;

/// What every handler shares.
pub struct AppState {
    /// The settings the server started with.
    pub config: ServeConfig,
    /// Window geometry in force (the model's, with overrides).
    pub window: WindowConfig,
    /// Default answer length in tokens.
    pub answer_len: usize,
    /// How answers of different passages compare (calibrated when the model folder is).
    pub scoring: Scoring,
    /// The trained null threshold of a SQuAD v2.0 model; `None` for v1.1 models, which have
    /// no null answer (so `is_some` also says whether answers may be empty).
    pub null_threshold: Option<f32>,
    /// Question + context → windows, exactly as in training.
    pub featurizer: Arc<Featurizer>,
    /// The inference thread.
    pub batcher: BatcherHandle,
    /// The inference thread's vital signs, for `/health` and `/ready`.
    pub health: Arc<InferenceHealth>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Which keys open which routes.
    pub access: AccessPolicy,
    /// What `GET /info` says.
    pub info: ServiceInfo,
    /// Threads for requests' CPU work (parsing, tokenizing, decoding).
    pub pool: CpuPool,
    /// Questions in progress, at most `--max-concurrent-questions`.
    questions: Arc<Semaphore>,
    /// One evaluation at a time (`/evaluate` or a job).
    pub evaluation: Arc<Semaphore>,
    /// Evaluation jobs, waiting, running and finished.
    pub jobs: Arc<EvaluationJobs>,
    /// Set once shutdown begins: readiness fails and new work is refused.
    draining: AtomicBool,
}

impl AppState {
    /// Admits `questions` questions, or refuses them all (429 when that many more would
    /// exceed `--max-concurrent-questions`, 503 while draining). An evaluation counts as one.
    pub fn admit(&self, questions: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        let limit = self.config.max_concurrent_questions;
        let count = u32::try_from(questions).unwrap_or(u32::MAX);
        self.questions
            .clone()
            .try_acquire_many_owned(count)
            .map_err(|_| {
                ApiError::Overloaded(format!(
                    "{questions} more questions would exceed the {limit} in progress allowed"
                ))
            })
    }

    /// Windows of one question over each of its passages, built on the CPU pool in one
    /// task; what it took goes in `record`.
    pub async fn tokenize(
        &self,
        question: String,
        passages: Vec<Arc<str>>,
        record: &RequestRecord,
    ) -> Result<Vec<Vec<Window>>, ApiError> {
        let featurizer = self.featurizer.clone();
        let started = Instant::now();
        let windows = self
            .pool
            .run(move || {
                passages
                    .iter()
                    .map(|passage| featurizer.windows(&question, passage))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?
            .map_err(|e| ApiError::Validation(e.to_string()))?;
        let took = started.elapsed();
        self.metrics.tokenize_seconds.observe(took.as_secs_f64());
        record.tokenized(windows.iter().map(Vec::len).sum(), took);
        Ok(windows)
    }

    /// The bounds `/answer` checks a request against.
    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            max_context_chars: self.config.max_context_chars,
            max_contexts: self.config.max_contexts,
            max_answer_len: self.window.max_seq_len,
            has_null: self.null_threshold.is_some(),
        }
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Runs long CPU work (an evaluation's parse and prediction loop, one at a time) on tokio's
/// blocking pool so it never stalls the async workers that accept and answer connections.
pub async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A loaded service: the router to serve and the inference thread behind it.
pub struct Service {
    /// Shared state (also reachable from the router).
    pub state: Arc<AppState>,
    router: Router,
    inference: std::thread::JoinHandle<()>,
}

impl Service {
    /// Loads the model folder, checks the settings against it, starts the inference thread.
    pub fn load(config: ServeConfig) -> anyhow::Result<Self> {
        let manifest = ModelManifest::load(&config.model_dir)
            .map_err(|m| anyhow::anyhow!("model folder {}: {m}", config.model_dir.display()))?;
        config
            .validate(&manifest)
            .map_err(|m| anyhow::anyhow!("invalid settings: {m}"))?;
        let window = config.window(&manifest);
        let budget = config.batch_budget();
        let engines = start_engines(&config, &manifest, &budget, window.max_seq_len)?;
        let engine = engines
            .workers
            .first()
            .ok_or_else(|| anyhow::anyhow!("invalid settings: --workers must be at least 1"))?;
        let featurizer = Featurizer::from_file(&config.model_dir.join("tokenizer.json"), window)?;
        let metrics = Metrics::new()?;
        let info = ServiceInfo::new(&config, &manifest, engine, window);
        metrics.info.with_label_values(&info.labels()).set(1);
        tracing::info!(
            graph = %engine.graph().display(),
            weights = info.graph.weights,
            layers = info.architecture.layers,
            device = ?config.device,
            workers = config.workers(),
            threads_per_worker = ?config.threads_per_worker(),
            lone_batch_threads = ?config.lone_batch_threads(),
            "model loaded"
        );
        let pad_id = featurizer.pad_id();
        let health = InferenceHealth::new(Duration::from_secs(config.stall_timeout_secs));
        let (batcher, inference) = batcher::spawn(
            engines,
            pad_id,
            budget,
            config.max_queued_windows,
            metrics.clone(),
            health.clone(),
        )?;
        let state = Arc::new(AppState {
            window,
            answer_len: config.answer_len(&manifest),
            scoring: manifest
                .score_calibration
                .as_ref()
                .map_or(Scoring::SpanLogits, |c| Scoring::Calibrated(c.parameters)),
            null_threshold: manifest.trained_null_threshold(),
            featurizer: Arc::new(featurizer),
            batcher,
            health,
            info,
            access: AccessPolicy::new(
                &config.api_keys,
                &config.evaluate_api_keys,
                config.metrics_auth,
            ),
            pool: CpuPool::start(config.tokenizer_workers())?,
            questions: Arc::new(Semaphore::new(config.max_concurrent_questions)),
            evaluation: Arc::new(Semaphore::new(1)),
            metrics: metrics.clone(),
            jobs: Arc::new(EvaluationJobs::new(
                JobLimits {
                    max_queued: config.max_queued_evaluations,
                    kept: config.evaluations_kept,
                    kept_for: Duration::from_secs(config.evaluation_retention_secs),
                },
                metrics.clone(),
            )),
            draining: AtomicBool::new(false),
            config,
        });
        Ok(Self {
            router: router::router(state.clone()),
            state,
            inference,
        })
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish, and stops the inference thread once its queue is empty. If the
    /// inference thread ends on its own (a panic), it shuts down the same way and returns an
    /// error, so that the process exits non-zero and its container is restarted.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            state,
            router,
            inference,
        } = self;
        tokio::spawn(evaluation::jobs::work(
            state.jobs.clone(),
            Arc::downgrade(&state),
        ));
        let draining = state.clone();
        let signal = async move {
            let died = tokio::select! {
                () = shutdown => false,
                () = draining.health.ended() => true,
            };
            draining.draining.store(true, Ordering::SeqCst);
            draining.jobs.close();
            if died {
                tracing::error!("the inference thread stopped: shutting down");
            } else {
                tracing::info!("shutting down: finishing in-flight requests");
            }
        };
        axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .await?;
        let died = state.health.verdict() == Verdict::Stopped;
        state.batcher.stop();
        tokio::task::spawn_blocking(move || inference.join())
            .await
            .map_err(std::io::Error::other)?
            .map_err(|_| std::io::Error::other("the inference thread panicked"))?;
        if died {
            return Err(std::io::Error::other("the inference thread stopped"));
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The workers' sessions (and the lone-batch session) for the model folder as `config` asks,
/// each with memory for the largest batch reserved when `--warm-up-largest-batch` is on.
fn start_engines(
    config: &ServeConfig,
    manifest: &ModelManifest,
    budget: &BatchBudget,
    max_seq_len: usize,
) -> anyhow::Result<workers::Engines> {
    let engine_config = EngineConfig::for_folder(
        manifest,
        config.graph,
        config.device,
        config.threads_per_worker(),
        config.kernels,
    )
    .map_err(|m| anyhow::anyhow!("invalid settings: {m}"))?;
    let reserve = config
        .warm_up_largest_batch
        .then(|| budget.largest_shapes(max_seq_len));
    Ok(workers::load_engines(
        &config.model_dir,
        &engine_config,
        config.workers(),
        config.lone_batch_threads(),
        reserve.as_deref(),
    )?)
}

/// Resolves on SIGTERM or Ctrl-C: what Kubernetes and a terminal send to stop us.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
