//! The inference thread: it collects windows from every request into the [`WindowQueue`],
//! hands the batches the queue decides on to the first idle [`Workers`] session (it keeps
//! collecting while they all run, so their next batches fill up), and gives each request its
//! logits through a oneshot channel. A batch that is all the work there is goes to the
//! lone-batch session instead when there is one, and the workers wait until it is back: the
//! cores are either all on one batch or shared out among concurrent ones. Windows whose
//! requester is gone (client disconnected, handler dropped) are dropped before they cost any
//! inference.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod handle;
mod runners;

#[cfg(feature = "test-hooks")]
pub use self::handle::Fault;
pub use self::handle::{Arrival, BatcherHandle, Inferred};
use self::handle::{Job, Message, Reply};
use self::runners::Runners;
use super::error::ApiError;
use super::health::{AliveGuard, InferenceHealth};
use super::metrics::Metrics;
use super::queue::{BatchBudget, Company, Decision, Priority, WindowQueue};
use super::workers::{Done, Engines, Work, Workers};
use crate::qa::batch::{BatchLogits, PaddedBatch};
use crate::qa::decode::WindowLogits;
use crate::qa::features::Window;

struct JobState {
    windows: Arc<Vec<Window>>,
    since: Instant,
    queue_time: Option<Duration>,
    inference_time: Duration,
    rows: Vec<WindowLogits>,
    remaining: usize,
    reply: Reply,
}

/// A queued window: its job, its index in the job, and the job's priority (so that the
/// interactive count stays right even for windows of jobs that failed or were abandoned).
type Slot = (u64, usize, Priority);

/// Starts the inference thread and one worker per engine; they end after
/// [`BatcherHandle::stop`] once the queue is empty and every batch has come back.
pub fn spawn(
    engines: Engines,
    pad_id: u32,
    budget: BatchBudget,
    capacity: usize,
    metrics: Metrics,
    health: Arc<InferenceHealth>,
) -> std::io::Result<(BatcherHandle, JoinHandle<()>)> {
    let (sender, receiver) = mpsc::channel();
    let interactive_queued = Arc::new(AtomicUsize::new(0));
    let arriving = Arc::new(AtomicUsize::new(0));
    let done = sender.clone();
    let workers = Workers::start(engines, &health, move |finished| {
        let _ = done.send(Message::Done(finished));
    })?;
    let mut batcher = Batcher {
        runners: Runners::new(workers),
        pad_id,
        budget,
        metrics,
        interactive_queued: interactive_queued.clone(),
        arriving: arriving.clone(),
        queue: WindowQueue::default(),
        jobs: HashMap::new(),
        next_id: 0,
        health: health.clone(),
        #[cfg(feature = "test-hooks")]
        failing_batches: 0,
    };
    let alive = health.thread_started();
    let thread = std::thread::Builder::new()
        .name("bertqa-inference".into())
        .spawn(move || batcher.run(&receiver, alive))?;
    let handle = BatcherHandle {
        sender,
        interactive_queued,
        arriving,
        capacity,
        health,
    };
    Ok((handle, thread))
}

struct Batcher {
    /// Who runs the batches; stopped and joined when the thread ends.
    runners: Runners,
    pad_id: u32,
    budget: BatchBudget,
    metrics: Metrics,
    interactive_queued: Arc<AtomicUsize>,
    /// Questions announced by [`BatcherHandle::expect`] whose windows have not come yet.
    arriving: Arc<AtomicUsize>,
    queue: WindowQueue<Slot>,
    jobs: HashMap<u64, JobState>,
    next_id: u64,
    health: Arc<InferenceHealth>,
    #[cfg(feature = "test-hooks")]
    failing_batches: u32,
}

