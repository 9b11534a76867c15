//! Independent parts of a Rust loop run on libtorch's own OpenMP threads.
//!
//! The dropout masks and the AdamW pass are Rust loops on the thread that runs the training
//! step. While they ran, libtorch's other OpenMP threads spun at their barrier: on a 2-core
//! Zen 5 the two loops were 6% of an fp32 step's time on the main thread and none on the
//! other. Threads of bertqa's own would compete with those spinning workers for the same
//! cores, so the parts run on libtorch's team itself, through `GOMP_parallel` (the call
//! `#pragma omp parallel` compiles to in GNU's OpenMP ABI: libgomp, which libtorch links, and
//! Intel's and LLVM's runtimes export it too), looked up at run time. Where no OpenMP runtime
//! is loaded the parts run one after another on the calling thread. Either way each part's
//! result is the same: callers split work whose elements do not depend on one another.

use std::any::Any;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// `GOMP_parallel(fn, data, num_threads, flags)`: runs `fn(data)` on a team of threads and
/// returns when all have finished.
type Parallel = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);

/// `omp_get_max_threads()`: the team size the calling thread's next parallel region gets
/// (what `tch::set_num_threads` set).
type MaxThreads = unsafe extern "C" fn() -> c_int;

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// The OpenMP runtime's two entry points, from whichever loaded library defines them.
#[derive(Clone, Copy)]
struct Runtime {
    parallel: Parallel,
    max_threads: MaxThreads,
}

fn runtime() -> Option<Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    *RUNTIME.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT (a null handle in glibc) only reads the loaded
        // libraries' symbol tables. Both symbols are the OpenMP ABI's functions with exactly
        // the signatures transmuted to.
        unsafe {
            let parallel = dlsym(std::ptr::null_mut(), c"GOMP_parallel".as_ptr());
            let max_threads = dlsym(std::ptr::null_mut(), c"omp_get_max_threads".as_ptr());
            (!parallel.is_null() && !max_threads.is_null()).then(|| Runtime {
                parallel: std::mem::transmute::<*mut c_void, Parallel>(parallel),
                max_threads: std::mem::transmute::<*mut c_void, MaxThreads>(max_threads),
            })
        }
    })
}

/// How many threads a parallel region started from this thread would get: 1 without an
/// OpenMP runtime.
pub fn threads() -> usize {
    // SAFETY: omp_get_max_threads takes nothing and only reads the thread's settings.
    runtime().map_or(1, |r| unsafe { (r.max_threads)() }.max(1) as usize)
}

/// The fewest elements worth a thread of their own, for the loops split here (a mask's
/// elements, a parameter's floats): well above the cost of waking the team.
pub const MIN_PART: usize = 1 << 16;

/// `0..len` cut into at most [`threads`] consecutive ranges of at least [`MIN_PART`] elements
/// (the last may be a few `align`s short), each starting at a multiple of `align`: one range
/// when `len` is too short to share, none when it is 0.
pub fn ranges(len: usize, align: usize) -> Vec<Range<usize>> {
    let parts = threads().min(len / MIN_PART).max(1);
    let step = len.div_ceil(parts).div_ceil(align) * align;
    (0..len)
        .step_by(step.max(1))
        .map(|start| start..(start + step).min(len))
        .collect()
}

/// `data` cut at the ends of `ranges` (consecutive ranges covering it from 0, as [`ranges`]
/// gives), as disjoint slices.
pub fn split_mut<'a, T>(mut data: &'a mut [T], ranges: &[Range<usize>]) -> Vec<&'a mut [T]> {
    let mut parts = Vec::with_capacity(ranges.len());
    for range in ranges {
        let (part, rest) = std::mem::take(&mut data).split_at_mut(range.len());
        parts.push(part);
        data = rest;
    }
    parts
}

