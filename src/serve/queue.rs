//! The batching decision as a pure function over the waiting windows: which windows run
//! next, or how long to wait for company. No threads or clocks of its own, so every rule is
//! unit-tested directly; [`super::batcher`] drives it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Who is waiting: interactive `/answer` windows always go before `/evaluate`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A client waits on this answer.
    Interactive,
    /// Bulk work (an evaluation) that fills the gaps.
    Background,
}

/// Most padded tokens a batch may hold per real token before it stops taking longer
/// windows: a window padded to twice its length costs twice its compute, while a CPU runs a
/// smaller batch of similar lengths nearly as fast per token. 1.25 padded per real token.
pub const MAX_PADDING_RATIO: PaddingRatio = PaddingRatio { padded: 5, real: 4 };

/// A bound on padded tokens per real token, as a fraction so the check stays in integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaddingRatio {
    /// Padded tokens allowed ...
    pub padded: usize,
    /// ... per this many real ones.
    pub real: usize,
}

impl PaddingRatio {
    /// Whether `padded` tokens for `real` real ones stay within the ratio.
    pub fn allows(self, padded: usize, real: usize) -> bool {
        padded * self.real <= real * self.padded
    }
}

/// Limits of one inference batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchBudget {
    /// Most windows.
    pub max_windows: usize,
    /// Most padded tokens (windows x longest window).
    pub max_tokens: usize,
    /// How long the oldest window may wait for a fuller batch.
    pub max_delay: Duration,
}

impl BatchBudget {
    /// The batch shapes (windows, tokens per window) that bound every tensor of a batch this
    /// budget admits for windows of at most `max_seq_len` tokens: the most windows of the
    /// longest length (attention scores grow with windows x length²) and, when different,
    /// the most windows at the length that spends the whole token budget (per-token tensors
    /// grow with windows x length).
    pub fn largest_shapes(&self, max_seq_len: usize) -> Vec<(usize, usize)> {
        let longest = max_seq_len.min(self.max_tokens).max(1);
        let at_longest = (self.max_tokens / longest).clamp(1, self.max_windows.max(1));
        let mut shapes = vec![(at_longest, longest)];
        let widest = self.max_windows.max(1);
        let length = (self.max_tokens / widest).min(longest);
        if widest > at_longest && length > 0 {
            shapes.push((widest, length));
        }
        shapes
    }
}

/// Whether more windows are on their way: requests admitted whose windows are still being
/// parsed or tokenized. Waiting for company only pays when some is coming; a lone client's
/// window otherwise waits the whole delay for nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Company {
    /// Some requests are between admission and the queue.
    Coming,
    /// None are: what is queued is all there will be for now.
    NoneComing,
}

/// What the batcher should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<T> {
    /// Run these items now (in this order).
    Run(Vec<T>),
    /// Nothing worth running yet: wait for more work until this instant, then decide again.
    WaitUntil(Instant),
    /// Nothing is waiting.
    Idle,
}

#[derive(Debug)]
struct Waiting<T> {
    item: T,
    tokens: usize,
    since: Instant,
}

/// Windows waiting for inference, by priority, each in arrival order.
#[derive(Debug)]
pub struct WindowQueue<T> {
    interactive: VecDeque<Waiting<T>>,
    background: VecDeque<Waiting<T>>,
}

impl<T> Default for WindowQueue<T> {
    fn default() -> Self {
        Self {
            interactive: VecDeque::new(),
            background: VecDeque::new(),
        }
    }
}

impl<T> WindowQueue<T> {
    /// Adds one window of `tokens` tokens that arrived at `since`.
    pub fn push(&mut self, priority: Priority, item: T, tokens: usize, since: Instant) {
        let waiting = Waiting {
            item,
            tokens,
            since,
        };
        match priority {
            Priority::Interactive => self.interactive.push_back(waiting),
            Priority::Background => self.background.push_back(waiting),
        }
    }

    /// Windows waiting.
    pub fn len(&self) -> usize {
        self.interactive.len() + self.background.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the items `keep` rejects (windows of requests whose client went away) and
    /// returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let before = self.len();
        self.interactive.retain(|w| keep(&w.item));
        self.background.retain(|w| keep(&w.item));
        before - self.len()
    }

