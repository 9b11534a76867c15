//! `bertqa`: the command line of the question-answering system.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use bertqa::squad::{load_squad, metrics};

/// Extractive question answering with BERT: score, predict, export and serve.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score a prediction file against a SQuAD file with the official script's rules; prints
    /// the official script's JSON (v1.1: exact_match, f1; v2.0: exact, f1, HasAns_*, ...).
    Score {
        /// SQuAD dataset (.json or .json.gz), v1.1 or v2.0.
        data: PathBuf,
        /// Predictions: a JSON object mapping question id to answer text.
        predictions: PathBuf,
        /// v2.0: JSON object mapping question id to no-answer probability.
        #[arg(long)]
        na_prob_file: Option<PathBuf>,
        /// v2.0: predict "no answer" when the no-answer probability exceeds this.
        #[arg(long, default_value_t = 1.0)]
        na_prob_thresh: f64,
    },
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de)
        .with_context(|| format!("{what} {} is not the expected JSON object", path.display()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Score {
            data,
            predictions,
            na_prob_file,
            na_prob_thresh,
        } => {
            let dataset = load_squad(&data)?;
            let predictions: HashMap<String, String> =
                read_json(&predictions, "prediction file (id -> answer text)")?;
            let na_probs: Option<serde_json::Map<String, serde_json::Value>> = na_prob_file
                .map(|p| read_json(&p, "no-answer probability file (id -> number)"))
                .transpose()?;
            let scores = metrics::score(&dataset, &predictions, na_probs.as_ref(), na_prob_thresh)?;
            println!("{}", serde_json::to_string_pretty(&scores)?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
