//! The CPU's instruction sets (and vendor) that change which kernels ONNX Runtime (MLAS) and
//! libtorch (oneDNN, MKL) run, and with them the speed and, for int8 graphs that are not
//! pair-bounded, the answers: u8 × s8 products accumulate in 32 bits with VNNI or AMX, but in
//! saturating 16-bit lanes with plain AVX2 or AVX-512 (`onnx::quantize`). Detected once,
//! logged at start-up, so every figure and every bug report can say which CPU class it came
//! from.

use std::sync::OnceLock;

/// Cores this process may use (1 when the system cannot tell): the default for every thread
/// count that follows the machine (ONNX Runtime's intra-op threads, the serving pools).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The x86-64 extensions that matter for BERT inference and training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// 256-bit integer and float vectors: ONNX Runtime's baseline fast path.
    pub avx2: bool,
    /// 512-bit vectors.
    pub avx512f: bool,
    /// 512-bit int8 dot products with 32-bit accumulation (`VPDPBUSD`).
    pub avx512_vnni: bool,
    /// The same dot products on 256-bit vectors (Alder Lake, Zen 5).
    pub avx_vnni: bool,
    /// bf16 dot products on 512-bit vectors: fast bf16 training without AMX.
    pub avx512_bf16: bool,
    /// AMX tiles with int8 products.
    pub amx_int8: bool,
    /// AMX tiles with bf16 products.
    pub amx_bf16: bool,
    /// AVX-512 F, CD, BW, DQ and VL together (Skylake-SP, Zen 4 and later): the subsets
    /// MKL's AVX-512 kernels use (`train::mkl_paths`).
    pub avx512_core: bool,
    /// Made by Intel (CPUID's vendor string): MKL takes its fastest paths only there unless
    /// told otherwise (`train::mkl_paths`).
    pub intel: bool,
}

impl CpuFeatures {
    /// The features of the CPU running this process (all false off x86-64).
    pub fn detect() -> Self {
        static DETECTED: OnceLock<CpuFeatures> = OnceLock::new();
        *DETECTED.get_or_init(detect_now)
    }

    /// Whether ONNX Runtime's int8 products accumulate in 32 bits (VNNI or AMX). Without it
    /// a graph whose neighbouring weight codes are not bounded can saturate.
    pub fn int8_products_are_exact(&self) -> bool {
        self.avx512_vnni || self.avx_vnni || self.amx_int8
    }

    /// Whether bf16 matrix products run in hardware (AVX-512 BF16 or AMX): only then is bf16
    /// worth timing against fp32 for `--precision auto` (`train::precision`).
    pub fn has_fast_bf16(&self) -> bool {
        self.avx512_bf16 || self.amx_bf16
    }

    /// The detected features as lower-case names, in a fixed order (the start-up log line).
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.avx2, "avx2"),
            (self.avx512f, "avx512f"),
            (self.avx512_vnni, "avx512_vnni"),
            (self.avx_vnni, "avx_vnni"),
            (self.avx512_bf16, "avx512_bf16"),
            (self.amx_int8, "amx_int8"),
            (self.amx_bf16, "amx_bf16"),
        ]
        .into_iter()
        .filter_map(|(present, name)| present.then_some(name))
        .collect()
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_now() -> CpuFeatures {
    // AMX detection is not stable in std: CPUID leaf 7, sub-leaf 0, EDX bits 22 (bf16) and 25
    // (int8). CPUID exists on every x86-64 CPU.
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    CpuFeatures {
        avx2: is_x86_feature_detected!("avx2"),
        avx512f: is_x86_feature_detected!("avx512f"),
        avx512_vnni: is_x86_feature_detected!("avx512vnni"),
        avx_vnni: is_x86_feature_detected!("avxvnni"),
        avx512_bf16: is_x86_feature_detected!("avx512bf16"),
        amx_int8: leaf7.edx & (1 << 25) != 0,
        amx_bf16: leaf7.edx & (1 << 22) != 0,
        avx512_core: is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512cd")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl"),
        intel: vendor_is_intel(),
    }
}

/// CPUID leaf 0 spells the vendor in EBX, EDX, ECX; it exists on every x86-64 CPU.
#[cfg(target_arch = "x86_64")]
fn vendor_is_intel() -> bool {
    let leaf0 = std::arch::x86_64::__cpuid(0);
    [leaf0.ebx, leaf0.edx, leaf0.ecx]
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .eq(*b"GenuineIntel")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_now() -> CpuFeatures {
    CpuFeatures::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_agrees_with_the_kernel() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            return; // not Linux: nothing to compare with
        };
        let flags: Vec<&str> = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        let features = CpuFeatures::detect();
        let subsets = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"];
        assert_eq!(
            features.avx512_core,
            subsets.iter().all(|s| flags.contains(s))
        );
        let vendor = info.lines().find(|l| l.starts_with("vendor_id"));
        assert_eq!(
            features.intel,
            vendor.is_some_and(|l| l.ends_with("GenuineIntel"))
        );
        for name in [
            "avx2",
            "avx512f",
            "avx512_vnni",
            "avx_vnni",
            "avx512_bf16",
            "amx_int8",
            "amx_bf16",
        ] {
            assert_eq!(
                features.names().contains(&name),
                flags.contains(&name),
                "{name}: detected {features:?}"
            );
        }
    }

    #[test]
    fn exactness_and_bf16_follow_the_extensions() {
        let avx2_only = CpuFeatures {
            avx2: true,
            ..CpuFeatures::default()
        };
        assert!(!avx2_only.int8_products_are_exact() && !avx2_only.has_fast_bf16());
        assert_eq!(avx2_only.names(), vec!["avx2"]);
        let zen4 = CpuFeatures {
            avx512f: true,
            avx512_vnni: true,
            avx512_bf16: true,
            ..avx2_only
        };
        assert!(zen4.int8_products_are_exact() && zen4.has_fast_bf16());
        let client = CpuFeatures {
            avx_vnni: true,
            ..avx2_only
        };
        assert!(client.int8_products_are_exact());
    }
}
