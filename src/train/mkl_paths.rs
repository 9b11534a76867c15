//! Which of MKL's kernels libtorch's fp32 matrix products run. MKL, linked into libtorch's CPU
//! library, asks `mkl_serv_intel_cpu_true` before it looks at the instruction sets, and on a
//! CPU not made by Intel it takes its generic path: AVX2 kernels, even where the CPU has
//! AVX-512. On a Zen 5 that kernel was 74% of an fp32 training step; letting MKL take its
//! AVX-512 path there made fp32 training 1.7-2.0x faster (bench/RESULTS.md, "Training"). The
//! `finetune` binary answers that question with [`intel_paths_allowed`] by exporting the
//! symbol, which the dynamic linker binds ahead of libtorch's own. bf16 products go through
//! oneDNN, which dispatches on the instruction sets alone, and do not change.

use std::sync::OnceLock;

use crate::runtime::cpu::CpuFeatures;

/// Set to `off` to keep MKL's own vendor check (its AVX2 path on AMD): to compare the two, or
/// should a later MKL misbehave on a CPU it does not expect.
pub const SETTING: &str = "BERTQA_MKL_AVX512_ON_AMD";

/// What the answer depends on, read once from the CPU and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    /// CPUID's vendor string is "GenuineIntel": MKL's own answer.
    intel: bool,
    /// The AVX-512 subsets MKL's AVX-512 kernels use: F, CD, BW, DQ and VL (Zen 4 and later).
    avx512_core: bool,
    /// [`SETTING`] is `off`.
    kept_off: bool,
}

/// Whether MKL may take the paths it keeps for Intel CPUs: on Intel, as MKL itself would say;
/// on another vendor's CPU with AVX-512 (F, CD, BW, DQ, VL), unless [`SETTING`] is `off`;
/// nowhere else, so a Zen 3 (AVX2 only) keeps MKL's Zen kernels.
pub fn intel_paths_allowed() -> bool {
    allowed(facts())
}

/// Whether this process changes MKL's own answer (another vendor's AVX-512 CPU): worth a line
/// at start, as fp32 runs then take other kernels than a stock libtorch would.
pub fn overrides_mkl() -> bool {
    let facts = facts();
    allowed(facts) && !facts.intel
}

fn facts() -> Facts {
    static FACTS: OnceLock<Facts> = OnceLock::new();
    *FACTS.get_or_init(|| {
        let cpu = CpuFeatures::detect();
        Facts {
            intel: cpu.intel,
            avx512_core: cpu.avx512_core,
            kept_off: std::env::var(SETTING).is_ok_and(|value| value.eq_ignore_ascii_case("off")),
        }
    })
}

fn allowed(facts: Facts) -> bool {
    facts.intel || (facts.avx512_core && !facts.kept_off)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(intel: bool, avx512_core: bool, kept_off: bool) -> Facts {
        Facts {
            intel,
            avx512_core,
            kept_off,
        }
    }

    #[test]
    fn intel_keeps_mkls_own_answer_whatever_the_setting() {
        for (avx512, off) in [(false, false), (true, false), (true, true), (false, true)] {
            assert!(allowed(facts(true, avx512, off)));
        }
    }

    #[test]
    fn another_vendors_avx512_cpu_gets_the_avx512_paths_unless_kept_off() {
        assert!(allowed(facts(false, true, false)));
        assert!(!allowed(facts(false, true, true)));
    }

    #[test]
    fn a_cpu_without_avx512_keeps_mkls_generic_path() {
        assert!(!allowed(facts(false, false, false)));
    }
}
