//! The operators bertqa fuses into int8 graphs, run on ONNX Runtime's intra-op threads:
//! - `SmoothRowQuantize`: SmoothQuant's per-channel factors and the per-token quantization
//!   after them. In ONNX operators that is five passes over the activation (`Mul`, `Abs`,
//!   `ReduceMax`, `Mul`, `QuantizeLinear`) and four small nodes; here two, one of them in L1.
//! - `GeluSmoothRowQuantize`: the same with the exporter's GELU before the factors
//!   (`--kernels fused-attention` only: bertqa's erf, see `activation`).
//! - `SmoothQuantize`: the factors and a calibrated step (`Mul`, `QuantizeLinear`): one pass
//!   instead of two.

use std::cell::RefCell;

use ort::operator::{
    ComputeContext, Kernel, KernelContext, Operator, OperatorInput, OperatorOutput,
};
use ort::value::{PrimitiveTensorElementType, TensorElementType, ValueRef};

use super::activation::Activation;
use super::math::{smooth_quantize_fixed, smooth_quantize_row, RowQuantization};
use super::tasks::Shared;
use crate::runtime::widest::{run_widest, Vectorized};

/// The per-token operator's name in the [`DOMAIN`](super::DOMAIN) domain.
pub const PER_ROW: &str = "SmoothRowQuantize";
/// The per-token operator with GELU before it.
pub const GELU_PER_ROW: &str = "GeluSmoothRowQuantize";
/// The calibrated-step operator's name.
pub const FIXED_STEP: &str = "SmoothQuantize";

/// Inputs: the activation `[.., F]`, the smoothing factors `[F]` (optional), levels, floor
/// (scalars) and the zero point (u8 scalar). Outputs: the codes `[.., F]` (u8) and each row's
/// step `[.., 1]`. With [`Activation::Gelu`] (operator [`GELU_PER_ROW`]) the activation is
/// the GELU's input.
pub struct SmoothRowQuantize(pub Activation);

/// Inputs: the activation `[.., F]`, the smoothing factors `[F]` (optional), the step and the
/// zero point (u8), scalars. Output: the codes `[.., F]` (u8).
pub struct SmoothQuantize;

/// An f32 input every node of the operator has (the kernels' operators share these).
pub(super) fn float() -> OperatorInput {
    OperatorInput::required(TensorElementType::Float32)
}

/// An f32 input a node may leave out.
pub(super) fn optional_float() -> OperatorInput {
    OperatorInput::optional(TensorElementType::Float32)
}

/// An f32 output.
pub(super) fn float_output() -> OperatorOutput {
    OperatorOutput::required(TensorElementType::Float32)
}

fn codes() -> OperatorOutput {
    OperatorOutput::required(TensorElementType::Uint8)
}

fn zero_point() -> OperatorInput {
    OperatorInput::required(TensorElementType::Uint8)
}

impl Operator for SmoothRowQuantize {
    type Kernel<'attr> = QuantizeKernel;

    fn name(&self) -> &str {
        match self.0 {
            Activation::Identity => PER_ROW,
            Activation::Gelu => GELU_PER_ROW,
        }
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [float(), optional_float(), float(), float(), zero_point()]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [codes(), float_output()]
    }

    fn create_kernel<'attr>(&self, _: &KernelContext<'attr>) -> ort::Result<QuantizeKernel> {
        Ok(QuantizeKernel::PerRow(self.0))
    }
}

impl Operator for SmoothQuantize {
    type Kernel<'attr> = QuantizeKernel;

    fn name(&self) -> &str {
        FIXED_STEP
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [float(), optional_float(), float(), zero_point()]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [codes()]
    }

    fn create_kernel<'attr>(&self, _: &KernelContext<'attr>) -> ort::Result<QuantizeKernel> {
        Ok(QuantizeKernel::FixedStep)
    }
}

/// Both operators' kernel, stateless (every constant arrives as an input).
#[derive(Debug, Clone, Copy)]
pub enum QuantizeKernel {
    /// One step per row, from its largest magnitude, after the activation
    /// (`SmoothRowQuantize`, `GeluSmoothRowQuantize`).
    PerRow(Activation),
    /// The calibrated step of the site (`SmoothQuantize`).
    FixedStep,
}

