//! Evaluation jobs: an evaluation that outlives its request, so a page (or a script) can start
//! one, watch its progress, read its report, or cancel it. One runs at a time (it shares the
//! one-evaluation permit with `POST /evaluate`), a few wait, and finished ones are kept for a
//! while; the worker takes them in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use super::super::error::ApiError;
use super::super::metrics::Metrics;
use super::super::AppState;
use super::run::{run, Cancel, Ended, EvaluationResult, Progress};
use super::upload::Upload;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the running evaluation to end.
    Queued,
    /// Being evaluated.
    Running,
    /// Finished: the result is there.
    Done,
    /// Ended with an error.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    const ALL: [Self; 5] = [
        Self::Queued,
        Self::Running,
        Self::Done,
        Self::Failed,
        Self::Cancelled,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// True once the job can change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// What a job ended with.
#[derive(Clone)]
pub enum JobEnd {
    /// Its result.
    Done(Arc<EvaluationResult>),
    /// Its error: (`error_type`, message).
    Failed(&'static str, String),
    /// Nothing: it was cancelled.
    Cancelled,
}

/// The changing part of a job; its [`JobState`] follows from when it started and how it
/// ended.
struct Life {
    upload: Option<Upload>,
    started: Option<Instant>,
    ended: Option<(Instant, JobEnd)>,
}

impl Life {
    fn state(&self) -> JobState {
        match (&self.ended, self.started) {
            (Some((_, JobEnd::Done(_))), _) => JobState::Done,
            (Some((_, JobEnd::Failed(..))), _) => JobState::Failed,
            (Some((_, JobEnd::Cancelled)), _) => JobState::Cancelled,
            (None, Some(_)) => JobState::Running,
            (None, None) => JobState::Queued,
        }
    }
}

/// One evaluation job.
pub struct Job {
    /// Its id (unguessable, so that one client cannot read another's by counting).
    pub id: String,
    /// Its questions done so far.
    pub progress: Arc<Progress>,
    cancel: Cancel,
    life: Mutex<Life>,
}

/// A job's state and times, read in one go.
pub struct JobView {
    /// Its state.
    pub state: JobState,
    /// Time spent running (so far, or in all).
    pub elapsed: Duration,
    /// How it ended, once it has.
    pub end: Option<JobEnd>,
}

impl Job {
    fn life(&self) -> std::sync::MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Its state, elapsed time and end.
    pub fn view(&self) -> JobView {
        let life = self.life();
        let until = life.ended.as_ref().map_or_else(Instant::now, |(at, _)| *at);
        JobView {
            state: life.state(),
            elapsed: life.started.map_or(Duration::ZERO, |s| until - s),
            end: life.ended.as_ref().map(|(_, end)| end.clone()),
        }
    }

    /// Ends the job with `end`, unless it has already ended (a job the worker ran may have
    /// been cancelled meanwhile: the first end stands).
    fn end(&self, end: JobEnd) {
        let mut life = self.life();
        if life.ended.is_some() {
            return;
        }
        life.upload = None;
        life.ended = Some((Instant::now(), end));
    }

    fn ended_at(&self) -> Option<Instant> {
        self.life().ended.as_ref().map(|(at, _)| *at)
    }
}

/// How many jobs may wait and how long finished ones are kept.
#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    /// Jobs waiting behind the running one.
    pub max_queued: usize,
    /// Finished jobs kept.
    pub kept: usize,
    /// How long a finished job is kept.
    pub kept_for: Duration,
}

#[derive(Default)]
struct Store {
    /// Every job kept, oldest first.
    jobs: Vec<Arc<Job>>,
    /// Jobs waiting, in order.
    waiting: VecDeque<Arc<Job>>,
    /// Set at shutdown: nothing new is taken.
    closed: bool,
}

/// The jobs of one server.
pub struct EvaluationJobs {
    store: Mutex<Store>,
    wake: Notify,
    limits: JobLimits,
    metrics: Metrics,
}

