//! `bertqa evaluate-passages`: each question's own paragraph hidden among distractors, read
//! as `/answer` reads `contexts`, under each way of comparing passages.

use std::path::PathBuf;

use bertqa::pipeline::passages::{distractor_sets, score_readings, ReadingScores};
use bertqa::qa::reader::Scoring;
use bertqa::qa::squad::load_squad;
use bertqa::qa::squad::passages::Passages;
use bertqa::serve::telemetry::{init_logging, LogFormat};

use super::model::{split_by_article, ModelArgs};

/// Measure top-1 EM/F1 and how often the answer comes from the right passage when each
/// question brings N passages (its own and N − 1 others, same article first).
#[derive(clap::Args)]
pub struct EvaluatePassagesArgs {
    /// The model and where it runs.
    #[command(flatten)]
    pub model: ModelArgs,
    /// SQuAD file.
    #[arg(long)]
    pub data: PathBuf,
    /// Passages per question, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,5,20")]
    pub passages: Vec<usize>,
    /// Only questions of this article on (`calibrate` fits on the ones before, default 24).
    #[arg(long, default_value_t = 0)]
    pub from_article: usize,
    /// Questions at most.
    #[arg(long, default_value_t = 1000)]
    pub questions: usize,
    /// Seed of the distractors.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// One line of the result.
#[derive(Debug, serde::Serialize)]
struct Row {
    passages: usize,
    scoring: &'static str,
    #[serde(flatten)]
    scores: ReadingScores,
}

impl EvaluatePassagesArgs {
    /// Runs each N and prints one JSON line per (N, scoring).
    pub fn run(self) -> anyhow::Result<()> {
        init_logging(LogFormat::Text);
        let mut model = self.model.load()?;
        let examples = load_squad(&self.data)?.examples();
        let pool = Passages::new(&examples);
        let (_, questions) = split_by_article(examples, self.from_article, self.questions);
        anyhow::ensure!(
            !questions.is_empty(),
            "no questions from article {}",
            self.from_article
        );
        let mut scorings = vec![
            ("passage probability", Scoring::PassageProbability),
            ("span logits", Scoring::SpanLogits),
        ];
        if let Some(fitted) = &model.manifest.score_calibration {
            scorings.push(("calibrated", Scoring::Calibrated(fitted.parameters)));
        }
        for &n in &self.passages {
            let sets = distractor_sets(&questions, &pool, n, self.seed);
            let started = std::time::Instant::now();
            let predictions = model.predict_sets(&questions, &sets)?;
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "{n} passages: {} questions in {seconds:.1} s",
                questions.len()
            );
            for (name, scoring) in &scorings {
                let row = Row {
                    passages: n,
                    scoring: name,
                    scores: score_readings(&questions, &sets, &predictions, *scoring),
                };
                println!("{}", serde_json::to_string(&row)?);
            }
        }
        Ok(())
    }
}
