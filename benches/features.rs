//! Feature-building throughput over the whole SQuAD v1.1 dev set (questions/s, windows/s),
//! single-threaded: the tokenization cost every flow pays before the model runs.
//!
//! `cargo bench --bench features` (needs `scripts/setup-native.sh` for the tokenizer).
//! Data: `$BERTQA_SQUAD_DIR` or `../shared/data/squad`.

use std::path::PathBuf;
use std::time::Instant;

use bertqa::qa::features::{Featurizer, WindowConfig};
use bertqa::qa::squad::load_squad;

fn main() -> anyhow::Result<()> {
    let squad = std::env::var("BERTQA_SQUAD_DIR").unwrap_or_else(|_| "../shared/data/squad".into());
    let pretrained = std::env::var("BERTQA_PRETRAINED_DIR")?;
    let load_start = Instant::now();
    let dataset = load_squad(&PathBuf::from(squad).join("dev-v1.1.json.gz"))?;
    let examples = dataset.examples();
    let load_s = load_start.elapsed().as_secs_f64();
    let featurizer = Featurizer::from_file(
        &PathBuf::from(pretrained).join("tokenizer.json"),
        WindowConfig::default(),
    )?;
    let mut best = f64::INFINITY;
    let mut windows = 0;
    for _ in 0..3 {
        let start = Instant::now();
        windows = 0;
        for example in &examples {
            windows += featurizer
                .windows(&example.question, &example.context)?
                .len();
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "features: {} questions, {} windows; load+parse {:.2} s; best of 3: {:.2} s = {:.0} questions/s, {:.0} windows/s (1 thread)",
        examples.len(),
        windows,
        load_s,
        best,
        examples.len() as f64 / best,
        windows as f64 / best
    );
    Ok(())
}
