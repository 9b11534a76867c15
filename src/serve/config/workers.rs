//! How `bertqa serve` shares the cores out: inference workers, their threads, the lone-batch
//! session and the batch size that suits them, each the flag's value or a default measured
//! on the CPUs bench/RESULTS.md names ("Inference workers").

use std::time::Duration;

use super::ServeConfig;
use crate::runtime::cpu::cores;
use crate::runtime::engine::DeviceKind;
use crate::serve::queue::BatchBudget;

/// Default `--max-batch-size` on CPU for workers with several threads: under load on the CPU
/// measured, one 2-thread worker ran it ahead of 1, 8, 16 and 32 and level with 2
/// (bench/RESULTS.md, "Small batches on CPU"). 1-thread workers run one window at a time.
const DEFAULT_CPU_MAX_BATCH_SIZE: usize = 4;
/// Default `--max-batch-size` on CUDA, where large batches are what fills the device.
const DEFAULT_CUDA_MAX_BATCH_SIZE: usize = 32;

/// Most workers started without `--workers`: each holds its own activation arena, and more
/// than 4 is unmeasured (with more cores, each of the 4 gets several threads).
const MAX_DEFAULT_WORKERS: usize = 4;

impl ServeConfig {
    /// Most windows in one batch: the flag, else the device's default; on CPU one window
    /// when each worker has one thread, as a batch only pads windows to its longest and
    /// shares nothing a single thread could use (two 1-thread workers on an Intel AMX Xeon:
    /// 1.09-1.14x the questions per second of batches of 4 at 8-256 clients,
    /// bench/RESULTS.md, "Inference workers").
    pub fn max_batch_size(&self) -> usize {
        self.max_batch_size.unwrap_or(match self.device {
            DeviceKind::Cpu if self.threads_per_worker().unwrap_or_else(cores) == 1 => 1,
            DeviceKind::Cpu => DEFAULT_CPU_MAX_BATCH_SIZE,
            DeviceKind::Cuda => DEFAULT_CUDA_MAX_BATCH_SIZE,
        })
    }

    /// The limits of one inference batch these flags set.
    pub fn batch_budget(&self) -> BatchBudget {
        BatchBudget {
            max_windows: self.max_batch_size(),
            max_tokens: self.max_batch_tokens,
            max_delay: Duration::from_millis(self.max_batch_delay_ms),
        }
    }

    /// Inference workers: the flag, else on CPU one per core up to [`MAX_DEFAULT_WORKERS`],
    /// on CUDA one (a GPU runs one batch at a time anyway). On 2-core AMD Zen 4 and Intel
    /// Sapphire Rapids hosts two 1-thread workers answered 8-64 clients 1.1-1.7x faster than
    /// one 2-thread worker (a Zen 5 was the exception, bench/RESULTS.md), and with the
    /// lone-batch session one client is served as fast as by one worker.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| match self.device {
            DeviceKind::Cpu => cores().min(MAX_DEFAULT_WORKERS),
            DeviceKind::Cuda => 1,
        })
    }

    /// Intra-op threads of each worker's session: the flag, else the cores shared out among
    /// the workers (at least one each), else with one worker ONNX Runtime's own default (all
    /// cores), so that workers never add up to more threads than cores unless asked to.
    pub fn threads_per_worker(&self) -> Option<usize> {
        let workers = self.workers();
        self.threads
            .or_else(|| (workers > 1).then(|| (cores() / workers).max(1)))
    }

    /// The lone-batch session's threads, or None for no such session: the flag (0: none),
    /// else all cores when several workers on CPU each have fewer; one worker already has
    /// them all.
    pub fn lone_batch_threads(&self) -> Option<usize> {
        let cores = cores();
        match self.lone_batch_threads {
            Some(0) => None,
            Some(threads) => Some(threads),
            None => (self.device == DeviceKind::Cpu
                && self.workers() > 1
                && self.threads_per_worker().unwrap_or(cores) < cores)
                .then_some(cores),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::config::tests::parse;

    #[test]
    fn workers_share_the_cores_unless_threads_are_given() {
        let default = parse(&[]);
        assert_eq!(default.workers(), cores().min(MAX_DEFAULT_WORKERS));
        let expected = (cores() > 1).then(|| cores() / default.workers());
        assert_eq!(default.threads_per_worker(), expected);
        assert_eq!(parse(&["--workers", "1"]).threads_per_worker(), None);
        assert_eq!(parse(&["--device", "cuda"]).workers(), 1);
        assert_eq!(
            parse(&["--workers", "2"]).threads_per_worker(),
            Some((cores() / 2).max(1))
        );
        assert_eq!(
            parse(&["--workers", "64"]).threads_per_worker(),
            Some(1),
            "never less than one thread"
        );
        let explicit = parse(&["--workers", "2", "--threads-per-worker", "3"]);
        assert_eq!(explicit.threads_per_worker(), Some(3));
    }

    #[test]
    fn a_lone_batch_session_joins_workers_that_each_have_fewer_than_all_cores() {
        let all = cores();
        let expected = (all > 1).then_some(all);
        assert_eq!(parse(&[]).lone_batch_threads(), expected);
        assert_eq!(parse(&["--workers", "3"]).lone_batch_threads(), Some(all));
        let threads = all.to_string();
        let full = ["--workers", "2", "--threads", &threads];
        assert_eq!(parse(&full).lone_batch_threads(), None, "workers have all");
        assert_eq!(parse(&["--workers", "1"]).lone_batch_threads(), None);
        let cuda = ["--device", "cuda", "--workers", "2"];
        assert_eq!(parse(&cuda).lone_batch_threads(), None);
        let off = ["--workers", "2", "--lone-batch-threads", "0"];
        assert_eq!(parse(&off).lone_batch_threads(), None);
        let set = ["--workers", "1", "--lone-batch-threads", "3"];
        assert_eq!(parse(&set).lone_batch_threads(), Some(3));
    }

    #[test]
    fn batches_are_small_on_cpu_and_large_on_cuda_unless_set() {
        let one_worker = parse(&["--workers", "1", "--threads", "2"]);
        assert_eq!(one_worker.max_batch_size(), DEFAULT_CPU_MAX_BATCH_SIZE);
        let one_thread = parse(&["--workers", "2", "--threads", "1"]);
        assert_eq!(
            one_thread.max_batch_size(),
            1,
            "one window per 1-thread batch"
        );
        let cuda = parse(&["--device", "cuda"]);
        assert_eq!(cuda.max_batch_size(), DEFAULT_CUDA_MAX_BATCH_SIZE);
        assert_eq!(cuda.batch_budget().max_windows, DEFAULT_CUDA_MAX_BATCH_SIZE);
        let set = parse(&["--device", "cuda", "--max-batch-size", "7"]);
        assert_eq!(set.batch_budget().max_windows, 7);
    }
}
