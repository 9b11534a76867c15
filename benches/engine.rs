//! Inference throughput of the exported graphs in ONNX Runtime (windows/s) at batch 1/8/32 ×
//! sequence 128/256/384, for `scripts/bench-engine.sh`, which runs the HF torch peers on the
//! same weights and shapes. Model folder: `$BERTQA_BENCH_MODEL`; row label prefix:
//! `$BERTQA_BENCH_LABEL` (default "ort").

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bertqa::batch::PaddedBatch;
use bertqa::engine::{DeviceKind, Engine, EngineConfig};

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

fn main() -> anyhow::Result<()> {
    let folder = PathBuf::from(std::env::var("BERTQA_BENCH_MODEL")?);
    let label = std::env::var("BERTQA_BENCH_LABEL").unwrap_or_else(|_| "ort".into());
    for (kind, int8) in [("fp32", false), ("int8", true)] {
        let name = format!("{label}-{kind}");
        let mut engine = Engine::load(
            &folder,
            &EngineConfig {
                threads: None,
                device: DeviceKind::Cpu,
                int8,
            },
        )?;
        for size in [1, 8, 32] {
            for len in [128, 256, 384] {
                let input = batch(size, len);
                engine.run(&input)?;
                let start = Instant::now();
                let mut runs = 0;
                while runs < 3 || start.elapsed() < Duration::from_secs(2) {
                    engine.run(&input)?;
                    runs += 1;
                }
                let per_second = (runs * size) as f64 / start.elapsed().as_secs_f64();
                println!("{name} b={size} L={len}: {per_second:.1} windows/s");
            }
        }
    }
    Ok(())
}
