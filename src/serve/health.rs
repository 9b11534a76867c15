//! Whether the inference thread is doing its job: alive, making progress on the work that
//! waits for it, and not failing batch after batch. `/health` and `/ready` ask it, so that a
//! dead or wedged thread gets the pod restarted instead of answering every request with 503
//! while the probes say all is well.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Consecutive failed batches after which the engine counts as broken (one failure can be a
/// bad input; three in a row with nothing succeeding in between is the engine).
pub const FAILING_BATCHES: u32 = 3;

/// The inference thread's vital signs, written by the thread and read by the probes.
pub struct InferenceHealth {
    epoch: Instant,
    alive: AtomicBool,
    /// Questions handed to the thread and not yet answered (or abandoned).
    waiting: AtomicUsize,
    /// Milliseconds after `epoch` of the last sign of progress: a batch finished, or work
    /// arriving at a thread that had none.
    last_progress_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    stall_timeout: Duration,
    ended: Notify,
}

/// What the probes conclude.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Alive, and either idle or making progress.
    Healthy,
    /// The thread has ended (panicked, or its engine could not go on).
    Stopped,
    /// Work waits and no batch has finished for this long.
    Stalled(Duration),
    /// The last batches all failed.
    Failing(u32),
}

impl Verdict {
    /// Why the service is unhealthy, in words; `None` when healthy.
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Healthy => None,
            Self::Stopped => Some("the inference thread has stopped".into()),
            Self::Stalled(for_how_long) => Some(format!(
                "work is waiting and no batch has finished for {} s",
                for_how_long.as_secs()
            )),
            Self::Failing(batches) => {
                Some(format!("the last {batches} inference batches all failed"))
            }
        }
    }
}

impl InferenceHealth {
    /// A healthy, idle thread; it counts as stalled when work waits `stall_timeout` without
    /// a batch finishing.
    pub fn new(stall_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            alive: AtomicBool::new(true),
            waiting: AtomicUsize::new(0),
            last_progress_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            stall_timeout,
            ended: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Counts one question as waiting until the returned guard is dropped (answered, failed
    /// or abandoned alike). Work arriving at an idle thread restarts the stall clock: an idle
    /// hour is not a stall.
    pub fn work_submitted(self: &Arc<Self>) -> WaitingGuard {
        if self.waiting.fetch_add(1, Ordering::SeqCst) == 0 {
            self.last_progress_ms.store(self.now_ms(), Ordering::SeqCst);
        }
        WaitingGuard(self.clone())
    }

    /// Records a finished batch.
    pub fn batch_finished(&self, succeeded: bool) {
        self.last_progress_ms.store(self.now_ms(), Ordering::SeqCst);
        if succeeded {
            self.consecutive_failures.store(0, Ordering::SeqCst);
        } else {
            self.consecutive_failures.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The current verdict.
    pub fn verdict(&self) -> Verdict {
        if !self.alive.load(Ordering::SeqCst) {
            return Verdict::Stopped;
        }
        let failures = self.consecutive_failures.load(Ordering::SeqCst);
        if failures >= FAILING_BATCHES {
            return Verdict::Failing(failures);
        }
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let since = self.last_progress_ms.load(Ordering::SeqCst);
            let quiet = Duration::from_millis(self.now_ms().saturating_sub(since));
            if quiet >= self.stall_timeout {
                return Verdict::Stalled(quiet);
            }
        }
        Verdict::Healthy
    }

    /// Marks the thread alive until the returned guard drops, which happens however the
    /// thread ends, panics included.
    pub fn thread_started(self: &Arc<Self>) -> AliveGuard {
        AliveGuard(self.clone())
    }

    /// Resolves once the inference thread has ended.
    pub async fn ended(&self) {
        let notified = self.ended.notified();
        if !self.alive.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

/// One waiting question; dropping it says the question no longer waits.
pub struct WaitingGuard(Arc<InferenceHealth>);

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Held by the inference thread for its whole life.
pub struct AliveGuard(Arc<InferenceHealth>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
        // Wakes every `ended()` future made before this point; later ones see `alive`.
        self.0.ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_is_healthy_however_long_and_waiting_work_stalls_without_progress() {
        let health = InferenceHealth::new(Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(health.verdict(), Verdict::Healthy, "idle is not a stall");
        let waiting = health.work_submitted();
        assert_eq!(health.verdict(), Verdict::Healthy);
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(health.verdict(), Verdict::Stalled(_)));
        health.batch_finished(true);
        assert_eq!(health.verdict(), Verdict::Healthy);
        drop(waiting);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(health.verdict(), Verdict::Healthy);
    }

    #[test]
    fn repeated_failures_and_a_dead_thread_are_unhealthy() {
        let health = InferenceHealth::new(Duration::from_secs(60));
        for _ in 0..FAILING_BATCHES - 1 {
            health.batch_finished(false);
        }
        assert_eq!(health.verdict(), Verdict::Healthy);
        health.batch_finished(false);
        assert_eq!(health.verdict(), Verdict::Failing(FAILING_BATCHES));
        health.batch_finished(true);
        assert_eq!(health.verdict(), Verdict::Healthy);
        let alive = health.thread_started();
        let thread = std::thread::spawn(move || {
            let _alive = alive;
            panic!("injected");
        });
        assert!(thread.join().is_err());
        assert_eq!(health.verdict(), Verdict::Stopped);
        assert!(health.verdict().problem().unwrap().contains("stopped"));
    }
}
