//! Calibration for the batch-invariant int8 graphs, in ONNX Runtime over windows of a SQuAD
//! file, in-process and Python-free like the rest of export. Two passes over the same windows
//! of a graph that also outputs every dense layer's input:
//! 1. the fp32 graph: each channel's largest |activation|, which sets the SmoothQuant factors;
//! 2. (formats with static steps only) the smoothed row-wise int8 graph: a high percentile of
//!    |activation| per site, as the static graph's layers will see their inputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::model::BertConfig;
use crate::onnx::bert::{
    bert_qa_model, observed_output, GraphOptions, OpStyle, Smoothing, WeightFormat,
};
use crate::onnx::clip::{ActivationClips, LargestMagnitudes};
use crate::onnx::smooth::{ActivationRanges, Site};
use crate::onnx::weights::Weights;
use crate::onnx::ExportError;
use crate::qa::batch::PaddedBatch;
use crate::qa::features::{Featurizer, WindowConfig};
use crate::qa::squad::load_squad;
use crate::runtime::engine::{batch_inputs, cpu_session};

/// Windows per calibration batch.
const BATCH: usize = 16;

/// Where the calibration windows come from.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// A SQuAD file (training data: the dev set is what the model is scored on).
    pub data: PathBuf,
    /// How many questions, spread evenly over the file so every topic is seen.
    pub questions: usize,
    /// SmoothQuant's migration strength (0.5 measured best, bench/RESULTS.md).
    pub alpha: f32,
    /// The percentile of smoothed |activation| that sets each static step.
    pub clip_percentile: f64,
}

impl Calibration {
    /// Questions measured by default: 128 (about 130 windows) gave the agreement figures in
    /// bench/RESULTS.md in under 4 s.
    pub const DEFAULT_QUESTIONS: usize = 128;
    /// α of the SmoothQuant paper, also the best of 0.3-0.8 measured here.
    pub const DEFAULT_ALPHA: f32 = 0.5;
    /// p99.999: of the clips measured on 2,000 dev questions (the largest value, p99.99,
    /// p99.999), the only one that kept F1 level with the row-wise graph (bench/RESULTS.md).
    pub const DEFAULT_CLIP_PERCENTILE: f64 = 99.999;

    /// The default calibration on `data`.
    pub fn on(data: PathBuf) -> Self {
        Self {
            data,
            questions: Self::DEFAULT_QUESTIONS,
            alpha: Self::DEFAULT_ALPHA,
            clip_percentile: Self::DEFAULT_CLIP_PERCENTILE,
        }
    }
}

/// What calibration measured for one graph.
#[derive(Debug, Clone)]
pub struct Calibrated {
    /// Per-channel maxima: the smoothing factors.
    pub ranges: ActivationRanges,
    /// Per-site clips: the static steps (measured for the formats that
    /// [`WeightFormat::needs_clips`] only).
    pub clips: Option<ActivationClips>,
}

fn failed(e: impl std::fmt::Display) -> ExportError {
    ExportError::Calibration(e.to_string())
}

/// The calibration windows, batched, and how many real tokens they hold.
struct Windows {
    batches: Vec<PaddedBatch>,
    real_tokens: usize,
}

impl Windows {
    fn of(
        tokenizer: &Path,
        window: WindowConfig,
        calibration: &Calibration,
    ) -> Result<Self, ExportError> {
        let featurizer = Featurizer::from_file(tokenizer, window).map_err(failed)?;
        let examples = load_squad(&calibration.data).map_err(failed)?.examples();
        let step = (examples.len() / calibration.questions.max(1)).max(1);
        let mut windows = vec![];
        for example in examples.iter().step_by(step).take(calibration.questions) {
            windows.extend(
                featurizer
                    .windows(&example.question, &example.context)
                    .map_err(failed)?,
            );
        }
        if windows.is_empty() {
            return Err(failed(format!(
                "{} has no questions to calibrate on",
                calibration.data.display()
            )));
        }
        let pad_id = featurizer.pad_id();
        let batches = windows
            .chunks(BATCH)
            .map(|chunk| PaddedBatch::from_windows(&chunk.iter().collect::<Vec<_>>(), pad_id))
            .collect();
        let real_tokens = windows.iter().map(|w| w.len()).sum();
        Ok(Self {
            batches,
            real_tokens,
        })
    }

