//! The training loop: length-bucketed batches, mixed precision, AdamW with warm-up/decay and
//! clipping, periodic dev evaluation with best-model selection and early stopping, and
//! checkpoints that `--resume` continues from exactly (same data order, same dropout masks,
//! same optimizer moments, hence the same loss curve).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;
use tch::{nn::VarStore, Device};

use super::bert::{span_loss, BertForQuestionAnswering, Precision};
use super::checkpoint::load_weights;
use super::config::{DeviceChoice, PrecisionChoice, TrainConfig};
use super::data::{epoch_batches, to_tensors, training_windows, DataStats, TrainWindow};
use super::evaluate::{evaluate, DevSet};
use super::log::RunLog;
use super::optim::{linear_schedule, AdamW};
use super::state::{write_json, EvalRecord, RunFolder, TrainerState};
use super::TrainError;
use crate::model::BertConfig;
use crate::onnx::bert::WeightFormat;
use crate::pipeline::calibrate::Calibration;
use crate::pipeline::export::{export_model_folder, ExportOptions};
use crate::qa::batch::PaddedBatch;
use crate::qa::features::Featurizer;
use crate::qa::squad::load_squad;
use crate::runtime::cpu::CpuFeatures;

/// What a run did, also written to `metrics.json` when it finishes.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// False when stopped by Ctrl-C or `--stop-after-steps` (resume to continue).
    pub finished: bool,
    /// Why it stopped.
    pub stop_reason: String,
    /// Optimizer steps done in total.
    pub steps: u64,
    /// Steps the schedule runs for.
    pub total_steps: u64,
    /// Best dev evaluation.
    pub best: Option<EvalRecord>,
    /// Every dev evaluation.
    pub evals: Vec<EvalRecord>,
    /// Training windows per second (evaluation excluded).
    pub windows_per_second: f64,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// What the training file became.
    pub data: DataStats,
    /// "fp32" or "bf16".
    pub precision: String,
    /// "cpu" or "cuda".
    pub device: String,
}

fn resolve_device(choice: DeviceChoice) -> Result<Device, TrainError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(TrainError::Config("--device cuda, but libtorch sees no CUDA GPU (the CPU libtorch of setup-native.sh has none)".into())),
    }
}

/// bf16 where the hardware has it: CUDA, or CPUs with AVX-512 BF16 or AMX (measured here on
/// AVX-512 BF16 without AMX: 2.4x the fp32 training speed, see bench/RESULTS.md).
fn resolve_precision(choice: PrecisionChoice, device: Device) -> Precision {
    match choice {
        PrecisionChoice::Fp32 => Precision::Fp32,
        PrecisionChoice::Bf16 => Precision::Bf16,
        PrecisionChoice::Auto if device.is_cuda() || CpuFeatures::detect().has_fast_bf16() => {
            Precision::Bf16
        }
        PrecisionChoice::Auto => Precision::Fp32,
    }
}

/// Everything loaded before the first step.
struct Setup {
    featurizer: Featurizer,
    bert_config: BertConfig,
    windows: Vec<TrainWindow>,
    stats: DataStats,
    dev: DevSet,
}

