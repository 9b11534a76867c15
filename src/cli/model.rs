//! A model folder loaded for offline work (`predict`, `calibrate`, `evaluate-passages`):
//! the engine, the tokenizer and the prediction settings its manifest implies, loaded one way.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use bertqa::model::manifest::ModelManifest;
use bertqa::pipeline::passages::{passage_examples, per_question, PassageSet};
use bertqa::pipeline::predict::{predict_examples, BatchRunner, PredictConfig};
use bertqa::qa::batch::PaddedBatch;
use bertqa::qa::decode::{DecodeConfig, Prediction};
use bertqa::qa::features::Featurizer;
use bertqa::qa::squad::Example;
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig, GraphChoice};
use bertqa::runtime::fused::Kernels;

/// Which model, on what.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model folder (from `bertqa export`).
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Which graph to run (auto: as `serve --graph auto`, int8 on CPU when the folder has it).
    #[arg(long, value_enum, default_value_t = GraphChoice::Auto)]
    pub graph: GraphChoice,
    /// Execution provider.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// CPU kernels, as `serve --kernels`.
    #[arg(long, value_enum, default_value_t = Kernels::FusedAttention)]
    pub kernels: Kernels,
}

/// The loaded model.
pub struct LoadedModel {
    /// ONNX Runtime session on the chosen graph.
    pub engine: Engine,
    /// The folder's tokenizer with its window geometry.
    pub featurizer: Featurizer,
    /// Its `bertqa.json`.
    pub manifest: ModelManifest,
}

impl ModelArgs {
    /// Loads the folder's manifest, graph and tokenizer.
    pub fn load(&self) -> anyhow::Result<LoadedModel> {
        let manifest = ModelManifest::load(&self.model_dir)
            .map_err(|m| anyhow::anyhow!("model folder {}: {m}", self.model_dir.display()))?;
        let engine_config = EngineConfig::for_folder(
            &manifest,
            self.graph,
            self.device,
            self.threads,
            self.kernels,
        )
        .map_err(anyhow::Error::msg)?;
        let engine = Engine::load(&self.model_dir, &engine_config)?;
        let manifest = engine.manifest().clone();
        let featurizer =
            Featurizer::from_file(&self.model_dir.join("tokenizer.json"), manifest.window)?;
        Ok(LoadedModel {
            engine,
            featurizer,
            manifest,
        })
    }
}

/// A progress bar of windows predicted, on stderr.
fn window_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} windows | {per_sec} | ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

impl LoadedModel {
    /// Prediction settings of this model (its answer length, its null answer).
    fn predict_config(&self) -> PredictConfig {
        PredictConfig {
            decode: DecodeConfig {
                max_answer_len: self.manifest.max_answer_len,
                ..DecodeConfig::default()
            },
            with_null: self.manifest.allows_no_answer(),
            ..PredictConfig::default()
        }
    }

    /// Decodes every example with this model, with a progress bar.
    pub fn predict(&mut self, examples: &[Example]) -> anyhow::Result<Vec<Prediction>> {
        let config = self.predict_config();
        let bar = window_bar();
        let engine = &mut self.engine;
        let mut backend = BatchRunner::new(self.featurizer.pad_id(), |batch: &PaddedBatch| {
            engine.run(batch)
        });
        let predictions = predict_examples(
            examples,
            &self.featurizer,
            &config,
            &mut backend,
            |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            },
        )?;
        bar.finish_and_clear();
        Ok(predictions)
    }

    /// Decodes every passage of every set: `result[q][p]` is question `q` on passage `p`.
    pub fn predict_sets(
        &mut self,
        examples: &[Example],
        sets: &[PassageSet],
    ) -> anyhow::Result<Vec<Vec<Prediction>>> {
        let flat = self.predict(&passage_examples(examples, sets))?;
        Ok(per_question(flat, sets))
    }
}

/// The questions of a SQuAD file split by article: those of articles before `first_held_out`
/// and those from it on, at most `limit` of each (questions of one article never land on
/// both sides, so no paragraph is seen in fitting and in measuring).
pub fn split_by_article(
    examples: Vec<Example>,
    first_held_out: usize,
    limit: usize,
) -> (Vec<Example>, Vec<Example>) {
    let (mut before, mut after): (Vec<Example>, Vec<Example>) = examples
        .into_iter()
        .partition(|e| e.article < first_held_out);
    before.truncate(limit);
    after.truncate(limit);
    (before, after)
}
