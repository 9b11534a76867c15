//! The training loop: length-bucketed batches, mixed precision, AdamW with warm-up/decay and
//! clipping, periodic dev evaluation with best-model selection and early stopping, and
//! checkpoints that `--resume` continues from exactly (same data order, same dropout masks,
//! same optimizer moments, hence the same loss curve).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tch::{nn::VarStore, Device};

use super::bert::{span_loss, BertForQuestionAnswering};
use super::checkpoint::load_weights;
use super::config::TrainConfig;
use super::data::{epoch_batches, to_tensors, TrainWindow};
use super::ending::{export_best, Ending, TrainSummary};
use super::evaluate::evaluate;
use super::log::RunLog;
use super::optim::{linear_schedule, AdamW};
use super::precision::{choose_precision, time_one_layer, Precision, PrecisionReason};
use super::setup::{prepare, resolve_device, Setup};
use super::state::{write_json, RunFolder, TrainerState};
use super::TrainError;
use crate::qa::batch::PaddedBatch;
use crate::runtime::cpu::CpuFeatures;

/// Trains as configured; `stop` (set by Ctrl-C) ends the run at the next step boundary with a
/// checkpoint.
pub fn train(config: &TrainConfig, stop: &AtomicBool) -> Result<TrainSummary, TrainError> {
    let mut run = Run::start(config)?;
    let ending = run.epochs(stop)?;
    run.finish(ending)
}

/// A run between its steps: the model, its optimizer, the schedule and where it writes.
struct Run<'c> {
    config: &'c TrainConfig,
    setup: Setup,
    device: Device,
    precision: Precision,
    precision_reason: PrecisionReason,
    vs: VarStore,
    model: BertForQuestionAnswering,
    optimizer: AdamW,
    folder: RunFolder,
    tokenizer: std::path::PathBuf,
    log: RunLog,
    bar: ProgressBar,
    state: TrainerState,
    /// Window lengths, for the length-bucketed batches of each epoch.
    lengths: Vec<usize>,
    total_steps: u64,
    warmup: u64,
}