    /// Decides the next batch: interactive windows first, then background ones, in arrival
    /// order, while both budgets hold and padding stays within [`MAX_PADDING_RATIO`]. The
    /// batch runs at once when it is full, when no company is coming, or when its oldest
    /// window has waited `max_delay`; otherwise the batcher waits for company.
    pub fn decide(&mut self, now: Instant, budget: &BatchBudget, company: Company) -> Decision<T> {
        let oldest = self
            .interactive
            .front()
            .into_iter()
            .chain(self.background.front())
            .map(|w| w.since)
            .min();
        let Some(oldest) = oldest else {
            return Decision::Idle;
        };
        let (mut from_interactive, mut longest, mut full) = (0, 0, false);
        let order = self.interactive.iter().chain(self.background.iter());
        let (mut taken, mut real) = (0, 0);
        for (i, waiting) in order.enumerate() {
            let widest = longest.max(waiting.tokens);
            let padded = (taken + 1) * widest;
            let fits = taken < budget.max_windows.max(1)
                && (taken == 0
                    || (padded <= budget.max_tokens
                        && MAX_PADDING_RATIO.allows(padded, real + waiting.tokens)));
            if !fits {
                full = true;
                break;
            }
            taken += 1;
            real += waiting.tokens;
            longest = widest;
            if i < self.interactive.len() {
                from_interactive += 1;
            }
        }
        full |= taken == budget.max_windows.max(1);
        let deadline = oldest + budget.max_delay;
        if !full && company == Company::Coming && now < deadline {
            return Decision::WaitUntil(deadline);
        }
        let mut batch: Vec<T> = self
            .interactive
            .drain(..from_interactive)
            .map(|w| w.item)
            .collect();
        batch.extend(
            self.background
                .drain(..taken - from_interactive)
                .map(|w| w.item),
        );
        Decision::Run(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_windows: usize, max_tokens: usize, delay_ms: u64) -> BatchBudget {
        BatchBudget {
            max_windows,
            max_tokens,
            max_delay: Duration::from_millis(delay_ms),
        }
    }

    #[test]
    fn the_largest_shapes_bound_both_windows_and_tokens() {
        // The defaults: 8,192 tokens, 32 windows, 384-token windows.
        assert_eq!(
            budget(32, 8192, 2).largest_shapes(384),
            vec![(21, 384), (32, 256)]
        );
        // Few windows allowed: every one can be of the longest length.
        assert_eq!(budget(8, 8192, 2).largest_shapes(384), vec![(8, 384)]);
        // A budget of exactly one longest window.
        assert_eq!(
            budget(32, 384, 2).largest_shapes(384),
            vec![(1, 384), (32, 12)]
        );
    }

    #[test]
    fn an_empty_queue_is_idle() {
        let mut queue: WindowQueue<u32> = WindowQueue::default();
        assert_eq!(
            queue.decide(Instant::now(), &budget(4, 100, 5), Company::Coming),
            Decision::Idle
        );
    }

    #[test]
    fn a_lone_window_waits_for_company_until_its_deadline() {
        let t0 = Instant::now();
        let mut queue = WindowQueue::default();
        queue.push(Priority::Interactive, 1, 10, t0);
        let b = budget(4, 100, 5);
        assert_eq!(
            queue.decide(t0, &b, Company::Coming),
            Decision::WaitUntil(t0 + Duration::from_millis(5))
        );
        assert_eq!(
            queue.decide(t0 + Duration::from_millis(5), &b, Company::Coming),
            Decision::Run(vec![1])
        );
        assert!(queue.is_empty());
    }

    #[test]
    fn a_full_batch_runs_at_once_and_leaves_the_rest() {
        let t0 = Instant::now();
        let mut queue = WindowQueue::default();
        for i in 0..5 {
            queue.push(Priority::Interactive, i, 10, t0);
        }
        assert_eq!(
            queue.decide(t0, &budget(4, 100, 1000), Company::Coming),
            Decision::Run(vec![0, 1, 2, 3])
        );
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn the_token_budget_counts_padding_to_the_longest_window() {
        let t0 = Instant::now();
        let mut queue = WindowQueue::default();
        queue.push(Priority::Interactive, 0, 30, t0);
        queue.push(Priority::Interactive, 1, 40, t0);
        queue.push(Priority::Interactive, 2, 30, t0);
        // 2 x 40 = 80 fits, 3 x 40 = 120 does not.
        assert_eq!(
            queue.decide(t0, &budget(8, 100, 1000), Company::Coming),
            Decision::Run(vec![0, 1])
        );
    }

    #[test]
    fn a_batch_stops_before_padding_outgrows_its_real_tokens() {
        let t0 = Instant::now();
        let mut queue = WindowQueue::default();
        for (i, tokens) in [100, 110, 120, 300, 310].into_iter().enumerate() {
            queue.push(Priority::Interactive, i, tokens, t0);
        }
        // 4 x 300 = 1200 padded for 630 real tokens: the long windows go in the next batch.
        let b = budget(8, 100_000, 1000);
        assert_eq!(
            queue.decide(t0, &b, Company::Coming),
            Decision::Run(vec![0, 1, 2])
        );
        assert_eq!(
            queue.decide(t0, &b, Company::Coming),
            Decision::WaitUntil(t0 + Duration::from_secs(1))
        );
        assert_eq!(
            queue.decide(t0 + Duration::from_secs(1), &b, Company::Coming),
            Decision::Run(vec![3, 4])
        );
    }

    #[test]
    fn a_window_longer_than_the_budget_still_runs_alone() {
        let t0 = Instant::now();
        let mut queue = WindowQueue::default();
        queue.push(Priority::Interactive, 0, 500, t0);
        queue.push(Priority::Interactive, 1, 10, t0);
        assert_eq!(
            queue.decide(t0, &budget(8, 100, 1000), Company::Coming),
            Decision::Run(vec![0])
        );
    }

    #[test]
    fn interactive_windows_overtake_background_ones() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(1);
        let mut queue = WindowQueue::default();
        for i in 0..3 {
            queue.push(Priority::Background, 100 + i, 10, t0);
        }
        queue.push(Priority::Interactive, 1, 10, later);
        assert_eq!(
            queue.decide(later, &budget(2, 1000, 0), Company::Coming),
            Decision::Run(vec![1, 100])
        );
        assert_eq!(
            queue.decide(later, &budget(2, 1000, 0), Company::Coming),
            Decision::Run(vec![101, 102])
        );
    }

    #[test]
    fn the_oldest_window_of_either_priority_sets_the_deadline() {
        let t0 = Instant::now();
        let mut queue = WindowQueue::default();
        queue.push(Priority::Background, 7, 10, t0);
        queue.push(Priority::Interactive, 1, 10, t0 + Duration::from_millis(3));
        assert_eq!(
            queue.decide(
                t0 + Duration::from_millis(3),
                &budget(8, 1000, 5),
                Company::Coming
            ),
            Decision::WaitUntil(t0 + Duration::from_millis(5))
        );
    }

    #[test]
    fn a_lone_window_runs_at_once_when_no_company_is_coming() {
        let t0 = Instant::now();
        let mut queue = WindowQueue::default();
        queue.push(Priority::Interactive, 1, 10, t0);
        let b = budget(8, 1000, 5);
        assert_eq!(
            queue.decide(t0, &b, Company::Coming),
            Decision::WaitUntil(t0 + Duration::from_millis(5))
        );
        assert_eq!(
            queue.decide(t0, &b, Company::NoneComing),
            Decision::Run(vec![1])
        );
    }

    #[test]
    fn retain_drops_abandoned_windows() {
        let t0 = Instant::now();
        let mut queue = WindowQueue::default();
        for i in 0..4 {
            queue.push(Priority::Interactive, i, 10, t0);
            queue.push(Priority::Background, 10 + i, 10, t0);
        }
        assert_eq!(queue.retain(|&i| i % 2 == 0), 4);
        assert_eq!(
            queue.decide(t0, &budget(8, 1000, 0), Company::Coming),
            Decision::Run(vec![0, 2, 10, 12])
        );
    }
}
