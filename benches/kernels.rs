//! Two `--kernels` levels on the same int8 graph (by default bertqa's fused kernels against
//! the graph run operator by operator): the two take turns, five batches at a time (an idle
//! session's threads spin a while and would slow the other's first batch), so this host's
//! drifting speed falls on both alike; and the largest logit gap between them on the windows'
//! own tokens.
//!
//! Usage: `cargo bench --bench kernels -- MODEL_DIR [THREADS [ROUNDS [NEW [OLD]]]]` (levels as
//! `--kernels` names them, default `fused` and `onnx`); prints one markdown row per shape:
//! median ms per batch each way, the ratio, and max |new - old| logit (padding left out).

use std::path::PathBuf;
use std::time::Instant;

use bertqa::qa::batch::PaddedBatch;
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig};
use bertqa::runtime::fused::Kernels;
use clap::ValueEnum;

/// Windows of ordinary word ids, the last one of each batch a third shorter (padded), as
/// the server's batches are.
fn batch(windows: usize, len: usize) -> PaddedBatch {
    let cells = windows * len;
    let mut attention_mask = vec![1; cells];
    if windows > 1 {
        attention_mask[cells - len / 3..].fill(0);
    }
    PaddedBatch {
        batch_size: windows,
        seq_len: len,
        input_ids: (0..cells)
            .map(|i| 2000 + ((i * 7919) % 20000) as i64)
            .collect(),
        token_type_ids: (0..cells).map(|i| i64::from(i % len >= len / 4)).collect(),
        attention_mask,
    }
}

/// Batches each engine runs before the other takes its turn.
const TURN: usize = 5;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let folder = PathBuf::from(
        args.first()
            .map_or("models/minilm-l6-squad1", String::as_str),
    );
    let threads = args.get(1).map(|t| t.parse()).transpose()?;
    let rounds: usize = args.get(2).map_or(Ok(12), |r| r.parse())?;
    let level = |i: usize, default: Kernels| {
        args.get(i).map_or(Ok(default), |name| {
            Kernels::from_str(name, false).map_err(|e| anyhow::anyhow!("{name}: {e}"))
        })
    };
    let (new, old) = (level(3, Kernels::Fused)?, level(4, Kernels::Onnx)?);
    let load = |kernels| {
        let config = EngineConfig {
            threads,
            device: DeviceKind::Cpu,
            int8: true,
            kernels,
        };
        Engine::load(&folder, &config)
    };
    let mut engines = [load(new)?, load(old)?];
    println!("| batch x tokens | {new:?} ms | {old:?} ms | old / new | max logit gap |");
    println!("| --- | --- | --- | --- | --- |");
    for (windows, len) in [(1, 192), (4, 192), (8, 192), (4, 384), (32, 192)] {
        let input = batch(windows, len);
        let mut times = [Vec::new(), Vec::new()];
        let mut logits = Vec::new();
        for engine in &mut engines {
            logits.push(engine.run(&input)?);
        }
        for _ in 0..rounds {
            for (engine, times) in engines.iter_mut().zip(&mut times) {
                for _ in 0..TURN {
                    let started = Instant::now();
                    engine.run(&input)?;
                    times.push(started.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        let [new, old] = times.map(median);
        let (a, b) = (&logits[0], &logits[1]);
        // Padding tokens' logits are no answer's (the fused attention writes zeros there).
        let real = |i: &usize| input.attention_mask[*i] == 1;
        let gap = (0..a.0.len()).filter(real);
        let gap = gap.flat_map(|i| [(a.0[i], b.0[i]), (a.1[i], b.1[i])]);
        let gap = gap.map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        println!(
            "| {windows} x {len} | {new:.2} | {old:.2} | {:.3} | {gap:.2e} |",
            old / new
        );
    }
    Ok(())
}
