//! The service's queue as a backend of the one prediction path, for evaluations: each group
//! of windows is sent to the inference thread at background priority, a few groups ahead, and
//! waited for from the blocking pool until the evaluation is cancelled.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use super::super::batcher::{BatcherHandle, Inferred};
use super::super::error::ApiError;
use super::super::queue::Priority;
use super::run::Cancel;
use crate::pipeline::predict::WindowBackend;
use crate::qa::decode::WindowLogits;
use crate::qa::features::Window;

/// The service's queue as a backend of the one prediction path: each group of windows is
/// sent to the inference thread at background priority and waited for from the blocking
/// pool, until the evaluation is cancelled.
pub(super) struct QueueBackend {
    batcher: BatcherHandle,
    runtime: tokio::runtime::Handle,
    cancel: Cancel,
    _only_one: OwnedSemaphorePermit,
}

/// Groups an evaluation keeps submitted at once: the next one is queued while the workers
/// run the current one, so they never wait for the evaluation thread between groups.
const GROUPS_IN_FLIGHT: usize = 2;

/// Submitted groups, in order; dropped early (an error, a cancellation), it aborts them, and
/// the batcher then drops their windows unrun.
struct InFlight(VecDeque<JoinHandle<Result<Inferred, ApiError>>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl QueueBackend {
    /// A backend on `batcher`, blocking on `runtime`, that stops at `cancel` and holds the
    /// one-evaluation permit `only_one` for as long as it lives.
    pub(super) fn new(
        batcher: BatcherHandle,
        runtime: tokio::runtime::Handle,
        cancel: Cancel,
        only_one: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            batcher,
            runtime,
            cancel,
            _only_one: only_one,
        }
    }

    fn cancelled() -> ApiError {
        ApiError::Internal("the evaluation was cancelled".into())
    }

    /// Queues `group` at background priority; its logits are awaited by [`Self::wait`].
    fn submit(&self, group: &[&Window]) -> JoinHandle<Result<Inferred, ApiError>> {
        let windows = Arc::new(group.iter().map(|w| (*w).clone()).collect());
        let batcher = self.batcher.clone();
        self.runtime
            .spawn(async move { batcher.infer(windows, Priority::Background).await })
    }

    /// The logits of a submitted group, unless the evaluation is cancelled first.
    fn wait(
        &self,
        task: &mut JoinHandle<Result<Inferred, ApiError>>,
    ) -> Result<Vec<WindowLogits>, ApiError> {
        let cancel = self.cancel.clone();
        self.runtime.block_on(async move {
            tokio::select! {
                joined = task => joined
                    .map_err(|e| ApiError::Internal(format!("evaluation group: {e}")))?
                    .map(|inferred| inferred.logits),
                () = cancel.cancelled() => Err(Self::cancelled()),
            }
        })
    }
}

impl WindowBackend for QueueBackend {
    type Error = ApiError;

    fn run(&mut self, group: &[&Window]) -> Result<Vec<WindowLogits>, ApiError> {
        let mut all = self.run_groups(&[group.to_vec()], &mut |_| {})?;
        Ok(all.pop().unwrap_or_default())
    }

    fn run_groups(
        &mut self,
        groups: &[Vec<&Window>],
        done: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<WindowLogits>>, ApiError> {
        let mut in_flight = InFlight(VecDeque::with_capacity(GROUPS_IN_FLIGHT));
        let mut answered = Vec::with_capacity(groups.len());
        let mut next = groups.iter();
        loop {
            while in_flight.0.len() < GROUPS_IN_FLIGHT {
                let Some(group) = next.next() else { break };
                if self.cancel.is_cancelled() {
                    return Err(Self::cancelled());
                }
                in_flight.0.push_back(self.submit(group));
            }
            let Some(mut task) = in_flight.0.pop_front() else {
                return Ok(answered);
            };
            let rows = self.wait(&mut task);
            task.abort();
            let rows = rows?;
            done(rows.len());
            answered.push(rows);
        }
    }
}
