//! A fixed pool of threads for the CPU work of `/answer` (parsing bodies, tokenizing,
//! decoding), behind a bounded channel. tokio's blocking pool grows to 512 threads under load,
//! and hundreds of tokenizer threads fighting ONNX Runtime's for the same cores cost a third
//! of the throughput at 64 clients (bench/RESULTS.md); a full channel makes callers wait
//! (asynchronously) instead of adding threads.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::error::ApiError;

type Task = Box<dyn FnOnce() + Send>;

/// Tasks waiting per worker before callers wait to hand in more.
const QUEUED_PER_WORKER: usize = 16;

/// The pool's handle: cheap to clone, usable from async code.
#[derive(Clone)]
pub struct CpuPool {
    sender: mpsc::Sender<Task>,
    workers: usize,
}

impl CpuPool {
    /// Starts `workers` threads (at least one). They end when every handle is dropped.
    pub fn start(workers: usize) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let (sender, receiver) = mpsc::channel::<Task>(workers * QUEUED_PER_WORKER);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..workers {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("bertqa-cpu-{index}"))
                .spawn(move || work(&receiver))?;
        }
        Ok(Self { sender, workers })
    }

    /// Worker threads in the pool.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `job` on a worker and waits for its result; a panic in `job` is an internal
    /// error for this request only (the worker lives on).
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, result) = oneshot::channel();
        let task: Task = Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(job));
            let _ = reply.send(outcome);
        });
        self.sender
            .send(task)
            .await
            .map_err(|_| ApiError::ShuttingDown)?;
        result
            .await
            .map_err(|_| ApiError::ShuttingDown)?
            .map_err(|_| ApiError::Internal("a worker panicked on this request".into()))
    }
}

/// One worker: takes the next task (one worker at a time waits on the channel) and runs it.
fn work(receiver: &Mutex<mpsc::Receiver<Task>>) {
    loop {
        let next = receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .blocking_recv();
        match next {
            Some(task) => task(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_a_fixed_set_of_threads_and_panics_stay_in_their_request() {
        let pool = CpuPool::start(2).unwrap();
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let name = pool
                .run(|| {
                    std::thread::current()
                        .name()
                        .unwrap_or_default()
                        .to_string()
                })
                .await
                .unwrap();
            names.insert(name);
        }
        assert!(
            names.iter().all(|n| n.starts_with("bertqa-cpu-")),
            "{names:?}"
        );
        assert!(names.len() <= 2);
        let failed: Result<(), _> = pool.run(|| panic!("bad input")).await;
        assert_eq!(failed.unwrap_err().error_type(), "internal");
        assert_eq!(pool.run(|| 2 + 2).await.unwrap(), 4);
    }
}
