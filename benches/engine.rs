//! Inference throughput of the exported graphs in ONNX Runtime (windows/s) at batch 1/8/32 ×
//! sequence 128/256/384, for `scripts/bench-engine.sh`, which runs the HF torch peers on the
//! same weights and shapes. Model folder: `$BERTQA_BENCH_MODEL`; row label prefix:
//! `$BERTQA_BENCH_LABEL` (default "ort").
//!
//! `BERTQA_BENCH_DEVICE=cuda` runs the fp32 graph on the CUDA execution provider instead (also at
//! batch 128, where a GPU is still not full) and, for batches of up to 8 windows (larger ones
//! take the CPU too long for bert-base), prints how far its logits are from the CPU provider's on
//! the same input: the CUDA check of `scripts/gpu-check.sh`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bertqa::qa::batch::PaddedBatch;
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig};
use bertqa::runtime::fused::Kernels;
use clap::ValueEnum;

fn batch(size: usize, len: usize) -> PaddedBatch {
    // Deterministic ordinary word ids; every token real (no padding) so all engines do equal work.
    let ids: Vec<i64> = (0..size * len)
        .map(|i| 2000 + ((i * 7919) % 20000) as i64)
        .collect();
    PaddedBatch {
        batch_size: size,
        seq_len: len,
        input_ids: ids,
        token_type_ids: vec![0; size * len],
        attention_mask: vec![1; size * len],
    }
}

/// `$BERTQA_BENCH_KERNELS` (`fused`, the default, or `onnx`): which CPU kernels to time.
fn kernels() -> anyhow::Result<Kernels> {
    let name = std::env::var("BERTQA_BENCH_KERNELS").unwrap_or_else(|_| "fused".into());
    Kernels::from_str(&name, true).map_err(|e| anyhow::anyhow!("BERTQA_BENCH_KERNELS: {e}"))
}

/// Windows per second of `engine` on `input`, timed for at least `budget` and 3 runs.
fn throughput(engine: &mut Engine, input: &PaddedBatch, budget: Duration) -> anyhow::Result<f64> {
    engine.run(input)?;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        engine.run(input)?;
        runs += 1;
    }
    Ok((runs * input.batch_size) as f64 / start.elapsed().as_secs_f64())
}

/// Largest absolute difference between two engines' start and end logits on `input`.
fn max_logit_gap(a: &mut Engine, b: &mut Engine, input: &PaddedBatch) -> anyhow::Result<f32> {
    let (x, y) = (a.run(input)?, b.run(input)?);
    let pairs = x.0.iter().zip(&y.0).chain(x.1.iter().zip(&y.1));
    Ok(pairs.map(|(p, q)| (p - q).abs()).fold(0.0, f32::max))
}

fn main() -> anyhow::Result<()> {
    let folder = PathBuf::from(std::env::var("BERTQA_BENCH_MODEL")?);
    let label = std::env::var("BERTQA_BENCH_LABEL").unwrap_or_else(|_| "ort".into());
    let cuda = std::env::var("BERTQA_BENCH_DEVICE").is_ok_and(|d| d == "cuda");
    let kernels = kernels()?;
    let load = |device, int8| {
        Engine::load(
            &folder,
            &EngineConfig {
                threads: None,
                device,
                int8,
                kernels,
            },
        )
    };
    // A GPU's timings vary little between runs: one second per shape is enough there.
    let (graphs, sizes, budget): (&[_], &[usize], _) = if cuda {
        (
            &[("cuda-fp32", false)],
            &[1, 8, 32, 128],
            Duration::from_secs(1),
        )
    } else {
        (
            &[("fp32", false), ("int8", true)],
            &[1, 8, 32],
            Duration::from_secs(2),
        )
    };
    for &(kind, int8) in graphs {
        let name = format!("{label}-{kind}");
        let device = if cuda {
            DeviceKind::Cuda
        } else {
            DeviceKind::Cpu
        };
        let mut engine = load(device, int8)?;
        let mut reference = if cuda {
            Some(load(DeviceKind::Cpu, int8)?)
        } else {
            None
        };
        for &size in sizes {
            for len in [128, 256, 384] {
                let input = batch(size, len);
                let per_second = throughput(&mut engine, &input, budget)?;
                println!("{name} b={size} L={len}: {per_second:.1} windows/s");
                if let Some(cpu) = reference.as_mut().filter(|_| size <= 8) {
                    let gap = max_logit_gap(&mut engine, cpu, &input)?;
                    println!("parity {name} b={size} L={len}: max |cuda - cpu| = {gap:.2e}");
                }
            }
        }
    }
    Ok(())
}
