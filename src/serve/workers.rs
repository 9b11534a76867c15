//! Inference workers: each owns one ONNX Runtime session and runs the batches the
//! [`batcher`](super::batcher) hands it, one at a time. Several sessions with fewer threads
//! each keep the cores busier than one session with all of them (the small operators between
//! the matrix products run on one thread), as Triton's instance groups do; with one worker
//! this is the single session of before, on its own thread. A *lone-batch* session beside
//! them, with every core, runs a batch that is all the work there is, so that one client's
//! question is not held to one worker's threads.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::health::InferenceHealth;
use crate::qa::batch::{BatchLogits, PaddedBatch};
use crate::runtime::engine::{DeviceKind, Engine, EngineConfig, EngineError};

/// The sessions the batcher hands batches to.
pub struct Engines {
    /// One per worker, each run by its own thread with the workers' threads.
    pub workers: Vec<Engine>,
    /// The lone-batch session, when configured (see [`Workers::lone`]).
    pub lone: Option<Engine>,
}

/// Loads one engine per worker from `model_dir`, and a lone-batch engine with `lone_threads`
/// intra-op threads when given. With `reserve` (the largest batch shapes the batcher can
/// form), each also runs those shapes once so its memory is at its peak before the first
/// request (see [`Engine::reserve`]); the time and resident memory after it are logged, as
/// that is what an operator sizes a memory limit by. Several CPU sessions hold the weights
/// once ([`SharedWeights`](crate::runtime::shared::SharedWeights)).
pub fn load_engines(
    model_dir: &Path,
    config: &EngineConfig,
    workers: usize,
    lone_threads: Option<usize>,
    reserve: Option<&[(usize, usize)]>,
) -> Result<Engines, EngineError> {
    // Several CPU sessions share the weights (ONNX Runtime shares packed ones on CPU only).
    let share =
        workers + usize::from(lone_threads.is_some()) > 1 && config.device == DeviceKind::Cpu;
    let mut shared = None;
    let mut load = |config: &EngineConfig| -> Result<Engine, EngineError> {
        let mut engine = Engine::load_sharing(model_dir, config, share.then_some(&mut shared))?;
        if let Some(shapes) = reserve {
            warm_up(&mut engine, shapes)?;
        }
        Ok(engine)
    };
    let worker_engines = (0..workers)
        .map(|_| load(config))
        .collect::<Result<Vec<_>, _>>()?;
    let lone = lone_threads
        .map(|threads| {
            load(&EngineConfig {
                threads: Some(threads),
                ..config.clone()
            })
        })
        .transpose()?;
    Ok(Engines {
        workers: worker_engines,
        lone,
    })
}

/// Runs `shapes` once on `engine` and logs the time and the resident memory after it.
fn warm_up(engine: &mut Engine, shapes: &[(usize, usize)]) -> Result<(), EngineError> {
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
    Ok(())
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
    /// Which worker ran it (it is idle again): [`Workers::lone`] for the lone-batch session.
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
    /// The workers' senders, then the lone-batch session's when there is one.
    senders: Vec<mpsc::Sender<Work>>,
    threads: Vec<JoinHandle<()>>,
    /// Whether the last sender is the lone-batch session's.
    has_lone: bool,
}

impl Workers {
    /// Starts one thread per engine. Each reports every finished batch through `on_done`, and
    /// counts as the inference thread for the health checks: if one dies, the service is
    /// stopped, not left running with less capacity than it reports.
    pub fn start(
        engines: Engines,
        health: &Arc<InferenceHealth>,
        on_done: impl Fn(Done) + Send + Clone + 'static,
    ) -> std::io::Result<Self> {
        let has_lone = engines.lone.is_some();
        let all: Vec<Engine> = engines.workers.into_iter().chain(engines.lone).collect();
        let mut senders = Vec::with_capacity(all.len());
        let mut threads = Vec::with_capacity(all.len());
        for (index, engine) in all.into_iter().enumerate() {
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
        Ok(Self {
            senders,
            threads,
            has_lone,
        })
    }

    /// How many workers there are, not counting the lone-batch session.
    pub fn count(&self) -> usize {
        self.senders.len() - usize::from(self.has_lone)
    }

    /// The lone-batch session's index, when there is one: it runs a batch that is all the
    /// work there is on every core, while the workers run concurrent batches side by side.
    pub fn lone(&self) -> Option<usize> {
        self.has_lone.then(|| self.count())
    }

    /// Hands `work` to worker `index` (or the lone-batch session); false when it has ended
    /// (or was stopped).
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
