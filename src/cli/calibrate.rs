//! `bertqa calibrate`: fits the model folder's score calibration on held-out SQuAD questions
//! (their own paragraph and distractors) and writes it into `bertqa.json`, with the
//! calibration error measured on other articles' questions.

use std::path::{Path, PathBuf};

use anyhow::Context;

use bertqa::model::manifest::{FittedCalibration, ModelManifest};
use bertqa::pipeline::passages::{distractor_sets, fit_calibration, score_readings};
use bertqa::pipeline::predict::prediction_files;
use bertqa::qa::reader::Scoring;
use bertqa::qa::squad::load_squad;
use bertqa::qa::squad::metrics::score_v2;
use bertqa::qa::squad::passages::Passages;
use bertqa::qa::squad::scores::Scores;
use bertqa::serve::telemetry::{init_logging, LogFormat};

use super::model::{split_by_article, LoadedModel, ModelArgs};

/// Fit the probability that an answer is right (Platt scaling of the span and null logits)
/// on questions the model was not trained on, and store it in the model folder.
#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// The model and where it runs.
    #[command(flatten)]
    pub model: ModelArgs,
    /// SQuAD file of questions the model was not trained on (the dev set).
    #[arg(long)]
    pub data: PathBuf,
    /// Articles before this one are fitted on, the rest measure the error (dev v1.1 has 48).
    #[arg(long, default_value_t = 24)]
    pub held_out_from_article: usize,
    /// Questions at most on each side.
    #[arg(long, default_value_t = 2000)]
    pub questions: usize,
    /// Passages per question: its own and distractors (other paragraphs, same article first).
    #[arg(long, default_value_t = 5)]
    pub passages: usize,
    /// Seed of the distractors.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// SQuAD v2.0 models: also tune the null threshold on this v2.0 file (the official
    /// evaluation's `best_f1_thresh`) and store it.
    #[arg(long)]
    pub null_data: Option<PathBuf>,
    /// Only print the fit; leave `bertqa.json` as it is.
    #[arg(long)]
    pub dry_run: bool,
}

impl CalibrateArgs {
    /// Fits, measures, prints the result as JSON and writes it into the folder.
    pub fn run(self) -> anyhow::Result<()> {
        init_logging(LogFormat::Text);
        let mut model = self.model.load()?;
        anyhow::ensure!(
            self.null_data.is_none() || model.manifest.allows_no_answer(),
            "--null-data: this is a SQuAD v1.1 model, it has no null answer to tune"
        );
        let dataset = load_squad(&self.data)?;
        let examples = dataset.examples();
        let pool = Passages::new(&examples);
        let (fit, held_out) =
            split_by_article(examples, self.held_out_from_article, self.questions);
        anyhow::ensure!(
            !fit.is_empty() && !held_out.is_empty(),
            "--held-out-from-article {} leaves no questions on one side",
            self.held_out_from_article
        );
        let fit_sets = distractor_sets(&fit, &pool, self.passages, self.seed);
        let fit_predictions = model.predict_sets(&fit, &fit_sets)?;
        let (parameters, samples) = fit_calibration(&fit, &fit_predictions)
            .context("every fitted answer was right, or every one wrong: nothing to fit")?;
        let scoring = Scoring::Calibrated(parameters);
        let own_sets = distractor_sets(&held_out, &pool, 1, self.seed);
        let own = model.predict_sets(&held_out, &own_sets)?;
        let many_sets = distractor_sets(&held_out, &pool, self.passages, self.seed);
        let many = model.predict_sets(&held_out, &many_sets)?;
        let fitted = FittedCalibration {
            parameters,
            data: bertqa::model::short_name(&self.data),
            fit_questions: fit.len(),
            fit_samples: samples,
            held_out_questions: held_out.len(),
            ece_own_passage: score_readings(&held_out, &own_sets, &own, scoring).ece,
            ece_with_distractors: score_readings(&held_out, &many_sets, &many, scoring).ece,
        };
        println!("{}", serde_json::to_string_pretty(&fitted)?);
        let null_threshold = match &self.null_data {
            Some(path) => Some(tune_null_threshold(&mut model, path)?),
            None => None,
        };
        if !self.dry_run {
            let dir = &self.model.model_dir;
            let mut manifest = ModelManifest::load(dir).map_err(anyhow::Error::msg)?;
            manifest.score_calibration = Some(fitted);
            manifest.null_threshold = null_threshold.or(manifest.null_threshold);
            let path = dir.join("bertqa.json");
            std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote the calibration into {}", path.display());
        }
        Ok(())
    }
}

/// The null threshold that gives the best F1 on a SQuAD v2.0 file (the official sweep over
/// the null odds); prints the official scores at it.
fn tune_null_threshold(model: &mut LoadedModel, path: &Path) -> anyhow::Result<f32> {
    let dataset = load_squad(path)?;
    let examples = dataset.examples();
    let predictions = model.predict(&examples)?;
    // Every best span as the answer, and its null odds: the sweep decides where to cut.
    let (spans, null_odds) = prediction_files(&examples, &predictions, Some(f32::INFINITY));
    let swept = score_v2(&dataset, &spans, Some(&null_odds), 1.0)?;
    let Scores::V2 {
        best: Some(best), ..
    } = swept
    else {
        anyhow::bail!("{}: the official sweep found no threshold", path.display());
    };
    let threshold = best.best_f1_thresh as f32;
    let (answers, _) = prediction_files(&examples, &predictions, Some(threshold));
    let at_threshold = score_v2(&dataset, &answers, Some(&null_odds), f64::from(threshold))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&at_threshold.to_official_json())?
    );
    Ok(threshold)
}