impl<'c> Run<'c> {
    /// Loads data and weights, and the checkpoint with `--resume`.
    fn start(config: &'c TrainConfig) -> Result<Self, TrainError> {
        if let Some(threads) = config.threads {
            tch::set_num_threads(threads.max(1) as i32);
        }
        let device = resolve_device(config.device)?;
        let setup = prepare(config)?;
        tch::manual_seed(config.seed as i64);
        let vs = VarStore::new(device);
        let mut model = BertForQuestionAnswering::new(&vs.root(), &setup.bert_config);
        if !config.random_init && !config.resume {
            let report = load_weights(&vs, &config.model.join("model.safetensors"))?;
            eprintln!("finetune: new (randomly initialised) parameters: {:?}; unused checkpoint tensors: {:?}", report.missing, report.unexpected);
        }
        let mut optimizer = AdamW::new(&vs, config.weight_decay);
        let folder = RunFolder::create(&config.out)?;
        let lengths: Vec<usize> = setup.windows.iter().map(|w| w.window.len()).collect();
        let micro_per_epoch = lengths.len().div_ceil(config.batch_size);
        let steps_per_epoch = micro_per_epoch.div_ceil(config.grad_accum) as u64;
        let total_steps = config
            .max_steps
            .map_or(u64::MAX, |m| m.max(1))
            .min(steps_per_epoch * config.epochs as u64);
        let warmup = (total_steps as f64 * config.warmup_ratio).round() as u64;
        let mut state = initial_state(config, &folder, &vs, &mut optimizer, total_steps)?;
        let (precision, precision_reason) =
            training_precision(config, device, &setup, &lengths, state.precision)?;
        model.set_precision(precision);
        state.precision = Some(precision);
        let log = RunLog::open(
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
        Ok(Self {
            config,
            setup,
            device,
            precision,
            precision_reason,
            vs,
            model,
            optimizer,
            folder,
            tokenizer: config.model.join("tokenizer.json"),
            log,
            bar,
            state,
            lengths,
            total_steps,
            warmup,
        })
    }

    /// Steps through the remaining epochs until the schedule, early stopping, the step budget
    /// or Ctrl-C ends them.
    fn epochs(&mut self, stop: &AtomicBool) -> Result<Ending, TrainError> {
        let started_at_step = self.state.step;
        while self.state.epoch < self.config.epochs && self.state.step < self.total_steps {
            let c = self.config;
            let batches = epoch_batches(&self.lengths, c.batch_size, c.seed, self.state.epoch);
            while self.state.batch_in_epoch < batches.len() {
                self.step(&batches)?;
                if let Some(ending) = self.after_step(started_at_step, stop)? {
                    return Ok(ending);
                }
            }
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            let evaluated = self
                .state
                .evals
                .last()
                .is_some_and(|e| e.step == self.state.step);
            if !evaluated && self.evaluate_now()? {
                return Ok(Ending::EarlyStop);
            }
            self.save_last()?;
        }
        Ok(Ending::Schedule)
    }

    /// One optimizer step over the next `--grad-accum` micro-batches of `batches`.
    fn step(&mut self, batches: &[Vec<usize>]) -> Result<(), TrainError> {
        let (c, state) = (self.config, &mut self.state);
        let step_start = Instant::now();
        let group = state.batch_in_epoch..(state.batch_in_epoch + c.grad_accum).min(batches.len());
        let parts = group.len() as f64;
        let pad_id = self.setup.featurizer.pad_id();
        let (mut loss_sum, mut windows) = (0.0, 0usize);
        for b in group.clone() {
            // Dropout masks depend only on (seed, epoch, batch): resumes replay them.
            tch::manual_seed((c.seed ^ ((state.epoch as u64) << 32) ^ b as u64) as i64);
            let members: Vec<&TrainWindow> =
                batches[b].iter().map(|&i| &self.setup.windows[i]).collect();
            let padded = PaddedBatch::from_windows(
                &members.iter().map(|w| &w.window).collect::<Vec<_>>(),
                pad_id,
            );
            let starts: Vec<i64> = members.iter().map(|w| w.start).collect();
            let ends: Vec<i64> = members.iter().map(|w| w.end).collect();
            let t = to_tensors(&padded, Some((&starts, &ends)), self.device);
            let (start, end) =
                self.model
                    .forward_t(&t.input_ids, &t.token_type_ids, &t.attention_mask, true);
            let loss = span_loss(&start, &end, &t.attention_mask, &t.start, &t.end) / parts;
            loss.backward();
            loss_sum += loss.double_value(&[]);
            windows += members.len();
        }
        let grad_norm = self.optimizer.clip_grad_norm(1.0);
        let lr = linear_schedule(c.lr, state.step + 1, self.warmup, self.total_steps);
        self.optimizer.step(lr);
        state.step += 1;
        state.batch_in_epoch = group.end;
        state.windows_seen += windows as u64;
        state.train_seconds += step_start.elapsed().as_secs_f64();
        let speed = state.windows_seen as f64 / state.train_seconds.max(1e-9);
        self.log.write(&json!({"step": state.step, "epoch": state.epoch, "loss": loss_sum, "lr": lr, "grad_norm": grad_norm, "windows": windows, "windows_per_second": speed}))?;
        self.bar.set_position(state.step);
        self.bar.set_message(format!(
            "loss {loss_sum:.3} lr {lr:.2e} {speed:.1} windows/s"
        ));
        Ok(())
    }

    /// What follows a step: evaluation every `--eval-every`, a checkpoint every
    /// `--save-every`, and whether the loop ends here.
    fn after_step(
        &mut self,
        started_at_step: u64,
        stop: &AtomicBool,
    ) -> Result<Option<Ending>, TrainError> {
        let (c, step) = (self.config, self.state.step);
        if c.eval_every > 0 && step.is_multiple_of(c.eval_every) && self.evaluate_now()? {
            return Ok(Some(Ending::EarlyStop));
        }
        if step.is_multiple_of(c.save_every.max(1)) {
            self.save_last()?;
        }
        if step >= self.total_steps {
            return Ok(Some(Ending::Schedule));
        }
        if c.stop_after_steps
            .is_some_and(|n| step - started_at_step >= n)
        {
            return Ok(Some(Ending::Budget));
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(Some(Ending::Interrupted));
        }
        Ok(None)
    }

    /// Scores dev now, keeps `best/` when F1 improved; true when patience has run out.
    fn evaluate_now(&mut self) -> Result<bool, TrainError> {
        let record = evaluate(
            &self.model,
            &self.setup.featurizer,
            &self.setup.dev,
            self.device,
            self.config.eval_batch_tokens,
            self.state.step,
        )?;
        let state = &mut self.state;
        let improved = state.best().is_none_or(|b| record.f1 > b.f1);
        self.log
            .write(&json!({"step": state.step, "eval": record}))?;
        self.bar.println(format!(
            "step {}: dev EM {:.2} F1 {:.2} ({} questions, {:.0} s)",
            record.step, record.exact, record.f1, record.questions, record.seconds
        ));
        state.evals.push(record.clone());
        if improved {
            state.evals_without_gain = 0;
            let dir = self.folder.save_model(
                "best",
                &self.vs,
                &self.setup.bert_config,
                &self.tokenizer,
            )?;
            write_json(&dir.join("eval.json"), &record)?;
        } else {
            state.evals_without_gain += 1;
        }
        let patience = self.config.patience;
        Ok(patience > 0 && state.evals_without_gain >= patience)
    }

    fn save_last(&self) -> Result<(), TrainError> {
        self.folder.save_last(
            &self.vs,
            &self.optimizer,
            &self.state,
            &self.setup.bert_config,
            &self.tokenizer,
        )
    }

    /// The last evaluation and checkpoint; for a finished run also `metrics.json` and the
    /// exported model folder.
    fn finish(mut self, ending: Ending) -> Result<TrainSummary, TrainError> {
        let finished = ending.finished();
        if finished
            && self
                .state
                .evals
                .last()
                .is_none_or(|e| e.step != self.state.step)
        {
            self.evaluate_now()?;
        }
        self.save_last()?;
        self.bar.finish_and_clear();
        let state = &self.state;
        let summary = TrainSummary {
            finished,
            stop_reason: ending.reason(self.config.patience),
            steps: state.step,
            total_steps: self.total_steps,
            best: state.best().cloned(),
            evals: state.evals.clone(),
            windows_per_second: state.windows_seen as f64 / state.train_seconds.max(1e-9),
            train_seconds: state.train_seconds,
            data: self.setup.stats,
            precision: self.precision,
            precision_reason: self.precision_reason.to_string(),
            device: if self.device.is_cuda() {
                "cuda".into()
            } else {
                "cpu".into()
            },
        };
        if finished {
            write_json(&self.folder.path("metrics.json"), &summary)?;
            export_best(self.config, &self.folder, self.setup.squad_version)?;
        }
        Ok(summary)
    }
}

/// The format `--precision` resolves to on `device` (with `auto`, by timing one layer on
/// batches of the run's typical window length), and why, said on stderr too.
fn training_precision(
    config: &TrainConfig,
    device: Device,
    setup: &Setup,
    lengths: &[usize],
    checkpoint: Option<Precision>,
) -> Result<(Precision, PrecisionReason), TrainError> {
    // The median window length, worked out only where the choice needs the timing.
    let measure = || {
        let mut sorted = lengths.to_vec();
        sorted.sort_unstable();
        let typical_length = sorted
            .get(sorted.len() / 2)
            .copied()
            .unwrap_or(config.max_seq_len);
        time_one_layer(&setup.bert_config, config.batch_size, typical_length)
    };
    let (precision, reason) = choose_precision(
        config.precision,
        device,
        checkpoint,
        CpuFeatures::detect(),
        measure,
    )?;
    eprintln!("finetune: training in {precision} ({reason})");
    Ok((precision, reason))
}

/// A fresh state, or with `--resume` the checkpoint's, refused when the settings that shape
/// the loss curve changed.
fn initial_state(
    config: &TrainConfig,
    folder: &RunFolder,
    vs: &VarStore,
    optimizer: &mut AdamW,
    total_steps: u64,
) -> Result<TrainerState, TrainError> {
    if !config.resume {
        return Ok(TrainerState {
            total_steps,
            fingerprint: config.curve_fingerprint(),
            ..TrainerState::default()
        });
    }
    let state = folder.load_last(vs, optimizer)?;
    if state.fingerprint != config.curve_fingerprint() {
        return Err(TrainError::Resume(format!(
            "settings differ from the checkpoint's:\n  checkpoint: {}\n  now:        {}",
            state.fingerprint,
            config.curve_fingerprint()
        )));
    }
    Ok(state)
}
