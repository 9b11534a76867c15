//! `bertqa serve`: the HTTP service.
//!
//! ```text
//! handler ─► validate ─► tokenize (blocking pool) ─► BatcherHandle::infer ─┐
//!                                                                          ▼
//!            inference thread: WindowQueue::decide ─► Engine::run ─► oneshot per question
//!                                                                          │
//! handler ◄─ JSON ◄─ decode (blocking pool) ◄──────────────────────────────┘
//! ```
//! Rooms: [`config`] (flags), [`queue`] (the pure batching rule), [`batcher`] (the thread
//! that drives it), [`answer`] and [`evaluate`] (the routes), [`ops`] (health, readiness,
//! metrics), [`error`] (one error type → status codes), [`body`] (request bodies),
//! [`metrics`] and [`openapi`].

pub mod answer;
pub mod batcher;
pub mod body;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod probe;
pub mod queue;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::batcher::BatcherHandle;
use self::config::ServeConfig;
use self::error::ApiError;
use self::metrics::Metrics;
use self::queue::BatchBudget;
use crate::qa::features::{Featurizer, Window, WindowConfig};
use crate::runtime::engine::{Engine, EngineConfig};

/// What every handler shares.
pub struct AppState {
    /// The settings the server started with.
    pub config: ServeConfig,
    /// Window geometry in force (the model's, with overrides).
    pub window: WindowConfig,
    /// Default answer length in tokens.
    pub answer_len: usize,
    /// True for SQuAD v2.0 models (answers may be empty).
    pub with_null: bool,
    /// Question + context → windows, exactly as in training.
    pub featurizer: Arc<Featurizer>,
    /// The inference thread.
    pub batcher: BatcherHandle,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Requests in progress, at most `--max-concurrent-requests`.
    requests: Arc<Semaphore>,
    /// One evaluation at a time.
    pub evaluation: Arc<Semaphore>,
    /// Set once shutdown begins: readiness fails and new work is refused.
    draining: AtomicBool,
}

impl AppState {
    /// Admits one request, or refuses it (429 when too many run, 503 while draining).
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        self.requests.clone().try_acquire_owned().map_err(|_| {
            ApiError::Overloaded(format!(
                "more than {} requests in progress",
                self.config.max_concurrent_requests
            ))
        })
    }

    /// Windows of one question, built on the blocking pool (tokenizing is CPU work).
    pub async fn tokenize(
        &self,
        question: String,
        context: Arc<str>,
    ) -> Result<Vec<Window>, ApiError> {
        let featurizer = self.featurizer.clone();
        let started = Instant::now();
        let windows = off_runtime(move || featurizer.windows(&question, &context))
            .await?
            .map_err(|e| ApiError::Validation(e.to_string()))?;
        self.metrics
            .tokenize_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(windows)
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Runs CPU work (tokenizing, parsing, decoding) on tokio's blocking pool so it never stalls
/// the async workers that accept and answer connections.
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
        let manifest = crate::model::manifest::ModelManifest::load(&config.model_dir)
            .map_err(|m| anyhow::anyhow!("model folder {}: {m}", config.model_dir.display()))?;
        config
            .validate(&manifest)
            .map_err(|m| anyhow::anyhow!("invalid settings: {m}"))?;
        let engine_config =
            EngineConfig::for_folder(&manifest, config.graph, config.device, config.threads)
                .map_err(|m| anyhow::anyhow!("invalid settings: {m}"))?;
        let engine = Engine::load(&config.model_dir, &engine_config)?;
        let window = config.window(&manifest);
        let featurizer = Featurizer::from_file(&config.model_dir.join("tokenizer.json"), window)?;
        let metrics = Metrics::new()?;
        metrics
            .model_info
            .with_label_values(&[
                &config.model_dir.display().to_string(),
                &engine.graph().display().to_string(),
                &format!("{:?}", config.device).to_lowercase(),
                manifest.squad_version.as_str(),
                env!("CARGO_PKG_VERSION"),
            ])
            .set(1);
        tracing::info!(graph = %engine.graph().display(), device = ?config.device, "model loaded");
        let budget = BatchBudget {
            max_windows: config.max_batch_size,
            max_tokens: config.max_batch_tokens,
            max_delay: Duration::from_millis(config.max_batch_delay_ms),
        };
        let pad_id = featurizer.pad_id();
        let (batcher, inference) = batcher::spawn(
            engine,
            pad_id,
            budget,
            config.max_queued_windows,
            metrics.clone(),
        )?;
        let state = Arc::new(AppState {
            window,
            answer_len: config.answer_len(&manifest),
            with_null: manifest.allows_no_answer(),
            featurizer: Arc::new(featurizer),
            batcher,
            metrics,
            requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            evaluation: Arc::new(Semaphore::new(1)),
            draining: AtomicBool::new(false),
            config,
        });
        Ok(Self {
            router: router(state.clone()),
            state,
            inference,
        })
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish, and stops the inference thread once its queue is empty.
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
        let draining = state.clone();
        let signal = async move {
            shutdown.await;
            draining.draining.store(true, Ordering::SeqCst);
            tracing::info!("shutting down: finishing in-flight requests");
        };
        axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .await?;
        state.batcher.stop();
        tokio::task::spawn_blocking(move || inference.join())
            .await
            .map_err(std::io::Error::other)?
            .map_err(|_| std::io::Error::other("the inference thread panicked"))?;
        tracing::info!("stopped");
        Ok(())
    }
}

fn router(state: Arc<AppState>) -> Router {
    let config = &state.config;
    let api = Router::new()
        .route(
            "/answer",
            post(answer::answer).layer(DefaultBodyLimit::max(config.payload_limit)),
        )
        .route(
            "/evaluate",
            post(evaluate::evaluate).layer(DefaultBodyLimit::max(config.evaluate_payload_limit)),
        )
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::route_not_found)
        .with_state(state.clone());
    openapi::mount(api)
        .layer(axum::middleware::from_fn_with_state(state, ops::track))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            ops::panic_response,
        ))
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

/// Sets up logging in the configured format (`RUST_LOG` filters, default `info`).
pub fn init_logging(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        config::LogFormat::Text => builder.try_init(),
        config::LogFormat::Json => builder.json().try_init(),
    };
}
