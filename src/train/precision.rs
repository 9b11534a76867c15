//! Which numeric format a run trains in. `--precision auto` cannot trust the CPU's flags: on a
//! Zen 4 with AVX-512 BF16 bf16 trains at 1.7x fp32, but on an Intel Xeon with the same flag
//! and no AMX it trains at 0.69x (bench/RESULTS.md). So where bf16 hardware is reported, a
//! few training steps of one layer, shaped like the run's batches, are timed in both formats
//! and the faster one is taken. A resumed run keeps the format its checkpoint was made in, so
//! that noise in that measurement can never change a run halfway.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::bert::{span_loss, BertForQuestionAnswering};
use super::config::PrecisionChoice;
use crate::model::BertConfig;
use crate::runtime::cpu::CpuFeatures;

/// Numeric format of the matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32.
    Fp32,
    /// bf16 matrix products (AVX-512 BF16 / AMX on CPU, tensor cores on CUDA), fp32 elsewhere.
    Bf16,
}

impl Precision {
    /// The libtorch kind the matrix products run in.
    pub(super) fn kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// bf16 has to be this much faster to be taken: it costs a little accuracy, and a smaller
/// gain is within the measurement's noise.
const BF16_MUST_SAVE: f64 = 0.9;

/// Timed steps of each format, after one untimed step of each.
const TIMED_ROUNDS: usize = 3;

/// The fastest of the timed steps of one layer, forward and backward, in each format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTimes {
    /// In fp32.
    pub fp32: Duration,
    /// With bf16 matrix products.
    pub bf16: Duration,
}

/// Why a run trains in the format it does: printed at start, so that a user who sees a slow
/// run knows whether the flag, the checkpoint or a measurement chose it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PrecisionReason {
    /// `--precision fp32` or `bf16`.
    Asked,
    /// `--resume` of a run made in this format.
    Resumed,
    /// CUDA GPUs have bf16 tensor cores.
    Cuda,
    /// No AVX-512 BF16 or AMX: bf16 would be emulated, always slower.
    NoBf16Hardware,
    /// Both formats were timed on this machine.
    Measured(StepTimes),
}

impl fmt::Display for PrecisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Asked => write!(f, "as --precision asks"),
            Self::Resumed => write!(f, "as the checkpoint resumed was trained"),
            Self::Cuda => write!(f, "--precision auto on a CUDA GPU"),
            Self::NoBf16Hardware => write!(f, "--precision auto on a CPU without AVX-512 BF16 or AMX"),
            Self::Measured(t) => write!(
                f,
                "--precision auto: one layer's training step took {:.1} ms in fp32 and {:.1} ms in bf16 on this CPU",
                t.fp32.as_secs_f64() * 1e3,
                t.bf16.as_secs_f64() * 1e3
            ),
        }
    }
}

/// The format to train in and why. `checkpoint` is the format of the run being resumed, if
/// any; `measure` times both formats and is called only where the answer depends on it.
pub fn choose_precision(
    choice: PrecisionChoice,
    device: Device,
    checkpoint: Option<Precision>,
    cpu: CpuFeatures,
    measure: impl FnOnce() -> Result<StepTimes, tch::TchError>,
) -> Result<(Precision, PrecisionReason), tch::TchError> {
    Ok(match (choice, checkpoint) {
        (PrecisionChoice::Fp32, _) => (Precision::Fp32, PrecisionReason::Asked),
        (PrecisionChoice::Bf16, _) => (Precision::Bf16, PrecisionReason::Asked),
        (PrecisionChoice::Auto, Some(format)) => (format, PrecisionReason::Resumed),
        (PrecisionChoice::Auto, None) if device.is_cuda() => {
            (Precision::Bf16, PrecisionReason::Cuda)
        }
        (PrecisionChoice::Auto, None) if !cpu.has_fast_bf16() => {
            (Precision::Fp32, PrecisionReason::NoBf16Hardware)
        }
        (PrecisionChoice::Auto, None) => {
            let times = measure()?;
            let faster = if times.bf16.as_secs_f64() < BF16_MUST_SAVE * times.fp32.as_secs_f64() {
                Precision::Bf16
            } else {
                Precision::Fp32
            };
            (faster, PrecisionReason::Measured(times))
        }
    })
}