impl EvaluationJobs {
    /// No jobs yet.
    pub fn new(limits: JobLimits, metrics: Metrics) -> Self {
        Self {
            store: Mutex::new(Store::default()),
            wake: Notify::new(),
            limits,
            metrics,
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses (429, or 503 at shutdown) when a new job could not be queued now: checked
    /// before an upload is read, so that a full queue does not cost a 64 MiB upload.
    pub fn check_room(&self) -> Result<(), ApiError> {
        self.room(&self.store())
    }

    fn room(&self, store: &Store) -> Result<(), ApiError> {
        if store.closed {
            return Err(ApiError::ShuttingDown);
        }
        if store.waiting.len() >= self.limits.max_queued {
            return Err(ApiError::Overloaded(format!(
                "{} evaluations are already waiting (--max-queued-evaluations); try again later",
                store.waiting.len()
            )));
        }
        Ok(())
    }

    /// Queues `upload` as a new job, or refuses it (see [`Self::check_room`]).
    pub fn submit(&self, upload: Upload) -> Result<Arc<Job>, ApiError> {
        let mut store = self.store();
        self.forget_old(&mut store);
        self.room(&store)?;
        let job = Arc::new(Job {
            id: new_id(),
            progress: Arc::new(Progress::new(upload.examples.len())),
            cancel: Cancel::default(),
            life: Mutex::new(Life {
                upload: Some(upload),
                started: None,
                ended: None,
            }),
        });
        store.jobs.push(job.clone());
        store.waiting.push_back(job.clone());
        self.count(&store);
        drop(store);
        self.wake.notify_one();
        Ok(job)
    }

    /// The job `id`, while it is kept.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        let mut store = self.store();
        self.forget_old(&mut store);
        store.jobs.iter().find(|j| j.id == id).cloned()
    }

    /// Every job kept, oldest first.
    pub fn list(&self) -> Vec<Arc<Job>> {
        let mut store = self.store();
        self.forget_old(&mut store);
        store.jobs.clone()
    }

    /// Forgets the job `id`, cancelling it first if it has not ended (a waiting one at once, a
    /// running one at its next step, its queued windows dropped); returns it as it was left,
    /// or `None` when there is no such job.
    pub fn cancel(&self, id: &str) -> Option<Arc<Job>> {
        let mut store = self.store();
        let job = store.jobs.iter().find(|j| j.id == id).cloned()?;
        store.jobs.retain(|j| j.id != id);
        store.waiting.retain(|j| j.id != id);
        if !job.life().state().is_final() {
            job.cancel.cancel();
            job.end(JobEnd::Cancelled);
        }
        self.count(&store);
        Some(job)
    }

    /// Cancels everything and takes no more: the server is stopping.
    pub fn close(&self) {
        let mut store = self.store();
        store.closed = true;
        for job in std::mem::take(&mut store.waiting) {
            job.end(JobEnd::Cancelled);
        }
        for job in &store.jobs {
            job.cancel.cancel();
        }
        self.count(&store);
        drop(store);
        self.wake.notify_waiters();
    }

    /// The next job to run, waiting for one; `None` once closed.
    async fn next(&self) -> Option<Arc<Job>> {
        loop {
            let woken = self.wake.notified();
            {
                let mut store = self.store();
                if store.closed {
                    return None;
                }
                if let Some(job) = store.waiting.pop_front() {
                    return Some(job);
                }
            }
            woken.await;
        }
    }

    fn forget_old(&self, store: &mut Store) {
        let now = Instant::now();
        let kept_for = self.limits.kept_for;
        store
            .jobs
            .retain(|j| j.ended_at().is_none_or(|at| now - at < kept_for));
        let finished = store.jobs.iter().filter(|j| j.ended_at().is_some()).count();
        let mut extra = finished.saturating_sub(self.limits.kept);
        store.jobs.retain(|j| {
            let forget = extra > 0 && j.ended_at().is_some();
            extra -= usize::from(forget);
            !forget
        });
        self.count(store);
    }

    fn count(&self, store: &Store) {
        let states: Vec<JobState> = store.jobs.iter().map(|j| j.life().state()).collect();
        for state in JobState::ALL {
            let n = states.iter().filter(|&&s| s == state).count();
            let gauge = self
                .metrics
                .evaluation_jobs
                .with_label_values(&[state.label()]);
            gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn recount(&self) {
        let store = self.store();
        self.count(&store);
    }
}

/// A random 128-bit id in hex: two SipHash values, under the standard library's random
/// per-process keys, of a counter that never repeats.
fn new_id() -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let half = || std::collections::hash_map::RandomState::new().hash_one(n);
    format!("{:016x}{:016x}", half(), half())
}

/// Runs the jobs one after another for as long as the server lives (it holds the state only
/// while a job runs, so a dropped server is not kept alive by it).
pub async fn work(jobs: Arc<EvaluationJobs>, state: Weak<AppState>) {
    while let Some(job) = jobs.next().await {
        let Some(state) = state.upgrade() else {
            return;
        };
        let Ok(only_one) = state.evaluation.clone().acquire_owned().await else {
            return;
        };
        let upload = {
            let mut life = job.life();
            if life.state() != JobState::Queued {
                continue; // cancelled while it waited for the permit
            }
            life.started = Some(Instant::now());
            life.upload.take()
        };
        jobs.recount();
        let Some(upload) = upload else { continue };
        let end = match run(
            &state,
            upload,
            job.progress.clone(),
            job.cancel.clone(),
            only_one,
        )
        .await
        {
            Ok(result) => JobEnd::Done(Arc::new(result)),
            Err(Ended::Cancelled) => JobEnd::Cancelled,
            Err(Ended::Failed(error)) => JobEnd::Failed(error.error_type(), error.to_string()),
        };
        job.end(end);
        jobs.recount();
    }
}
