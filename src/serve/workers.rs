//! Inference workers: each owns one ONNX Runtime session and runs the batches the
//! [`batcher`](super::batcher) hands it, one at a time. Several sessions with fewer threads
//! each keep the cores busier than one session with all of them (the small operators between
//! the matrix products run on one thread), as Triton's instance groups do; with one worker
//! this is the single session of before, on its own thread.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::health::InferenceHealth;
use crate::qa::batch::{BatchLogits, PaddedBatch};
use crate::runtime::engine::{DeviceKind, Engine, EngineConfig, EngineError};

/// Loads one engine per worker from `model_dir`. With `reserve` (the largest batch shapes the
/// batcher can form), each also runs those shapes once so its memory is at its peak before
/// the first request (see [`Engine::reserve`]); the time and resident memory after it are
/// logged, as that is what an operator sizes a memory limit by. Several CPU workers hold the
/// weights once ([`SharedWeights`](crate::runtime::shared::SharedWeights)).
pub fn load_engines(
    model_dir: &Path,
    config: &EngineConfig,
    workers: usize,
    reserve: Option<&[(usize, usize)]>,
) -> Result<Vec<Engine>, EngineError> {
    let mut engines = Vec::with_capacity(workers);
    // Several CPU sessions share the weights (ONNX Runtime shares packed ones on CPU only).
    let share = workers > 1 && config.device == DeviceKind::Cpu;
    let mut shared = None;
    for _ in 0..workers {
        let mut engine = Engine::load_sharing(model_dir, config, share.then_some(&mut shared))?;
        if let Some(shapes) = reserve {
            let started = Instant::now();
            for &(windows, seq_len) in shapes {
                engine.reserve(windows, seq_len)?;
            }
            let resident = resident_mib().map_or_else(|| "unknown".into(), |m| m.to_string());
            tracing::info!(
                shapes = ?shapes,
                seconds = started.elapsed().as_secs_f64(),
                resident_mib = %resident,
                "warmed up with the largest batches"
            );
        }
        engines.push(engine);
    }
    Ok(engines)
}

/// This process's resident memory in MiB (Linux), for the start-up log.
fn resident_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// One batch for a worker: which windows of which jobs it holds, and their padded inputs.
pub struct Work {
    /// (job id, window index) per row of `padded`.
    pub members: Vec<(u64, usize)>,
    /// The model's inputs.
    pub padded: PaddedBatch,
    /// Fail instead of running (the health tests' injected engine failure).
    #[cfg(feature = "test-hooks")]
    pub fail: bool,
}

/// A batch run: the work it was, when it started, how long it took and its logits.
pub struct Done {
    /// Which worker ran it (it is idle again).
    pub worker: usize,
    /// The batch as it was handed over.
    pub work: Work,
    /// When the worker started it.
    pub started: Instant,
    /// How long the engine took.
    pub took: Duration,
    /// The logits, or why the engine failed.
    pub result: Result<BatchLogits, String>,
}

/// The scheduler's side of the workers: where to send each one its next batch.
pub struct Workers {
    senders: Vec<mpsc::Sender<Work>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts one thread per engine. Each reports every finished batch through `on_done`, and
    /// counts as the inference thread for the health checks: if one dies, the service is
    /// stopped, not left running with less capacity than it reports.
    pub fn start(
        engines: Vec<Engine>,
        health: &Arc<InferenceHealth>,
        on_done: impl Fn(Done) + Send + Clone + 'static,
    ) -> std::io::Result<Self> {
        let mut senders = Vec::with_capacity(engines.len());
        let mut threads = Vec::with_capacity(engines.len());
        for (index, engine) in engines.into_iter().enumerate() {
            let (sender, receiver) = mpsc::channel::<Work>();
            let alive = health.thread_started();
            let on_done = on_done.clone();
            let thread = std::thread::Builder::new()
                .name(format!("bertqa-worker-{index}"))
                .spawn(move || {
                    let _alive = alive;
                    work(index, engine, &receiver, &on_done);
                })?;
            senders.push(sender);
            threads.push(thread);
        }
        Ok(Self { senders, threads })
    }

    /// How many workers there are.
    pub fn count(&self) -> usize {
        self.senders.len()
    }

    /// Hands `work` to worker `index`; false when that worker has ended (or was stopped).
    pub fn send(&self, index: usize, work: Work) -> bool {
        self.senders
            .get(index)
            .is_some_and(|sender| sender.send(work).is_ok())
    }

    /// Ends every worker once it has finished its batch, and waits for them.
    pub fn stop(&mut self) {
        self.senders.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A worker's life: run each batch it receives, report it, until its sender is dropped.
fn work(
    index: usize,
    mut engine: Engine,
    receiver: &mpsc::Receiver<Work>,
    on_done: &impl Fn(Done),
) {
    while let Ok(work) = receiver.recv() {
        let started = Instant::now();
        let result = run(&mut engine, &work);
        on_done(Done {
            worker: index,
            took: started.elapsed(),
            started,
            work,
            result,
        });
    }
}

fn run(engine: &mut Engine, work: &Work) -> Result<BatchLogits, String> {
    #[cfg(feature = "test-hooks")]
    if work.fail {
        return Err("injected fault: the batch fails".into());
    }
    engine.run(&work.padded).map_err(|e| e.to_string())
}
