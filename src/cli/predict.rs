//! `bertqa predict`: a SQuAD file through a model folder offline, as run_qa's --do_predict.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use bertqa::model::manifest::ModelManifest;
use bertqa::pipeline::predict::{predict_examples, prediction_files, BatchRunner, PredictConfig};
use bertqa::qa::batch::PaddedBatch;
use bertqa::qa::features::Featurizer;
use bertqa::qa::squad::load_squad;
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig, GraphChoice};
use bertqa::serve::init_logging;

use super::write_json;

/// Predict every question of a SQuAD file with a model folder (like run_qa's --do_predict);
/// writes the official prediction file (id -> answer), scored by `bertqa score`.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// Model folder (from `bertqa export`).
    #[arg(long)]
    pub model_dir: PathBuf,
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
    /// Which graph to run (auto: as `serve --graph auto`, int8 on CPU when the folder has it).
    #[arg(long, value_enum, default_value_t = GraphChoice::Auto)]
    pub graph: GraphChoice,
    /// Execution provider.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl PredictArgs {
    /// Writes the prediction file (and the null odds of a v2.0 model when asked).
    pub fn run(self) -> anyhow::Result<()> {
        init_logging(bertqa::serve::config::LogFormat::Text);
        let manifest = ModelManifest::load(&self.model_dir)
            .map_err(|m| anyhow::anyhow!("model folder {}: {m}", self.model_dir.display()))?;
        let engine_config =
            EngineConfig::for_folder(&manifest, self.graph, self.device, self.threads)
                .map_err(anyhow::Error::msg)?;
        let mut engine = Engine::load(&self.model_dir, &engine_config)?;
        let manifest = engine.manifest().clone();
        let featurizer =
            Featurizer::from_file(&self.model_dir.join("tokenizer.json"), manifest.window)?;
        let dataset = load_squad(&self.data)?;
        let mut examples = dataset.examples();
        examples.truncate(self.limit.unwrap_or(usize::MAX));
        let with_null = manifest.allows_no_answer();
        let config = PredictConfig {
            decode: bertqa::qa::decode::DecodeConfig {
                max_answer_len: manifest.max_answer_len,
                ..Default::default()
            },
            with_null,
            ..PredictConfig::default()
        };
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} windows | {per_sec} | ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let started = std::time::Instant::now();
        let mut backend =
            BatchRunner::new(featurizer.pad_id(), |batch: &PaddedBatch| engine.run(batch));
        let predictions = predict_examples(
            &examples,
            &featurizer,
            &config,
            &mut backend,
            |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            },
        )?;
        bar.finish_and_clear();
        let (answers, null_odds) =
            prediction_files(&examples, &predictions, with_null.then_some(0.0));
        write_json(&self.out, &answers)?;
        if let Some(path) = &self.na_prob_out {
            write_json(path, &null_odds)?;
        }
        eprintln!(
            "predicted {} questions in {:.1} s ({:.1} questions/s) with {}",
            examples.len(),
            started.elapsed().as_secs_f64(),
            examples.len() as f64 / started.elapsed().as_secs_f64(),
            engine.graph().display()
        );
        Ok(())
    }
}
