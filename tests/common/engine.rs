//! Running a tiny model's graphs on a few windows: the engine and int8-form tests' shared
//! setting and the two checks every graph form must pass (batch invariance, closeness to fp32).

use std::path::Path;

use bertqa::qa::batch::PaddedBatch;
use bertqa::qa::features::{Featurizer, Window, WindowConfig};
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig};
use bertqa::runtime::fused::Kernels;

/// One intra-op thread on CPU with the kernels that give ONNX Runtime's logits bit for bit: the
/// setting every engine test compares graphs under, so a difference is the graph's.
pub fn cpu(int8: bool) -> EngineConfig {
    EngineConfig {
        threads: Some(1),
        device: DeviceKind::Cpu,
        int8,
        kernels: Kernels::Fused,
    }
}

/// The windows of three questions of different lengths, tokenized with `folder`'s tokenizer,
/// and those windows as one padded batch (the shorter ones padded).
pub fn sample_batch(folder: &Path) -> (Vec<Window>, PaddedBatch) {
    let featurizer =
        Featurizer::from_file(&folder.join("tokenizer.json"), WindowConfig::default()).unwrap();
    let windows = sample_windows(&featurizer);
    let refs: Vec<_> = windows.iter().collect();
    let batch = PaddedBatch::from_windows(&refs, 0);
    (windows, batch)
}

/// The windows of three questions of different lengths.
fn sample_windows(featurizer: &Featurizer) -> Vec<Window> {
    let pairs = [
        ("Who won?", "The Denver Broncos won Super Bowl 50."),
        ("Where was it played?", "Super Bowl 50 was played at Levi's Stadium in the San Francisco Bay Area at Santa Clara, California, on February 7, 2016."),
        ("When?", "In 2016."),
    ];
    pairs
        .iter()
        .flat_map(|(q, c)| featurizer.windows(q, c).unwrap())
        .collect()
}

/// Largest change of any real token's start logit between running each window alone and
/// running all of them as one padded batch.
pub fn batching_effect(engine: &mut Engine, windows: &[Window]) -> f32 {
    let refs: Vec<_> = windows.iter().collect();
    let batch = PaddedBatch::from_windows(&refs, 0);
    let (start, _) = engine.run(&batch).unwrap();
    let mut largest = 0.0f32;
    for (row, w) in windows.iter().enumerate() {
        let (alone, _) = engine.run(&PaddedBatch::from_windows(&[w], 0)).unwrap();
        let padded = &start[row * batch.seq_len..row * batch.seq_len + w.len()];
        largest = alone
            .iter()
            .zip(padded)
            .fold(largest, |m, (a, b)| m.max((a - b).abs()));
    }
    largest
}

/// The int8 graph of `int8_folder` gives each window the same logits alone as in a padded
/// batch, and they correlate with the fp32 graph's of `fp32_folder` above 0.99.
pub fn assert_batch_invariant_and_close_to_fp32(
    fp32_folder: &Path,
    int8_folder: &Path,
    what: &str,
) {
    let (windows, batch) = sample_batch(fp32_folder);
    let mut engine = Engine::load(int8_folder, &cpu(true)).unwrap();
    let diff = batching_effect(&mut engine, &windows);
    assert!(diff < 1e-4, "{what}: batching changed logits by {diff}");
    let (fp32, _) = Engine::load(fp32_folder, &cpu(false))
        .unwrap()
        .run(&batch)
        .unwrap();
    let (int8, _) = engine.run(&batch).unwrap();
    let corr = real_token_correlation(&fp32, &int8, &batch);
    assert!(corr > 0.99, "{what} vs fp32 logit correlation {corr}");
}

/// Pearson correlation of two logit sets over the batch's real (unpadded) tokens.
pub fn real_token_correlation(a: &[f32], b: &[f32], batch: &PaddedBatch) -> f64 {
    let real: Vec<(f32, f32)> = a
        .iter()
        .zip(b)
        .zip(&batch.attention_mask)
        .filter(|(_, &m)| m == 1)
        .map(|((x, y), _)| (*x, *y))
        .collect();
    correlation(&real)
}

/// Pearson correlation of paired values.
fn correlation(pairs: &[(f32, f32)]) -> f64 {
    let n = pairs.len() as f64;
    let (ma, mb) = pairs.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + f64::from(*x) / n, b + f64::from(*y) / n)
    });
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        let (dx, dy) = (f64::from(*x) - ma, f64::from(*y) - mb);
        cov += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    cov / (va * vb).sqrt()
}