/// One parallel region's shared state: the parts not yet claimed, the work, and the first
/// panic a thread caught.
struct Job<'a, P> {
    parts: Vec<Mutex<Option<P>>>,
    next: AtomicUsize,
    work: &'a (dyn Fn(P) + Sync),
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl<P> Job<'_, P> {
    /// Claims and runs parts until none is left; a panic is kept for the caller, as it must
    /// not unwind into the OpenMP runtime's C frames.
    fn run(&self) {
        let claimed = || loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = self.parts.get(i) else {
                return;
            };
            let part = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(part) = part {
                (self.work)(part);
            }
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(claimed)) {
            let mut panic = self.panic.lock().unwrap_or_else(PoisonError::into_inner);
            panic.get_or_insert(payload);
        }
    }
}

extern "C" fn run_job<P>(job: *mut c_void) {
    // SAFETY: `run_parts` passes a `Job<P>` that outlives the parallel region.
    unsafe { &*job.cast::<Job<P>>() }.run();
}

/// Runs `work` on every part, spread over libtorch's OpenMP threads, and returns when all are
/// done (re-raising a part's panic here).
pub fn run_parts<P: Send>(parts: Vec<P>, work: impl Fn(P) + Sync) {
    let team = threads().min(parts.len());
    let Some(runtime) = runtime().filter(|_| team > 1) else {
        parts.into_iter().for_each(work);
        return;
    };
    let job = Job {
        parts: parts.into_iter().map(|p| Mutex::new(Some(p))).collect(),
        next: AtomicUsize::new(0),
        work: &work,
        panic: Mutex::new(None),
    };
    let data = std::ptr::from_ref(&job).cast_mut().cast::<c_void>();
    // SAFETY: `run_job::<P>` reads `data` as the `Job<P>` it is, which lives until
    // GOMP_parallel returns, after every thread of the team has finished.
    unsafe { (runtime.parallel)(run_job::<P>, data, team as c_uint, 0) };
    if let Some(payload) = job
        .panic
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        resume_unwind(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once_at_aligned_starts() {
        tch::set_num_threads(3);
        let long = 3 * MIN_PART + 1_000;
        for (len, align) in [
            (0, 32),
            (10, 32),
            (MIN_PART + 7, 32),
            (long, 32),
            (long, 64),
        ] {
            let ranges = ranges(len, align);
            assert!(ranges.len() <= 3, "{len}: {ranges:?}");
            let mut next = 0;
            for r in &ranges {
                assert_eq!(r.start, next, "{len}: {ranges:?}");
                assert_eq!(r.start % align, 0);
                next = r.end;
            }
            assert_eq!(next, len);
        }
        assert_eq!(ranges(2 * MIN_PART - 1, 32).len(), 1);
        assert_eq!(ranges(long, 32).len(), 3);
    }

    #[test]
    fn every_part_runs_once() {
        tch::set_num_threads(2);
        let mut data: Vec<u64> = vec![0; 2 * MIN_PART + 100];
        let cuts = ranges(data.len(), 32);
        assert_eq!(cuts.len(), 2);
        let starts = cuts.iter().map(|r| r.start);
        let parts: Vec<(usize, &mut [u64])> = starts.zip(split_mut(&mut data, &cuts)).collect();
        run_parts(parts, |(start, part)| {
            for (i, x) in part.iter_mut().enumerate() {
                *x += (start + i) as u64;
            }
        });
        assert!(data.iter().enumerate().all(|(i, &x)| x == i as u64));
    }

    /// Each of two parts waits for the other to start: only two threads at once can finish.
    #[test]
    fn parts_run_at_the_same_time_on_the_team() {
        tch::set_num_threads(2);
        let started = AtomicUsize::new(0);
        let met = AtomicUsize::new(0);
        run_parts(vec![0, 1], |_| {
            started.fetch_add(1, Ordering::SeqCst);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while started.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
                std::hint::spin_loop();
            }
            if started.load(Ordering::SeqCst) == 2 {
                met.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert_eq!(met.into_inner(), 2);
    }

    #[test]
    fn a_part_that_panics_panics_the_caller() {
        tch::set_num_threads(2);
        let caught = catch_unwind(|| run_parts(vec![1, 2], |p| assert_ne!(p, 2, "part {p}")));
        assert!(caught.is_err());
    }
}
