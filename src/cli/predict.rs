//! `bertqa predict`: a SQuAD file through a model folder offline, as run_qa's --do_predict.

use std::path::PathBuf;

use bertqa::pipeline::predict::prediction_files;
use bertqa::qa::squad::load_squad;
use bertqa::serve::telemetry::{init_logging, LogFormat};

use super::model::ModelArgs;
use super::write_json;

/// Predict every question of a SQuAD file with a model folder (like run_qa's --do_predict);
/// writes the official prediction file (id -> answer), scored by `bertqa score`.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// The model and where it runs.
    #[command(flatten)]
    pub model: ModelArgs,
    /// SQuAD file to answer.
    #[arg(long)]
    pub data: PathBuf,
    /// Prediction file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// v2.0 models: also write id -> null odds, for `score --na-prob-file`.
    #[arg(long)]
    pub na_prob_out: Option<PathBuf>,
    /// v2.0 models: answer every question with its best span, never "no answer", so that a
    /// v1.1 file (where every question has an answer) scores such a model the way it scores
    /// a v1.1 model, as a server does for requests with `handle_impossible_answer: false`;
    /// with `--na-prob-out`, the official v2.0 script then sweeps every threshold itself.
    #[arg(long)]
    pub always_answer: bool,
}

impl PredictArgs {
    /// Writes the prediction file (and the null odds of a v2.0 model when asked).
    pub fn run(self) -> anyhow::Result<()> {
        init_logging(LogFormat::Text);
        let mut model = self.model.load()?;
        let dataset = load_squad(&self.data)?;
        let mut examples = dataset.examples();
        examples.truncate(self.limit.unwrap_or(usize::MAX));
        let started = std::time::Instant::now();
        let predictions = model.predict(&examples)?;
        let manifest = &model.manifest;
        // A threshold no null odds exceed keeps the odds in the files but never abstains.
        let threshold = manifest.trained_null_threshold().map(|tuned| {
            if self.always_answer {
                f32::INFINITY
            } else {
                tuned
            }
        });
        let (answers, null_odds) = prediction_files(&examples, &predictions, threshold);
        write_json(&self.out, &answers)?;
        if let Some(path) = &self.na_prob_out {
            write_json(path, &null_odds)?;
        }
        eprintln!(
            "predicted {} questions in {:.1} s ({:.1} questions/s) with {}",
            examples.len(),
            started.elapsed().as_secs_f64(),
            examples.len() as f64 / started.elapsed().as_secs_f64(),
            model.engine.graph().display()
        );
        Ok(())
    }
}
