//! Plain-Rust loops compiled at the widest vectors this CPU has (AVX-512, AVX2 or the
//! baseline), picked at run time: written once, with arithmetic that does not depend on the
//! width, so every CPU gets the same bits at its own speed. Used by the fused inference
//! kernels and by training's optimizer.

/// One task's work, in loops the compiler vectorizes at whatever width the function it is
/// inlined into is compiled for. Implementations mark [`run`](Vectorized::run)
/// `#[inline(always)]`, so that it compiles inside [`run_widest`]'s width functions.
pub trait Vectorized {
    /// Does the work.
    fn run(self);
}

/// Runs `task` at AVX-512, AVX2 (with FMA) or baseline width, the widest this CPU has. Thread-local
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
        if has_avx2_and_fma() {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
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

/// Whether the AVX2 width can run here: with FMA, which every AVX2 CPU seen has and which
/// AVX-512 F implies, so an explicit `mul_add` (exactly rounded: the same bits at every
/// width) is one instruction at both vector widths rather than a call into libm.
#[cfg(target_arch = "x86_64")]
fn has_avx2_and_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `task` compiled for AVX2 with FMA. The compiler fuses no product and sum of its own (Rust
/// does not contract floating point), so only an explicit `mul_add` becomes an FMA.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn avx2<T: Vectorized>(task: T) {
    task.run();
}

/// A vector width the tests run a task at.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub enum Width {
    /// No vector extension past the baseline.
    Baseline,
    /// AVX2 with FMA.
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
            if has_avx2_and_fma() {
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