fn prepare(config: &TrainConfig) -> Result<Setup, TrainError> {
    if config.batch_size == 0 || config.grad_accum == 0 || config.epochs == 0 {
        return Err(TrainError::Config(
            "--batch-size, --grad-accum and --epochs must be at least 1".into(),
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
    let (windows, stats) = training_windows(&examples, &featurizer)?;
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
    })
}

/// Exports `best/` to the servable model folder `model/`: the fp32 graph and the smoothed
/// row-wise int8 graph, calibrated on the training file (the int8 form closest to fp32,
/// bench/RESULTS.md).
fn export_best(config: &TrainConfig, folder: &RunFolder, dev: &DevSet) -> Result<(), TrainError> {
    let best = folder.path("best");
    if !best.join("model.safetensors").is_file() {
        return Ok(());
    }
    let options = ExportOptions {
        window: config.window(),
        squad_version: dev.file.version_kind(),
        int8: Some(WeightFormat::Int8Rowwise),
        calibration: Some(Calibration::on(config.train.clone())),
        ..ExportOptions::default()
    };
    export_model_folder(&best, &folder.path("model"), &options)
        .map_err(|e| TrainError::Io(format!("export of best/: {e}")))?;
    Ok(())
}

/// Trains as configured; `stop` (set by Ctrl-C) ends the run at the next step boundary with a
/// checkpoint.
pub fn train(config: &TrainConfig, stop: &AtomicBool) -> Result<TrainSummary, TrainError> {
    if let Some(threads) = config.threads {
        tch::set_num_threads(threads.max(1) as i32);
    }
    let device = resolve_device(config.device)?;
    let precision = resolve_precision(config.precision, device);
    let setup = prepare(config)?;
    tch::manual_seed(config.seed as i64);
    let vs = VarStore::new(device);
    let mut model = BertForQuestionAnswering::new(&vs.root(), &setup.bert_config);
    model.set_precision(precision);
    if !config.random_init && !config.resume {
        let report = load_weights(&vs, &config.model.join("model.safetensors"))?;
        eprintln!("finetune: new (randomly initialised) parameters: {:?}; unused checkpoint tensors: {:?}", report.missing, report.unexpected);
    }
    let mut optimizer = AdamW::new(&vs, config.weight_decay);
    let folder = RunFolder::create(&config.out)?;
    let tokenizer = config.model.join("tokenizer.json");

    let lengths: Vec<usize> = setup.windows.iter().map(|w| w.window.len()).collect();
    let micro_per_epoch = lengths.len().div_ceil(config.batch_size);
    let steps_per_epoch = micro_per_epoch.div_ceil(config.grad_accum) as u64;
    let total_steps = config
        .max_steps
        .map_or(u64::MAX, |m| m.max(1))
        .min(steps_per_epoch * config.epochs as u64);
    let warmup = (total_steps as f64 * config.warmup_ratio).round() as u64;
    let mut state = if config.resume {
        let state = folder.load_last(&vs, &mut optimizer)?;
        if state.fingerprint != config.curve_fingerprint() {
            return Err(TrainError::Resume(format!(
                "settings differ from the checkpoint's:\n  checkpoint: {}\n  now:        {}",
                state.fingerprint,
                config.curve_fingerprint()
            )));
        }
        state
    } else {
        TrainerState {
            total_steps,
            fingerprint: config.curve_fingerprint(),
            ..TrainerState::default()
        }
    };
    let mut log = RunLog::open(
        &folder.path("log.jsonl"),
        config.resume.then_some(state.step),
    )?;
    let bar = if config.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total_steps)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps | {msg} | ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(state.step);
    let pad_id = setup.featurizer.pad_id();
    let started_at_step = state.step;
    let mut stop_reason = String::from("schedule complete");
    let mut finished = true;

    let evaluate_now = |state: &mut TrainerState,
                        model: &BertForQuestionAnswering,
                        log: &mut RunLog|
     -> Result<bool, TrainError> {
        let record = evaluate(
            model,
            &setup.featurizer,
            &setup.dev,
            device,
            config.eval_batch_tokens,
            state.step,
        )?;
        let improved = state.best().is_none_or(|b| record.f1 > b.f1);
        log.write(&json!({"step": state.step, "eval": record}))?;
        bar.println(format!(
            "step {}: dev EM {:.2} F1 {:.2} ({} questions, {:.0} s)",
            record.step, record.exact, record.f1, record.questions, record.seconds
        ));
        state.evals.push(record.clone());
        if improved {
            state.evals_without_gain = 0;
            let dir = folder.save_model("best", &vs, &setup.bert_config, &tokenizer)?;
            write_json(&dir.join("eval.json"), &record)?;
        } else {
            state.evals_without_gain += 1;
        }
        Ok(config.patience > 0 && state.evals_without_gain >= config.patience)
    };

    'epochs: while state.epoch < config.epochs && state.step < total_steps {
        let batches = epoch_batches(&lengths, config.batch_size, config.seed, state.epoch);
        while state.batch_in_epoch < batches.len() {
            let step_start = Instant::now();
            let group =
                state.batch_in_epoch..(state.batch_in_epoch + config.grad_accum).min(batches.len());
            let parts = group.len() as f64;
            let (mut loss_sum, mut windows) = (0.0, 0usize);
            for b in group.clone() {
                // Dropout masks depend only on (seed, epoch, batch): resumes replay them.
                tch::manual_seed((config.seed ^ ((state.epoch as u64) << 32) ^ b as u64) as i64);
                let members: Vec<&TrainWindow> =
                    batches[b].iter().map(|&i| &setup.windows[i]).collect();
                let padded = PaddedBatch::from_windows(
                    &members.iter().map(|w| &w.window).collect::<Vec<_>>(),
                    pad_id,
                );
                let starts: Vec<i64> = members.iter().map(|w| w.start).collect();
                let ends: Vec<i64> = members.iter().map(|w| w.end).collect();
                let t = to_tensors(&padded, Some((&starts, &ends)), device);
                let (start, end) =
                    model.forward_t(&t.input_ids, &t.token_type_ids, &t.attention_mask, true);
                let loss = span_loss(&start, &end, &t.attention_mask, &t.start, &t.end) / parts;
                loss.backward();
                loss_sum += loss.double_value(&[]);
                windows += members.len();
            }
            let grad_norm = optimizer.clip_grad_norm(1.0);
            let lr = linear_schedule(config.lr, state.step + 1, warmup, total_steps);
            optimizer.step(lr);
            state.step += 1;
            state.batch_in_epoch = group.end;
            state.windows_seen += windows as u64;
            state.train_seconds += step_start.elapsed().as_secs_f64();
            let speed = state.windows_seen as f64 / state.train_seconds.max(1e-9);
            log.write(&json!({"step": state.step, "epoch": state.epoch, "loss": loss_sum, "lr": lr, "grad_norm": grad_norm, "windows": windows, "windows_per_second": speed}))?;
            bar.set_position(state.step);
            bar.set_message(format!(
                "loss {loss_sum:.3} lr {lr:.2e} {speed:.1} windows/s"
            ));
            if config.eval_every > 0
                && state.step.is_multiple_of(config.eval_every)
                && evaluate_now(&mut state, &model, &mut log)?
            {
                stop_reason = format!("early stop: no F1 gain in {} evaluations", config.patience);
                break 'epochs;
            }
            if state.step.is_multiple_of(config.save_every.max(1)) {
                folder.save_last(&vs, &optimizer, &state, &setup.bert_config, &tokenizer)?;
            }
            if state.step >= total_steps {
                break 'epochs;
            }
            let budget_spent = config
                .stop_after_steps
                .is_some_and(|n| state.step - started_at_step >= n);
            if budget_spent || stop.load(Ordering::SeqCst) {
                (finished, stop_reason) = (
                    false,
                    if budget_spent {
                        "--stop-after-steps reached".into()
                    } else {
                        "interrupted".into()
                    },
                );
                break 'epochs;
            }
        }
        state.epoch += 1;
        state.batch_in_epoch = 0;
        let evaluated = state.evals.last().is_some_and(|e| e.step == state.step);
        if !evaluated && evaluate_now(&mut state, &model, &mut log)? {
            stop_reason = format!("early stop: no F1 gain in {} evaluations", config.patience);
            break;
        }
        folder.save_last(&vs, &optimizer, &state, &setup.bert_config, &tokenizer)?;
    }
    if finished && state.evals.last().is_none_or(|e| e.step != state.step) {
        evaluate_now(&mut state, &model, &mut log)?;
    }
    folder.save_last(&vs, &optimizer, &state, &setup.bert_config, &tokenizer)?;
    bar.finish_and_clear();
    let summary = TrainSummary {
        finished,
        stop_reason,
        steps: state.step,
        total_steps,
        best: state.best().cloned(),
        evals: state.evals.clone(),
        windows_per_second: state.windows_seen as f64 / state.train_seconds.max(1e-9),
        train_seconds: state.train_seconds,
        data: setup.stats,
        precision: format!("{precision:?}").to_lowercase(),
        device: if device.is_cuda() {
            "cuda".into()
        } else {
            "cpu".into()
        },
    };
    if finished {
        write_json(&folder.path("metrics.json"), &summary)?;
        export_best(config, &folder, &setup.dev)?;
    }
    Ok(summary)
}
