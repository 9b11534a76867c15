//! Who runs the next batch, as the inference thread sees it: the idle workers and the
//! lone-batch session. The cores are either all on the lone-batch session's one batch or
//! shared out among the workers' concurrent ones, never both: while that session runs, no
//! worker is handed a batch, and it is only chosen when every worker is idle.

use super::super::workers::{Work, Workers};

/// The workers and the lone-batch session, and which of them are free.
pub(super) struct Runners {
    /// Stopped and joined by [`Runners::stop`].
    workers: Workers,
    /// Workers with no batch, the most recently freed last.
    idle: Vec<usize>,
    /// Whether the lone-batch session is running a batch (the workers then wait).
    lone_busy: bool,
}

impl Runners {
    /// All of `workers` idle.
    pub(super) fn new(workers: Workers) -> Self {
        Self {
            idle: (0..workers.count()).rev().collect(),
            lone_busy: false,
            workers,
        }
    }

    /// A worker free to take a batch, taken out of the idle ones (to be [`assigned`] or
    /// [`released`] back); none while the lone-batch session runs.
    ///
    /// [`assigned`]: Runners::assign
    /// [`released`]: Runners::release
    pub(super) fn take_idle(&mut self) -> Option<usize> {
        if self.lone_busy {
            None
        } else {
            self.idle.pop()
        }
    }

    /// Whether no batch is running anywhere.
    pub(super) fn all_idle(&self) -> bool {
        !self.lone_busy && self.idle.len() == self.workers.count()
    }

    /// Who runs a batch taken for `worker`: the lone-batch session when there is one, every
    /// other worker is idle and `nothing_else` is queued or on its way, so that a batch that
    /// is all the work there is gets every core; else `worker` itself. A worker not chosen
    /// goes back to the idle ones.
    pub(super) fn assign(&mut self, worker: usize, nothing_else: bool) -> usize {
        let alone = nothing_else && self.idle.len() + 1 == self.workers.count();
        match self.workers.lone().filter(|_| alone) {
            Some(lone) => {
                self.idle.push(worker);
                self.lone_busy = true;
                lone
            }
            None => worker,
        }
    }

    /// Marks `runner` (a worker or the lone-batch session) free for the next batch.
    pub(super) fn release(&mut self, runner: usize) {
        if Some(runner) == self.workers.lone() {
            self.lone_busy = false;
        } else {
            self.idle.push(runner);
        }
    }

    /// The `worker` label of `runner` in the metrics: its index, or `lone`.
    pub(super) fn label(&self, runner: usize) -> String {
        match self.workers.lone() {
            Some(lone) if lone == runner => "lone".into(),
            _ => runner.to_string(),
        }
    }

    /// Hands `work` to `runner`; false when it has ended.
    pub(super) fn send(&self, runner: usize, work: Work) -> bool {
        self.workers.send(runner, work)
    }

    /// Ends every worker and the lone-batch session once their batches are done.
    pub(super) fn stop(&mut self) {
        self.workers.stop();
    }
}
