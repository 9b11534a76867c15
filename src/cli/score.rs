//! `bertqa score`: the official SQuAD scripts' numbers for a prediction file.

use std::collections::HashMap;
use std::path::PathBuf;

use bertqa::qa::squad::{load_squad, metrics};

use super::read_json;

/// Score a prediction file against a SQuAD file with the official script's rules; prints
/// the official script's JSON (v1.1: exact_match, f1; v2.0: exact, f1, HasAns_*, ...).
#[derive(clap::Args)]
pub struct ScoreArgs {
    /// SQuAD dataset (.json or .json.gz), v1.1 or v2.0.
    pub data: PathBuf,
    /// Predictions: a JSON object mapping question id to answer text.
    pub predictions: PathBuf,
    /// v2.0: JSON object mapping question id to no-answer probability.
    #[arg(long)]
    pub na_prob_file: Option<PathBuf>,
    /// v2.0: predict "no answer" when the no-answer probability exceeds this.
    #[arg(long, default_value_t = 1.0)]
    pub na_prob_thresh: f64,
}

impl ScoreArgs {
    /// Prints the official JSON.
    pub fn run(self) -> anyhow::Result<()> {
        let dataset = load_squad(&self.data)?;
        let predictions: HashMap<String, String> =
            read_json(&self.predictions, "prediction file (id -> answer text)")?;
        let na_probs: Option<serde_json::Map<String, serde_json::Value>> = self
            .na_prob_file
            .map(|p| read_json(&p, "no-answer probability file (id -> number)"))
            .transpose()?;
        let scores = metrics::score(
            &dataset,
            &predictions,
            na_probs.as_ref(),
            self.na_prob_thresh,
        )?;
        println!(
            "{}",
            serde_json::to_string_pretty(&scores.to_official_json())?
        );
        Ok(())
    }
}
