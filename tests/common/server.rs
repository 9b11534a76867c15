//! A real bertqa server on a free loopback port, for HTTP tests.

use std::path::Path;
use std::sync::Arc;

use bertqa::serve::config::ServeConfig;
use bertqa::serve::{AppState, Service};
use clap::Parser;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeConfig,
}

/// Settings for `model_dir` on port 0, one inference thread (one worker unless `flags` say
/// otherwise), plus `flags`.
pub fn config(model_dir: &Path, flags: &[&str]) -> ServeConfig {
    let mut args = vec![
        "bertqa".to_string(),
        "--model-dir".into(),
        model_dir.display().to_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "--threads".into(),
        "1".into(),
    ];
    if !flags.contains(&"--workers") {
        args.extend(["--workers".into(), "1".into()]);
    }
    args.extend(flags.iter().map(|f| f.to_string()));
    Cli::parse_from(args).serve
}

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client without timeouts.
    pub client: reqwest::Client,
    /// The server's shared state (metrics, config).
    pub state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Loads the model and serves it on a free port.
    pub async fn start(config: ServeConfig) -> Self {
        let service = Service::load(config).expect("the service loads");
        let state = service.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve(listener, async move {
            let _ = signal.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON text to `path`; returns the status and the parsed body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// POSTs raw bytes with an optional Content-Type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text}"));
        (status, value)
    }

    /// GETs `path` as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Starts a graceful shutdown and waits for the server to stop.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.begin_stop();
        self.task.take().unwrap().await.unwrap()
    }

    /// Sends the shutdown signal without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// True once the server has stopped (by itself, or after a shutdown).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_some_and(JoinHandle::is_finished)
    }

    /// Waits for a server whose shutdown was begun.
    pub async fn join(mut self) -> std::io::Result<()> {
        self.task.take().unwrap().await.unwrap()
    }
}

/// The value of one sample line of a Prometheus exposition (`name{labels} value`).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