    /// Runs `options`' graph (an observing one) on every batch and hands each site's input to
    /// `visit` as (site key, values `[.., channels]`, channels, real-token flags per row).
    fn observe(
        &self,
        weights: &Weights,
        config: &BertConfig,
        options: &GraphOptions,
        mut visit: impl FnMut(&str, &[f32], usize, &[bool]),
    ) -> Result<(), ExportError> {
        let graph = bert_qa_model(weights, config, options)?.encode_to_vec();
        let mut session = cpu_session(&graph, None).map_err(failed)?;
        let keys = site_keys(config);
        for batch in &self.batches {
            let outputs = session
                .run(batch_inputs(batch).map_err(failed)?)
                .map_err(failed)?;
            let real: Vec<bool> = batch.attention_mask.iter().map(|&m| m == 1).collect();
            for key in &keys {
                let (dims, values) = outputs[observed_output(key).as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(failed)?;
                let channels = dims.last().copied().unwrap_or(0) as usize;
                visit(key, values, channels, &real);
            }
        }
        Ok(())
    }
}

/// Every site of the model, in graph order.
fn site_keys(config: &BertConfig) -> Vec<String> {
    (0..config.num_hidden_layers)
        .flat_map(|l| Site::ALL.map(|site| site.key(l)))
        .collect()
}

/// Calibrates `format`'s graph on `calibration`'s windows: the ranges of both batch-invariant
/// int8 forms, and the clips of the formats with static steps on top.
pub fn calibrate(
    weights: &Weights,
    config: &BertConfig,
    tokenizer: &Path,
    window: WindowConfig,
    calibration: &Calibration,
    format: WeightFormat,
) -> Result<Calibrated, ExportError> {
    let windows = Windows::of(tokenizer, window, calibration)?;
    let ranges = measure_ranges(weights, config, &windows)?;
    let clips = if format.needs_clips() {
        Some(measure_clips(
            weights,
            config,
            &windows,
            &ranges,
            calibration,
        )?)
    } else {
        None
    };
    Ok(Calibrated { ranges, clips })
}

/// Per-channel activation maxima at every dense input of the model.
fn measure_ranges(
    weights: &Weights,
    config: &BertConfig,
    windows: &Windows,
) -> Result<ActivationRanges, ExportError> {
    let options = GraphOptions {
        observe: true,
        ..GraphOptions::new(WeightFormat::Fp32, OpStyle::Primitive)
    };
    let mut ranges = ActivationRanges::default();
    windows.observe(weights, config, &options, |key, values, channels, real| {
        ranges.observe(key, values, channels, real)
    })?;
    Ok(ranges)
}

/// The clip of every site: the percentile of |input| of the smoothed row-wise graph.
fn measure_clips(
    weights: &Weights,
    config: &BertConfig,
    windows: &Windows,
    ranges: &ActivationRanges,
    calibration: &Calibration,
) -> Result<ActivationClips, ExportError> {
    let smoothing = Smoothing {
        ranges,
        alpha: calibration.alpha,
    };
    let options = GraphOptions {
        observe: true,
        smoothing: Some(smoothing),
        ..GraphOptions::new(WeightFormat::Int8Rowwise, OpStyle::Primitive)
    };
    let mut largest: HashMap<String, LargestMagnitudes> = HashMap::new();
    windows.observe(weights, config, &options, |key, values, channels, real| {
        largest
            .entry(key.to_string())
            .or_insert_with(|| {
                let count = windows.real_tokens * channels;
                LargestMagnitudes::for_percentile(count, calibration.clip_percentile)
            })
            .observe(values, channels, real)
    })?;
    Ok(ActivationClips {
        by_site: largest
            .into_iter()
            .map(|(key, values)| (key, values.value()))
            .collect(),
        percentile: calibration.clip_percentile,
    })
}
