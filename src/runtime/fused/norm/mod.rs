//! `AddLayerNormalization`: the end of a dense layer (the row-wise product's step, the bias,
//! the residual) and the layer normalization after it, as one operator in place of the two to
//! four the exporter writes (`site`). ONNX Runtime runs them as separate passes over the
//! `[L, hidden]` activation, each written out and read back; here each row is summed and
//! normalized while it is in the L1 cache (`math`). The normalization rounds as bertqa's
//! arithmetic does, not as ONNX Runtime's, so this is part of `--kernels fused-attention`:
//! the same bits on every CPU.

mod math;
pub(super) mod site;

use super::kernels::{float, float_output, floats, optional_float, optional_floats, required};
use super::tasks::Shared;
use crate::runtime::widest::{run_widest, Vectorized};
use math::{add_and_normalize, Normalization, RowSum};
use ort::operator::{
    ComputeContext, Kernel, KernelContext, Operator, OperatorInput, OperatorOutput,
};

/// The operator's name in the [`DOMAIN`](super::DOMAIN) domain.
pub const ADD_LAYER_NORMALIZATION: &str = "AddLayerNormalization";

/// The operator's one attribute: the epsilon added to each row's variance.
pub const EPSILON: &str = "epsilon";

/// Inputs: the dense layer's product `[.., hidden]`, its per-token step `[.., 1]` (optional),
/// the bias `[hidden]` (optional), the residual `[.., hidden]`, and the normalization's scale
/// and shift `[hidden]`. Output: the normalized rows `[.., hidden]`. Attribute: `epsilon`.
pub struct AddLayerNormalization;

impl Operator for AddLayerNormalization {
    type Kernel<'attr> = AddLayerNormKernel;

    fn name(&self) -> &str {
        ADD_LAYER_NORMALIZATION
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [
            float(),
            optional_float(),
            optional_float(),
            float(),
            float(),
            float(),
        ]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [float_output()]
    }

    fn create_kernel<'attr>(&self, ctx: &KernelContext<'attr>) -> ort::Result<AddLayerNormKernel> {
        let epsilon = ctx
            .get::<f32>(EPSILON)
            .ok_or_else(|| ort::Error::new("AddLayerNormalization: no epsilon attribute"))?;
        Ok(AddLayerNormKernel { epsilon })
    }
}

/// The kernel, holding the node's epsilon (the rest arrives as inputs).
pub struct AddLayerNormKernel {
    epsilon: f32,
}

/// Values of one intra-op task's rows: a few microseconds of work, enough to outweigh a
/// task's cost, few enough that two threads share a one-window batch.
const VALUES_PER_TASK: usize = 8 * 1024;

/// One task's rows: the inputs' rows, the layer's constants and where the rows go.
struct Rows<'a> {
    product: &'a [f32],
    steps: Option<&'a [f32]>,
    bias: &'a [f32],
    residual: &'a [f32],
    norm: Normalization<'a>,
    out: &'a mut [f32],
}

impl Vectorized for Rows<'_> {
    #[inline(always)]
    fn run(self) {
        let width = self.norm.gamma.len();
        let rows = self
            .out
            .chunks_exact_mut(width)
            .zip(self.product.chunks_exact(width))
            .zip(self.residual.chunks_exact(width))
            .enumerate();
        for (i, ((out, product), residual)) in rows {
            let sum = RowSum {
                product,
                step: self.steps.map_or(1.0, |steps| steps[i]),
                bias: self.bias,
                residual,
            };
            add_and_normalize(sum, self.norm, out);
        }
    }
}

impl Kernel for AddLayerNormKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let product = required(ctx, 0)?;
        let (shape, product) = product.try_extract_tensor::<f32>()?;
        let (steps, bias) = (ctx.input(1)?, ctx.input(2)?);
        let (steps, bias) = (optional_floats(&steps)?, optional_floats(&bias)?);
        let [residual, gamma, beta] = [3, 4, 5].map(|i| required(ctx, i));
        let (residual, gamma, beta) = (residual?, gamma?, beta?);
        let [residual, gamma, beta] = [&residual, &gamma, &beta].map(floats);
        let (residual, gamma, beta) = (residual?, gamma?, beta?);
        let width = gamma.len();
        let rows = product.len().checked_div(width).unwrap_or(0);
        let no_bias = vec![-0.0; width];
        let bias = bias.unwrap_or(&no_bias);
        let fits = width > 0
            && shape.last() == Some(&(width as i64))
            && residual.len() == product.len()
            && [beta.len(), bias.len()] == [width; 2]
            && steps.is_none_or(|s| s.len() == rows);
        if !fits {
            return Err(ort::Error::new(format!(
                "AddLayerNormalization: product {shape:?}, residual {}, {} steps, bias {}, \
                 scale {width}, shift {}",
                residual.len(),
                steps.map_or(0, <[f32]>::len),
                bias.len(),
                beta.len()
            )));
        }
        let mut output = ctx
            .output(0, shape.to_vec())?
            .ok_or_else(|| ort::Error::new("AddLayerNormalization output missing"))?;
        let out = Shared::new(output.try_extract_tensor_mut::<f32>()?.1.as_mut_ptr());
        let norm = Normalization {
            gamma,
            beta,
            epsilon: self.epsilon,
        };
        let per_task = (VALUES_PER_TASK / width).max(1);
        ctx.par_for(rows.div_ceil(per_task), 0, |task| {
            let first = task * per_task;
            let count = per_task.min(rows - first);
            let values = first * width..(first + count) * width;
            run_widest(Rows {
                product: &product[values.clone()],
                steps: steps.map(|s| &s[first..first + count]),
                bias,
                residual: &residual[values.clone()],
                norm,
                // SAFETY: each task writes only its own rows, within the output ONNX Runtime
                // allocated for `rows` rows, alive until this call returns.
                out: unsafe { out.slice(values.start, values.len()) },
            });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::widest::Width;

    #[test]
    fn every_vector_width_gives_the_same_bits() {
        let (width, rows) = (384 + 5, 7);
        let wave = |seed: usize, count: usize| -> Vec<f32> {
            (0..count)
                .map(|i| (((i * 7919 + seed * 104_729) % 3001) as f32 - 1500.0) / 300.0)
                .collect()
        };
        let (product, residual) = (wave(1, width * rows), wave(2, width * rows));
        let (bias, gamma, beta, steps) = (
            wave(3, width),
            wave(4, width),
            wave(5, width),
            wave(6, rows),
        );
        let mut results = Vec::new();
        for width_here in Width::every() {
            let mut out = vec![f32::NAN; width * rows];
            let task = Rows {
                product: &product,
                steps: Some(&steps),
                bias: &bias,
                residual: &residual,
                norm: Normalization {
                    gamma: &gamma,
                    beta: &beta,
                    epsilon: 1e-12,
                },
                out: &mut out,
            };
            width_here.run(task);
            results.push(out);
        }
        #[cfg(target_arch = "x86_64")]
        assert!(
            results.len() >= 2,
            "every x86-64 CPU bertqa runs on has AVX2"
        );
        for other in &results[1..] {
            let same = other
                .iter()
                .zip(&results[0])
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "a vector width differs");
        }
        assert!(results[0].iter().all(|v| v.is_finite()));
    }
}
