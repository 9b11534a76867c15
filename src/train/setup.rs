//! What a run loads before its first step: the device and numeric format it trains in, the
//! training windows with their labels, and the dev set it is judged on; bad settings are
//! refused here, before any weight is touched.

use tch::Device;

use super::config::{DeviceChoice, TrainConfig};
use super::data::{training_windows, DataStats, TrainWindow};
use super::evaluate::DevSet;
use super::TrainError;
use crate::model::BertConfig;
use crate::qa::features::Featurizer;
use crate::qa::squad::passages::hard_negatives;
use crate::qa::squad::{load_squad, SquadVersion};

/// The device `--device` names, or why it cannot be had.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, TrainError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(TrainError::Config("--device cuda, but libtorch sees no CUDA GPU (the CPU libtorch of setup-native.sh has none)".into())),
    }
}

/// Everything loaded before the first step.
pub struct Setup {
    /// Windows text as the model folder will.
    pub featurizer: Featurizer,
    /// The architecture.
    pub bert_config: BertConfig,
    /// Every training window with its labels.
    pub windows: Vec<TrainWindow>,
    /// What the training file became.
    pub stats: DataStats,
    /// The dev questions.
    pub dev: DevSet,
    /// What the model learns to answer: v2.0 (a null answer too) when the training set holds
    /// unanswerable examples, the file's own or made by `--negatives`.
    pub squad_version: SquadVersion,
}

/// Checks the settings and loads the model config, tokenizer, training and dev files.
pub fn prepare(config: &TrainConfig) -> Result<Setup, TrainError> {
    if config.batch_size == 0 || config.grad_accum == 0 || config.epochs == 0 {
        return Err(TrainError::Config(
            "--batch-size, --grad-accum and --epochs must be at least 1".into(),
        ));
    }
    if !(config.negatives.is_finite() && config.negatives >= 0.0) {
        return Err(TrainError::Config(
            "--negatives must be a number of at least 0".into(),
        ));
    }
    if !(0.0..1.0).contains(&config.warmup_ratio) || config.lr <= 0.0 {
        return Err(TrainError::Config(
            "--warmup-ratio must be in [0, 1) and --lr positive".into(),
        ));
    }
    let bert_config = BertConfig::from_file(&config.model.join("config.json"))?;
    if config.max_seq_len > bert_config.max_position_embeddings {
        return Err(TrainError::Config(format!(
            "--max-seq-len {} exceeds the model's {} positions",
            config.max_seq_len, bert_config.max_position_embeddings
        )));
    }
    let featurizer = Featurizer::from_file(&config.model.join("tokenizer.json"), config.window())?;
    let train_file = load_squad(&config.train)?;
    let mismatched = train_file.check_answers().mismatched.len();
    if mismatched > 0 {
        eprintln!("finetune: {mismatched} answers of {} have offsets that do not match their text; they are not used as labels", config.train.display());
    }
    let mut examples = train_file.examples();
    if let Some(limit) = config.train_limit {
        examples.truncate(limit);
    }
    let negatives = hard_negatives(&examples, config.negatives, config.seed);
    let negative_count = negatives.len();
    examples.extend(negatives);
    let squad_version = if examples.iter().any(|e| e.is_impossible) {
        SquadVersion::V2
    } else {
        SquadVersion::V1
    };
    let (windows, mut stats) = training_windows(&examples, &featurizer)?;
    stats.negatives = negative_count;
    if windows.is_empty() {
        return Err(TrainError::Config(
            "the training file produced no windows".into(),
        ));
    }
    let dev = DevSet::new(load_squad(&config.dev)?, config.dev_limit);
    Ok(Setup {
        featurizer,
        bert_config,
        windows,
        stats,
        dev,
        squad_version,
    })
}