/// How a site's rows get their step.
#[derive(Debug, Clone, Copy)]
enum Step {
    PerRow(RowQuantization),
    Fixed { step: f32, zero_point: u8 },
}

/// Input `i`, which the operator declares required.
pub(super) fn required(ctx: &ComputeContext, i: usize) -> ort::Result<ValueRef<'_>> {
    ctx.input(i)?
        .ok_or_else(|| ort::Error::new(format!("input {i} is missing")))
}

/// An input's floats, whatever its shape (the kernels check lengths themselves).
pub(super) fn floats<'v>(value: &'v ValueRef<'_>) -> ort::Result<&'v [f32]> {
    value.try_extract_tensor::<f32>().map(|(_, floats)| floats)
}

/// An optional input's floats, or None when the node leaves it out.
pub(super) fn optional_floats<'v>(
    value: &'v Option<ValueRef<'_>>,
) -> ort::Result<Option<&'v [f32]>> {
    value.as_ref().map(floats).transpose()
}

/// The first value of input `i`, a scalar constant of the site.
pub(super) fn first<T: PrimitiveTensorElementType + Copy + std::fmt::Debug>(
    ctx: &ComputeContext,
    i: usize,
) -> ort::Result<T> {
    let value = required(ctx, i)?;
    let (_, values) = value.try_extract_tensor::<T>()?;
    values
        .first()
        .copied()
        .ok_or_else(|| ort::Error::new(format!("input {i} is empty")))
}

/// Rows handed to one intra-op task: enough work (tens of microseconds) to outweigh a task's
/// cost, few enough that two threads share a one-window batch.
const ROWS_PER_TASK: usize = 16;

impl Kernel for QuantizeKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let step = match self {
            Self::PerRow(activation) => Step::PerRow(RowQuantization {
                levels: first::<f32>(ctx, 2)?,
                floor: first::<f32>(ctx, 3)?,
                zero_point: first::<u8>(ctx, 4)?,
                activation: *activation,
            }),
            Self::FixedStep => Step::Fixed {
                step: first::<f32>(ctx, 2)?,
                zero_point: first::<u8>(ctx, 3)?,
            },
        };
        let x = required(ctx, 0)?;
        let (shape, x) = x.try_extract_tensor::<f32>()?;
        let width = shape.last().map_or(0, |&w| w as usize);
        let factors = ctx.input(1)?;
        let ones;
        let smooth = match optional_floats(&factors)? {
            Some(factors) => factors,
            // Without smoothing factors the row is quantized as it is (x 1.0 changes no bit).
            None => {
                ones = vec![1.0; width];
                ones.as_slice()
            }
        };
        if width == 0 || smooth.len() != width {
            return Err(ort::Error::new(format!(
                "{self:?} kernel: input of shape {shape:?} against {} smoothing factors",
                smooth.len()
            )));
        }
        let mut codes = ctx
            .output(0, shape.to_vec())?
            .ok_or_else(|| ort::Error::new("codes output missing"))?;
        let (_, codes) = codes.try_extract_tensor_mut::<u8>()?;
        let rows = x.len() / width;
        let mut row_steps = match step {
            Step::PerRow(_) => {
                let mut row_shape = shape.to_vec();
                row_shape.pop();
                row_shape.push(1);
                Some(
                    ctx.output(1, row_shape)?
                        .ok_or_else(|| ort::Error::new("steps output missing"))?,
                )
            }
            Step::Fixed { .. } => None,
        };
        let steps = match row_steps.as_mut() {
            Some(value) => Some(Shared::new(
                value.try_extract_tensor_mut::<f32>()?.1.as_mut_ptr(),
            )),
            None => None,
        };
        let codes = Shared::new(codes.as_mut_ptr());
        ctx.par_for(rows.div_ceil(ROWS_PER_TASK), 0, |task| {
            let first = task * ROWS_PER_TASK;
            let count = ROWS_PER_TASK.min(rows - first);
            // SAFETY: each task takes only its own rows `first..first + count`, within the
            // `rows` rows ONNX Runtime allocated, alive until this call returns.
            let (codes, steps) = unsafe {
                (
                    codes.slice(first * width, count * width),
                    match &steps {
                        Some(steps) => steps.slice(first, count),
                        None => &mut [],
                    },
                )
            };
            let x = &x[first * width..][..count * width];
            quantize_rows(x, smooth, step, codes, steps);
        })
    }
}

