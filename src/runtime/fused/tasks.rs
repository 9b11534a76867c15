//! How the kernels' work runs: split into tasks on ONNX Runtime's intra-op threads, each
//! writing its own part of an output through one [`Shared`] pointer, and each at the widest
//! vector width this CPU has ([`run_widest`]), with loops written once in plain Rust whose
//! arithmetic does not depend on the width (so neither do the bits).

/// An output's first element, shared by the intra-op tasks, each writing its own elements.
pub struct Shared<T>(*mut T);

impl<T> Shared<T> {
    /// Shares the output whose first element is `first`.
    pub fn new(first: *mut T) -> Self {
        Self(first)
    }

    /// The element `at` elements past the first.
    ///
    /// # Safety
    /// `at` lies within the output.
    pub unsafe fn at(&self, at: usize) -> *mut T {
        self.0.add(at)
    }

    /// Elements `first..first + count`.
    ///
    /// # Safety
    /// They lie within the output, which outlives the slice, and no other live slice or
    /// pointer writes them.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, first: usize, count: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(first), count)
    }
}

// SAFETY: the tasks write disjoint elements through it (each kernel's `compute` splits them).
unsafe impl<T> Sync for Shared<T> {}
unsafe impl<T> Send for Shared<T> {}

/// One task's work, in loops the compiler vectorizes at whatever width the function it is
/// inlined into is compiled for. Implementations mark [`run`](Vectorized::run)
/// `#[inline(always)]`, so that it compiles inside [`run_widest`]'s width functions.
pub trait Vectorized {
    /// Does the work.
    fn run(self);
}

/// Runs `task` at AVX-512, AVX2 or baseline width, the widest this CPU has. Thread-local
/// scratch is borrowed by the caller, outside: a loop inside `LocalKey::with`'s closure is
/// compiled as part of that generic function, without the width's features (it ran at SSE
/// width, 3.5% of a loaded server's time on a Zen 4).
pub fn run_widest(task: impl Vectorized) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512 F, checked just above.
            return unsafe { avx512(task) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2(task) };
        }
    }
    task.run();
}

/// `task` compiled for AVX-512 F.
///
/// # Safety
/// The CPU has AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn avx512<T: Vectorized>(task: T) {
    task.run();
}

/// `task` compiled for AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn avx2<T: Vectorized>(task: T) {
    task.run();
}

/// A vector width the tests run a task at.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub enum Width {
    /// No vector extension past the baseline.
    Baseline,
    /// AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 F.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

#[cfg(test)]
impl Width {
    /// Every width this CPU has, baseline first, for the tests that check they give the same
    /// bits.
    pub fn every() -> Vec<Self> {
        let mut widths = vec![Self::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                widths.push(Self::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                widths.push(Self::Avx512);
            }
        }
        widths
    }

    /// Runs `task` at this width, which [`every`](Self::every) found on this CPU.
    pub fn run<T: Vectorized>(self, task: T) {
        match self {
            Self::Baseline => task.run(),
            // SAFETY: `every` lists only the widths this CPU has.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => unsafe { avx2(task) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => unsafe { avx512(task) },
        }
    }
}