impl Batcher {
    /// The thread's life; `_alive` tells the health checks when it ends, however it ends.
    fn run(&mut self, receiver: &mpsc::Receiver<Message>, _alive: AliveGuard) {
        let mut stopping = false;
        loop {
            while let Ok(message) = receiver.try_recv() {
                stopping |= self.receive(message);
            }
            self.drop_abandoned();
            if stopping {
                // Nobody waits for company any more: run what is left at once.
                self.budget.max_delay = Duration::ZERO;
            }
            let all_idle = self.runners.all_idle();
            // None: nothing to do until a message comes; Some: a batch is due by then.
            let deadline = match self.runners.take_idle() {
                Some(worker) => {
                    let company = self.company();
                    match self.queue.decide(Instant::now(), &self.budget, company) {
                        Decision::Run(batch) => {
                            let nothing_else =
                                self.queue.is_empty() && company == Company::NoneComing;
                            let runner = self.runners.assign(worker, nothing_else);
                            self.dispatch(runner, &batch);
                            continue;
                        }
                        Decision::Idle => {
                            self.runners.release(worker);
                            None
                        }
                        Decision::WaitUntil(deadline) => {
                            self.runners.release(worker);
                            Some(deadline)
                        }
                    }
                }
                // Every worker is busy (or waits for the lone-batch session): wait for one to
                // come back, collecting meanwhile.
                None => None,
            };
            let received = match deadline {
                None if stopping && all_idle && self.queue.is_empty() => break,
                None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(deadline) => {
                    receiver.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                }
            };
            match received {
                Ok(message) => stopping |= self.receive(message),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stopping = true,
            }
        }
        self.runners.stop();
    }

    /// Whether windows are on their way (see [`Arrival`]).
    fn company(&self) -> Company {
        match self.arriving.load(Ordering::SeqCst) {
            0 => Company::NoneComing,
            _ => Company::Coming,
        }
    }

    /// Takes in one message; true when it asks the thread to stop.
    fn receive(&mut self, message: Message) -> bool {
        match message {
            Message::Job(job) => {
                self.admit(job);
                false
            }
            Message::Done(done) => {
                self.finish(done);
                false
            }
            Message::Stop => true,
            #[cfg(feature = "test-hooks")]
            Message::Fault(fault) => {
                match fault {
                    Fault::Panic => panic!("injected fault: the inference thread panics"),
                    Fault::Wedge(how_long) => std::thread::sleep(how_long),
                    Fault::FailBatches(n) => self.failing_batches = n,
                }
                false
            }
        }
    }

    fn admit(&mut self, job: Job) {
        let id = self.next_id;
        self.next_id += 1;
        // Shortest first within the job: a question's many passages then fill batches of
        // similar lengths instead of padding short windows to the longest one.
        let mut order: Vec<usize> = (0..job.windows.len()).collect();
        order.sort_by_key(|&i| job.windows[i].len());
        for index in order {
            self.queue.push(
                job.priority,
                (id, index, job.priority),
                job.windows[index].len(),
                job.since,
            );
        }
        let count = job.windows.len();
        self.jobs.insert(
            id,
            JobState {
                rows: vec![WindowLogits::default(); count],
                remaining: count,
                since: job.since,
                queue_time: None,
                inference_time: Duration::ZERO,
                windows: job.windows,
                reply: job.reply,
            },
        );
        self.metrics.queue_depth.set(self.queue.len() as i64);
    }

