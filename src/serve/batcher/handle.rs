//! The handlers' side of the inference thread: what they send it ([`Message`]), what they
//! get back ([`Inferred`]), and [`BatcherHandle`], through which they submit windows and
//! announce the ones on their way ([`Arrival`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::super::error::ApiError;
use super::super::health::InferenceHealth;
use super::super::queue::Priority;
use super::super::workers::Done;
use crate::qa::decode::WindowLogits;
use crate::qa::features::Window;

pub(super) type Reply = oneshot::Sender<Result<Inferred, ApiError>>;

/// One question's logits, with where its time went (for the timing headers and spans).
#[derive(Debug)]
pub struct Inferred {
    /// One row per window, in the order the windows were given.
    pub logits: Vec<WindowLogits>,
    /// From submission until the first batch holding one of its windows started.
    pub queue_time: Duration,
    /// Time of the batches that held its windows.
    pub inference_time: Duration,
}

/// One question's windows on their way to the inference thread.
pub(super) struct Job {
    pub(super) windows: Arc<Vec<Window>>,
    pub(super) priority: Priority,
    pub(super) since: Instant,
    pub(super) reply: Reply,
}

/// What the inference thread receives.
pub(super) enum Message {
    /// Windows to run.
    Job(Job),
    /// A worker finished a batch.
    Done(Done),
    /// Finish what is queued, then end the thread.
    Stop,
    /// A failure to act out (tests of the health checks only).
    #[cfg(feature = "test-hooks")]
    Fault(Fault),
}

/// Failures the health tests make the inference thread act out.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// The thread panics.
    Panic,
    /// The thread blocks this long before its next batch.
    Wedge(Duration),
    /// The next N batches fail as if ONNX Runtime had.
    FailBatches(u32),
}

/// The handlers' side of the inference thread: cheap to clone, safe to call from async code.
#[derive(Clone)]
pub struct BatcherHandle {
    pub(super) sender: mpsc::Sender<Message>,
    pub(super) interactive_queued: Arc<AtomicUsize>,
    pub(super) arriving: Arc<AtomicUsize>,
    pub(super) capacity: usize,
    pub(super) health: Arc<InferenceHealth>,
}

/// A question on its way to the queue (being parsed or tokenized): while any is, the batcher
/// waits up to `--max-batch-delay-ms` for its windows; with none, it runs what is queued at
/// once. Dropped when its windows are handed over (or when it fails before).
pub struct Arrival {
    arriving: Arc<AtomicUsize>,
    count: usize,
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.arriving.fetch_sub(self.count, Ordering::SeqCst);
    }
}

impl BatcherHandle {
    /// Announces `questions` questions whose windows will come soon.
    pub fn expect(&self, questions: usize) -> Arrival {
        self.arriving.fetch_add(questions, Ordering::SeqCst);
        Arrival {
            arriving: self.arriving.clone(),
            count: questions,
        }
    }

    /// Runs one question's windows and waits for their logits. Interactive work is refused
    /// with 429 when `capacity` interactive windows already wait. Background work does not
    /// count against that budget: its submitter (one evaluation, a few batches at a time)
    /// bounds it, so an evaluation can never make `/answer` refuse work it has room for.
    pub async fn infer(
        &self,
        windows: Arc<Vec<Window>>,
        priority: Priority,
    ) -> Result<Inferred, ApiError> {
        let _waiting = self.health.work_submitted();
        let count = windows.len();
        let interactive = priority == Priority::Interactive;
        if interactive {
            let before = self.interactive_queued.fetch_add(count, Ordering::SeqCst);
            if before + count > self.capacity {
                self.interactive_queued.fetch_sub(count, Ordering::SeqCst);
                return Err(ApiError::Overloaded(format!(
                    "{before} windows are waiting for inference (limit {})",
                    self.capacity
                )));
            }
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            windows,
            priority,
            since: Instant::now(),
            reply,
        };
        if self.sender.send(Message::Job(job)).is_err() {
            if interactive {
                self.interactive_queued.fetch_sub(count, Ordering::SeqCst);
            }
            return Err(ApiError::ShuttingDown);
        }
        answer.await.map_err(|_| ApiError::ShuttingDown)?
    }

    /// Asks the inference thread to run what is queued and end.
    pub fn stop(&self) {
        let _ = self.sender.send(Message::Stop);
    }

    /// Makes the inference thread act out `fault` (health tests only).
    #[cfg(feature = "test-hooks")]
    pub fn inject(&self, fault: Fault) {
        let _ = self.sender.send(Message::Fault(fault));
    }
}
