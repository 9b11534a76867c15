//! What this CPU's vector units can do at most, measured rather than taken from a data sheet:
//! the profiles in `bench/RESULTS.md` give the engine's products in GOP/s, and a rate means
//! little without the peak of the instruction behind it on the CPU at hand (a VM hides the
//! boost clock, and AMD runs a 512-bit instruction as two 256-bit halves). Each kernel is a
//! loop of independent multiply-adds in registers, with no memory traffic, so its rate is the
//! instruction's throughput times the clock the core holds while busy.
//!
//! Usage: `cargo bench --bench peak [-- SECONDS]`; prints one markdown row per instruction the
//! CPU has: GOP/s on one core and on every core at once (threads pinned by the OS).

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Independent accumulators per loop: more than the latency x throughput of any of these
/// instructions on the CPUs seen so far (4 cycles x 2 per cycle), so none waits on another.
const CHAINS: usize = 12;

/// Iterations between two looks at the clock.
const BURST: u64 = 100_000;

/// One peak kernel: its name, the integer or float operations per iteration (a
/// multiply-add is two), and the loop, which returns a value the optimizer cannot drop.
struct Peak {
    name: &'static str,
    ops_per_iteration: u64,
    run: fn(u64) -> f32,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    /// u8 x s8 products summed four at a time into i32 lanes: the int8 kernel of CPUs with
    /// AVX-512 VNNI (ONNX Runtime's u8 x s8 products there).
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn vnni512(iterations: u64) -> f32 {
        let a = _mm512_set1_epi8(3);
        let b = _mm512_set1_epi8(-2);
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        for _ in 0..iterations {
            for c in &mut acc {
                *c = _mm512_dpbusd_epi32(*c, a, b);
            }
        }
        let sum = acc
            .iter()
            .fold(_mm512_setzero_si512(), |s, &c| _mm512_add_epi32(s, c));
        _mm512_reduce_add_epi32(sum) as f32
    }

    /// The AVX2 int8 sequence of CPUs without VNNI: `vpmaddubsw` (pairs into i16),
    /// `vpmaddwd` by ones (pairs into i32), `vpaddd`; 32 multiply-adds per three instructions.
    /// Each chain has its own weights and the activations change every iteration, as in a
    /// product, so the compiler can neither merge the chains nor hoist the products.
    #[target_feature(enable = "avx2")]
    pub unsafe fn pmadd256(iterations: u64) -> f32 {
        let step = _mm256_set1_epi8(1);
        let ones = _mm256_set1_epi16(1);
        let weights: [__m256i; CHAINS] =
            std::hint::black_box(std::array::from_fn(|c| _mm256_set1_epi8(c as i8 - 6)));
        let mut a = _mm256_set1_epi8(3);
        let mut acc = [_mm256_setzero_si256(); CHAINS];
        for _ in 0..iterations {
            for (c, b) in acc.iter_mut().zip(&weights) {
                let pairs = _mm256_maddubs_epi16(a, *b);
                *c = _mm256_add_epi32(*c, _mm256_madd_epi16(pairs, ones));
            }
            a = _mm256_add_epi8(a, step);
        }
        let sum = acc
            .iter()
            .fold(_mm256_setzero_si256(), |s, &c| _mm256_add_epi32(s, c));
        let lanes: [i32; 8] = std::mem::transmute(sum);
        lanes.iter().map(|&v| v as f32).sum()
    }

    /// A loop of f32 fused multiply-adds in `CHAINS` registers of `$lanes` floats.
    macro_rules! fma_peak {
        ($(#[$doc:meta])* $name:ident, $feature:literal, $register:ty, $lanes:literal,
         $set1:ident, $fmadd:ident) => {
            $(#[$doc])*
            #[target_feature(enable = $feature)]
            pub unsafe fn $name(iterations: u64) -> f32 {
                let (a, b) = ($set1(0.999_999), $set1(1e-7));
                let mut acc = [$set1(1.0); CHAINS];
                for _ in 0..iterations {
                    for c in &mut acc {
                        *c = $fmadd(*c, a, b);
                    }
                }
                let lanes: [[f32; $lanes]; CHAINS] = std::mem::transmute(acc);
                lanes.iter().flatten().sum()
            }
        };
    }

    fma_peak!(
        /// f32 fused multiply-adds at 512 bits (attention, training's `sgemm` on AVX-512 CPUs).
        fma512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps
    );
    fma_peak!(
        /// f32 fused multiply-adds at 256 bits (MKL's and ONNX Runtime's AVX2 kernels).
        fma256, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps
    );
}

/// The kernels this CPU can run.
#[cfg(target_arch = "x86_64")]
fn peaks() -> Vec<Peak> {
    let lanes = CHAINS as u64;
    let mut found = Vec::new();
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
        found.push(Peak {
            name: "int8 `vpdpbusd` zmm (AVX-512 VNNI)",
            ops_per_iteration: lanes * 64 * 2,
            // SAFETY: the CPU has AVX-512 F and VNNI (checked above).
            run: |n| unsafe { x86::vnni512(n) },
        });
    }
    if is_x86_feature_detected!("avx2") {
        found.push(Peak {
            name: "int8 `vpmaddubsw` + `vpmaddwd` ymm (AVX2)",
            ops_per_iteration: lanes * 32 * 2,
            // SAFETY: the CPU has AVX2 (checked above).
            run: |n| unsafe { x86::pmadd256(n) },
        });
    }
    if is_x86_feature_detected!("avx512f") {
        found.push(Peak {
            name: "f32 `vfmadd` zmm (AVX-512)",
            ops_per_iteration: lanes * 16 * 2,
            // SAFETY: the CPU has AVX-512 F (checked above).
            run: |n| unsafe { x86::fma512(n) },
        });
    }
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        found.push(Peak {
            name: "f32 `vfmadd` ymm (AVX2 + FMA)",
            ops_per_iteration: lanes * 8 * 2,
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            run: |n| unsafe { x86::fma256(n) },
        });
    }
    found
}

#[cfg(not(target_arch = "x86_64"))]
fn peaks() -> Vec<Peak> {
    Vec::new()
}

/// GOP/s of `peak` on each of `threads` threads at once for `seconds`, summed.
fn rate(peak: &Peak, threads: usize, seconds: f64) -> f64 {
    let limit = Duration::from_secs_f64(seconds);
    let ops: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let started = Instant::now();
                    let mut iterations = 0;
                    while started.elapsed() < limit {
                        black_box((peak.run)(black_box(BURST)));
                        iterations += BURST;
                    }
                    (iterations * peak.ops_per_iteration) as f64 / started.elapsed().as_secs_f64()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a peak thread panicked") as u64)
            .sum()
    });
    ops as f64 / 1e9
}

fn main() -> anyhow::Result<()> {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .map_or(Ok(2.0), |s| s.parse())?;
    let cores = std::thread::available_parallelism()?.get();
    let found = peaks();
    anyhow::ensure!(
        !found.is_empty(),
        "no x86 vector kernel to measure on this CPU"
    );
    println!("| instruction | GOP/s, 1 core | GOP/s, {cores} cores |");
    println!("| --- | --- | --- |");
    for peak in &found {
        let one = rate(peak, 1, seconds);
        let all = rate(peak, cores, seconds);
        println!("| {} | {one:.0} | {all:.0} |", peak.name);
    }
    Ok(())
}