    fn drop_abandoned(&mut self) {
        // One look at each reply channel, so the queue and the job table drop the same jobs
        // even when a client leaves while this runs.
        let abandoned: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.reply.is_closed())
            .map(|(&id, _)| id)
            .collect();
        if abandoned.is_empty() {
            return;
        }
        for id in &abandoned {
            self.jobs.remove(id);
        }
        let jobs = &self.jobs;
        let mut interactive = 0;
        let dropped = self.queue.retain(|(id, _, priority)| {
            let keep = jobs.contains_key(id);
            interactive += usize::from(!keep && *priority == Priority::Interactive);
            keep
        });
        self.interactive_queued
            .fetch_sub(interactive, Ordering::SeqCst);
        self.metrics.dropped_windows.inc_by(dropped as u64);
        self.metrics.queue_depth.set(self.queue.len() as i64);
        tracing::debug!(dropped, "dropped windows of disconnected clients");
    }

    /// Pads a batch the queue decided on and hands it to the idle `worker` (or the lone-batch
    /// session).
    fn dispatch(&mut self, worker: usize, batch: &[Slot]) {
        let interactive = batch
            .iter()
            .filter(|(_, _, priority)| *priority == Priority::Interactive)
            .count();
        self.interactive_queued
            .fetch_sub(interactive, Ordering::SeqCst);
        self.metrics.queue_depth.set(self.queue.len() as i64);
        // Windows of a job that already failed have nobody to answer; rows stay aligned with
        // `members` whatever is skipped.
        let members: Vec<(u64, usize)> = batch
            .iter()
            .map(|&(id, index, _)| (id, index))
            .filter(|(id, _)| self.jobs.contains_key(id))
            .collect();
        if members.is_empty() {
            self.runners.release(worker);
            return;
        }
        let windows: Vec<&Window> = members
            .iter()
            .map(|(id, i)| &self.jobs[id].windows[*i])
            .collect();
        let padded = PaddedBatch::from_windows(&windows, self.pad_id);
        let now = Instant::now();
        for (id, _) in &members {
            let waited = now.saturating_duration_since(self.jobs[id].since);
            self.metrics.queue_seconds.observe(waited.as_secs_f64());
        }
        let work = Work {
            members,
            padded,
            #[cfg(feature = "test-hooks")]
            fail: self.take_injected_failure(),
        };
        if !self.runners.send(worker, work) {
            // Its thread has ended, which the health checks report; the service stops.
            tracing::error!(worker, "an inference worker has ended");
        }
    }

    /// Takes in a batch a worker ran: its timing, then its logits or its failure.
    fn finish(&mut self, done: Done) {
        self.runners.release(done.worker);
        let Work {
            members, padded, ..
        } = done.work;
        self.health.batch_finished(done.result.is_ok());
        self.metrics
            .inference_seconds
            .observe(done.took.as_secs_f64());
        self.time_jobs(&members, done.started, done.took);
        self.metrics.batch_windows.observe(padded.batch_size as f64);
        self.metrics
            .batch_tokens
            .observe(padded.padded_tokens() as f64);
        self.metrics
            .worker_batches
            .with_label_values(&[&self.runners.label(done.worker)])
            .inc();
        match done.result {
            Ok(logits) => {
                for (row, (id, index)) in members.into_iter().enumerate() {
                    self.deliver(id, index, &padded, &logits, row);
                }
            }
            Err(error) => {
                tracing::error!(%error, windows = members.len(), "inference failed");
                for (id, _) in &members {
                    if let Some(job) = self.jobs.remove(id) {
                        let _ = job.reply.send(Err(ApiError::Internal(error.clone())));
                    }
                }
            }
        }
    }

    /// Charges a batch that started at `started` and took `took` to each job it held.
    fn time_jobs(&mut self, members: &[(u64, usize)], started: Instant, took: Duration) {
        let mut ids: Vec<u64> = members.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if let Some(job) = self.jobs.get_mut(&id) {
                job.queue_time
                    .get_or_insert_with(|| started.saturating_duration_since(job.since));
                job.inference_time += took;
            }
        }
    }

    /// Whether the next batch is to fail as if ONNX Runtime had (health tests only).
    #[cfg(feature = "test-hooks")]
    fn take_injected_failure(&mut self) -> bool {
        let fail = self.failing_batches > 0;
        self.failing_batches = self.failing_batches.saturating_sub(1);
        fail
    }

    /// Hands row `row` of a batch's logits to window `index` of job `id`.
    fn deliver(
        &mut self,
        id: u64,
        index: usize,
        batch: &PaddedBatch,
        logits: &BatchLogits,
        row: usize,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.rows[index] = batch.window_logits(logits, row, job.windows[index].len());
        job.remaining -= 1;
        if job.remaining == 0 {
            if let Some(job) = self.jobs.remove(&id) {
                // The requester may have left meanwhile; nothing to do then.
                let _ = job.reply.send(Ok(Inferred {
                    logits: job.rows,
                    queue_time: job.queue_time.unwrap_or_default(),
                    inference_time: job.inference_time,
                }));
            }
        }
    }
}