thread_local! {
    /// One smoothed row per intra-op thread, reused across calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// One task's rows: the activation, the site's factors and step, where the codes and steps
/// go, and one row of scratch (`smooth.len()` values) for the per-row step's smoothed copy.
struct Rows<'a> {
    x: &'a [f32],
    smooth: &'a [f32],
    step: Step,
    codes: &'a mut [u8],
    steps: &'a mut [f32],
    scratch: &'a mut [f32],
}

/// Quantizes consecutive rows of `x`, with the widest vector instructions this CPU has (the
/// arithmetic is the same at every width, see [`super::math`]).
fn quantize_rows(x: &[f32], smooth: &[f32], step: Step, codes: &mut [u8], steps: &mut [f32]) {
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.resize(smooth.len(), 0.0);
        run_widest(Rows {
            x,
            smooth,
            step,
            codes,
            steps,
            scratch,
        });
    })
}

impl Vectorized for Rows<'_> {
    #[inline(always)]
    fn run(self) {
        let width = self.smooth.len();
        let rows = self
            .x
            .chunks_exact(width)
            .zip(self.codes.chunks_exact_mut(width));
        match self.step {
            Step::PerRow(site) => {
                for ((x, codes), row_step) in rows.zip(self.steps.iter_mut()) {
                    *row_step = smooth_quantize_row(x, self.smooth, site, self.scratch, codes);
                }
            }
            Step::Fixed { step, zero_point } => {
                for (x, codes) in rows {
                    smooth_quantize_fixed(x, self.smooth, step, zero_point, codes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::widest::Width;

    /// Rows of varied magnitudes (ties and values past the codes' range included) and
    /// factors, deterministic.
    fn rows_and_factors(width: usize, count: usize) -> (Vec<f32>, Vec<f32>) {
        let x = (0..width * count)
            .map(|i| {
                let wave = ((i * 7919 % 1000) as f32 - 500.0) / 50.0;
                if i % 97 == 0 {
                    0.5
                } else {
                    wave * (1 + i / width) as f32
                }
            })
            .collect();
        let smooth = (0..width).map(|i| 0.25 + (i % 13) as f32 * 0.125).collect();
        (x, smooth)
    }

    /// The codes and steps of every instruction-set path this CPU has, for `step`.
    fn every_path(x: &[f32], smooth: &[f32], step: Step) -> Vec<(Vec<u8>, Vec<f32>)> {
        let mut scratch = vec![0.0; smooth.len()];
        let mut results = Vec::new();
        for width_here in Width::every() {
            let (mut codes, mut steps) = (vec![0u8; x.len()], vec![0.0; x.len() / smooth.len()]);
            let task = Rows {
                x,
                smooth,
                step,
                codes: &mut codes,
                steps: &mut steps,
                scratch: &mut scratch,
            };
            width_here.run(task);
            results.push((codes, steps));
        }
        results
    }

    /// Meaningful in an optimized build, where the paths are vectorized at their widths:
    /// `make test` runs this module with `--release` too.
    #[test]
    fn every_vector_width_gives_the_same_codes_and_steps() {
        let (x, smooth) = rows_and_factors(1536 + 5, 9);
        let per_row = |activation| {
            Step::PerRow(RowQuantization {
                levels: 127.0,
                floor: 1e-12,
                zero_point: 128,
                activation,
            })
        };
        let steps = [
            per_row(Activation::Identity),
            per_row(Activation::Gelu),
            Step::Fixed {
                step: 0.37,
                zero_point: 128,
            },
        ];
        for step in steps {
            let results = every_path(&x, &smooth, step);
            #[cfg(target_arch = "x86_64")]
            assert!(
                results.len() >= 2,
                "every x86-64 CPU bertqa runs on has AVX2"
            );
            for other in &results[1..] {
                assert!(other == &results[0], "{step:?}: a vector width differs");
            }
            if let Step::Fixed { .. } = step {
                let codes = &results[0].0;
                assert!(
                    codes.contains(&0) && codes.contains(&255),
                    "the clamp is exercised"
                );
            }
        }
    }
}