/// Times training steps of one randomly initialised layer of `config` on `[batch, length]`
/// windows, the formats alternating so that a change in the machine's speed meets both.
/// It draws from libtorch's generator (initialisation, dropout), which changes nothing a run
/// computes after it: the run reseeds before every micro-batch.
pub fn time_one_layer(
    config: &BertConfig,
    batch: usize,
    length: usize,
) -> Result<StepTimes, tch::TchError> {
    let one_layer = BertConfig {
        num_hidden_layers: 1,
        ..config.clone()
    };
    let vs = VarStore::new(Device::Cpu);
    let mut model = BertForQuestionAnswering::new(&vs.root(), &one_layer);
    let shape = [batch.max(1) as i64, length.max(2) as i64];
    let options = (Kind::Int64, Device::Cpu);
    let ids = Tensor::f_arange(shape[0] * shape[1], options)?
        .f_remainder(one_layer.vocab_size as i64)?
        .f_view(shape)?;
    let types = Tensor::f_zeros(shape, options)?;
    let mask = Tensor::f_ones(shape, options)?;
    let targets = Tensor::f_zeros([shape[0]], options)?;
    let mut step = |precision: Precision| -> Result<Duration, tch::TchError> {
        model.set_precision(precision);
        let started = Instant::now();
        let (start, end) = model.forward_t(&ids, &types, &mask, true);
        span_loss(&start, &end, &mask, &targets, &targets).f_backward()?;
        Ok(started.elapsed())
    };
    let mut best = StepTimes {
        fp32: Duration::MAX,
        bf16: Duration::MAX,
    };
    for round in 0..=TIMED_ROUNDS {
        let (fp32, bf16) = (step(Precision::Fp32)?, step(Precision::Bf16)?);
        if round > 0 {
            best.fp32 = best.fp32.min(fp32);
            best.bf16 = best.bf16.min(bf16);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_cpu() -> CpuFeatures {
        CpuFeatures {
            avx2: true,
            avx512f: true,
            avx512_bf16: true,
            ..CpuFeatures::default()
        }
    }

    fn times(fp32_ms: u64, bf16_ms: u64) -> StepTimes {
        StepTimes {
            fp32: Duration::from_millis(fp32_ms),
            bf16: Duration::from_millis(bf16_ms),
        }
    }

    fn auto(
        checkpoint: Option<Precision>,
        cpu: CpuFeatures,
        measured: StepTimes,
    ) -> (Precision, PrecisionReason, bool) {
        let mut called = false;
        let (precision, reason) =
            choose_precision(PrecisionChoice::Auto, Device::Cpu, checkpoint, cpu, || {
                called = true;
                Ok(measured)
            })
            .expect("the measurement cannot fail here");
        (precision, reason, called)
    }

    #[test]
    fn auto_takes_bf16_only_where_it_measured_clearly_faster() {
        let zen4 = times(100, 59);
        assert_eq!(
            auto(None, bf16_cpu(), zen4),
            (Precision::Bf16, PrecisionReason::Measured(zen4), true)
        );
        let xeon_without_amx = times(100, 145);
        assert_eq!(auto(None, bf16_cpu(), xeon_without_amx).0, Precision::Fp32);
        let within_noise = times(100, 95);
        assert_eq!(auto(None, bf16_cpu(), within_noise).0, Precision::Fp32);
    }

    #[test]
    fn nothing_is_measured_where_the_answer_is_known() {
        let would_pick_bf16 = times(100, 10);
        let avx2_only = CpuFeatures {
            avx2: true,
            ..CpuFeatures::default()
        };
        assert_eq!(
            auto(None, avx2_only, would_pick_bf16),
            (Precision::Fp32, PrecisionReason::NoBf16Hardware, false)
        );
        let cuda = choose_precision(
            PrecisionChoice::Auto,
            Device::Cuda(0),
            None,
            avx2_only,
            || panic!("a GPU is not measured"),
        );
        assert_eq!(cuda.ok(), Some((Precision::Bf16, PrecisionReason::Cuda)));
        let would_pick_fp32 = times(10, 100);
        assert_eq!(
            auto(Some(Precision::Bf16), bf16_cpu(), would_pick_fp32),
            (Precision::Bf16, PrecisionReason::Resumed, false)
        );
        for (choice, precision) in [
            (PrecisionChoice::Fp32, Precision::Fp32),
            (PrecisionChoice::Bf16, Precision::Bf16),
        ] {
            let chosen = choose_precision(choice, Device::Cpu, None, bf16_cpu(), || {
                panic!("an explicit --precision is not measured")
            });
            assert_eq!(chosen.ok(), Some((precision, PrecisionReason::Asked)));
        }
    }

    #[test]
    fn one_layer_is_timed_in_both_formats() {
        let _generator = super::super::libtorch_generator();
        let measured = time_one_layer(&BertConfig::tiny(50), 2, 9).expect("a step runs");
        assert!(measured.fp32 > Duration::ZERO && measured.fp32 < Duration::MAX);
        assert!(measured.bf16 > Duration::ZERO && measured.bf16 < Duration::MAX);
    }
}
