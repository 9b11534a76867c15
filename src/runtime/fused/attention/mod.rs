//! `Attention`: one layer's multi-head attention as one operator, in place of the thirteen
//! the exporter writes (`site`). ONNX Runtime runs them as separate passes with the heads
//! transposed in and out between them; here each head of each window is one pass over score
//! rows that stay in the L1 cache (`math`, at AVX-512 or AVX2 width: `x86`). The logits are
//! not the same bits as ONNX Runtime's (its products and softmax round differently), so this
//! is a `--kernels` level of its own; they are the same bits on every CPU, and a window's do
//! not depend on its batch.

mod math;
pub(super) mod site;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::cell::RefCell;

use ort::operator::{
    ComputeContext, Kernel, KernelContext, Operator, OperatorInput, OperatorOutput,
};
use ort::value::TensorElementType;

use super::kernels::{first, float, float_output, floats, required};
use super::tasks::Shared;
use math::{attend, Head, Scratch, BLOCK};

/// The operator's name in the [`DOMAIN`](super::DOMAIN) domain.
pub const ATTENTION: &str = "Attention";

/// Inputs: Q, K, V `[B, L, hidden]`, the additive mask `[B, 1, 1, L]` (f32), the heads shape
/// `[0, 0, heads, head size]` (int64) and the scores' scale (f32 scalar). Output: the context
/// `[B, L, hidden]`.
pub struct Attention;

impl Operator for Attention {
    type Kernel<'attr> = AttentionKernel;

    fn name(&self) -> &str {
        ATTENTION
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [
            float(),
            float(),
            float(),
            float(),
            OperatorInput::required(TensorElementType::Int64),
            float(),
        ]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [float_output()]
    }

    fn create_kernel<'attr>(&self, _: &KernelContext<'attr>) -> ort::Result<AttentionKernel> {
        Ok(AttentionKernel)
    }
}

/// The kernel, stateless (the scale and shapes arrive as inputs).
pub struct AttentionKernel;

/// Whether this CPU runs the kernel: AVX-512 F, or AVX2 with FMA (every x86-64 CPU bertqa has
/// met). Elsewhere the graph keeps its own attention.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            || (std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl Kernel for AttentionKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let q = required(ctx, 0)?;
        let (shape, q) = q.try_extract_tensor::<f32>()?;
        let [k, v, mask] = [1, 2, 3].map(|i| required(ctx, i));
        let (k, v, mask) = (k?, v?, mask?);
        let [k, v, mask] = [&k, &v, &mask].map(floats);
        let (k, v, mask) = (k?, v?, mask?);
        let heads = required(ctx, 4)?;
        let (_, heads) = heads.try_extract_tensor::<i64>()?;
        let scale = first::<f32>(ctx, 5)?;
        let layout = Layout::of(shape, heads)?;
        if k.len() != q.len() || v.len() != q.len() || mask.len() != layout.windows * layout.len {
            return Err(ort::Error::new(format!(
                "attention: Q {shape:?}, K {} and V {} values, mask {} values",
                k.len(),
                v.len(),
                mask.len()
            )));
        }
        if !available() {
            return Err(ort::Error::new("attention: this CPU has no AVX2 + FMA"));
        }
        let mut output = ctx
            .output(0, shape.to_vec())?
            .ok_or_else(|| ort::Error::new("attention output missing"))?;
        let out = Shared::new(output.try_extract_tensor_mut::<f32>()?.1.as_mut_ptr());
        let window = layout.len * layout.hidden;
        ctx.par_for(layout.windows * layout.heads, 0, |task| {
            let (b, h) = (task / layout.heads, task % layout.heads);
            let mask = &mask[b * layout.len..][..layout.len];
            let own = own_tokens(mask);
            let head = Head {
                q: &q[b * window..][..window],
                k: &k[b * window..][..window],
                v: &v[b * window..][..window],
                mask: &mask[..own],
                hidden: layout.hidden,
                offset: h * layout.head_dim,
                head_dim: layout.head_dim,
                scale,
            };
            // SAFETY: window `b`'s rows lie within the output ONNX Runtime allocated (alive
            // until this call returns), and only this task writes head `h`'s columns of them.
            run(&head, unsafe { out.at(b * window) });
            for row in own..layout.len {
                let first = b * window + row * layout.hidden + head.offset;
                // SAFETY: as above, a padding row's columns of head `h`.
                unsafe { out.slice(first, layout.head_dim) }.fill(0.0);
            }
        })
    }
}

/// A key whose mask is at most this is padding: BERT's -10,000, or a type's minimum.
const PADDING: f32 = -10_000.0;

/// How many of a window's tokens are its own: all up to its last key that is not padding (all
/// when every key is). The padding after them is left out of the window's attention: its
/// keys' exp would be exactly 0 (far below [`math::EXP_FLOOR`]) and no real token reads its
/// queries' rows, which are written as zeros. So a batch pays for its windows' own lengths.
fn own_tokens(mask: &[f32]) -> usize {
    mask.iter()
        .rposition(|&m| m > PADDING)
        .map_or(mask.len(), |last| last + 1)
}

/// The shapes of one call.
#[derive(Debug, Clone, Copy)]
struct Layout {
    windows: usize,
    len: usize,
    hidden: usize,
    heads: usize,
    head_dim: usize,
}

impl Layout {
    fn of(shape: &[i64], heads: &[i64]) -> ort::Result<Self> {
        let (&[b, l, hidden], &[_, _, h, d]) = (shape, heads) else {
            return Err(ort::Error::new(format!(
                "attention: Q {shape:?}, heads shape {heads:?}"
            )));
        };
        let [windows, len, hidden, heads, head_dim] = [b, l, hidden, h, d].map(|x| x as usize);
        if heads * head_dim != hidden
            || head_dim == 0
            || !head_dim.is_multiple_of(BLOCK)
            || len == 0
        {
            return Err(ort::Error::new(format!(
                "attention: {heads} heads of {head_dim} for {hidden} columns"
            )));
        }
        Ok(Self {
            windows,
            len,
            hidden,
            heads,
            head_dim,
        })
    }
}

thread_local! {
    /// Each intra-op thread's buffers, reused across calls.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One head of one window, at the widest width this CPU has. The scratch is borrowed here,
/// outside the width's function, so that its loops compile at that width (see
/// `kernels::quantize_rows`).
fn run(head: &Head, out: *mut f32) {
    SCRATCH.with_borrow_mut(|scratch| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512 F; `out` as `compute` checked and split it.
                return unsafe { attend_avx512(head, scratch, out) };
            }
            // SAFETY: `compute` checked `available`, so the CPU has AVX2 and FMA.
            unsafe { attend_avx2(head, scratch, out) }
        }
    })
}

/// Six rows at a time: 12 accumulators of AVX-512's 32 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn attend_avx512(head: &Head, scratch: &mut Scratch, out: *mut f32) {
    attend::<x86::Avx512, 6>(head, scratch, out);
}

/// Two rows at a time: 8 accumulators of AVX2's 16 registers (three rows spilled, and ran
/// 0.86-0.93x ONNX Runtime's attention on a Zen 4 held to AVX2, against 0.96-1.07x for two;
/// on an AVX2-only Zen 2, whose longer FMA latency wants more chains, the engine still ran
/// 0.91-0.95x as fast with three).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(head: &Head, scratch: &mut Scratch, out: *mut f32) {
    attend::<x86::Avx2, 2>(head, scratch, out);
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Deterministic values in about -2..2.
    fn values(count: usize, seed: usize) -> Vec<f32> {
        (0..count)
            .map(|i| (((i * 7919 + seed * 104_729) % 4001) as f32 - 2000.0) / 1000.0)
            .collect()
    }

    /// Q, K, V of one window of `len` rows and `heads` heads of `head_dim`.
    struct Window {
        q: Vec<f32>,
        k: Vec<f32>,
        v: Vec<f32>,
        hidden: usize,
        head_dim: usize,
    }

    impl Window {
        fn new(len: usize, heads: usize, head_dim: usize) -> Self {
            let hidden = heads * head_dim;
            let [q, k, v] = [1, 2, 3].map(|seed| values(len * hidden, seed));
            Self {
                q,
                k,
                v,
                hidden,
                head_dim,
            }
        }

        /// The context of every head, with `mask` (one additive value per key), by `attend`.
        fn context(
            &self,
            mask: &[f32],
            attend: unsafe fn(&Head, &mut Scratch, *mut f32),
        ) -> Vec<f32> {
            let len = mask.len();
            let mut out = vec![f32::NAN; len * self.hidden];
            let mut scratch = Scratch::default();
            for offset in (0..self.hidden).step_by(self.head_dim) {
                let head = Head {
                    q: &self.q[..len * self.hidden],
                    k: &self.k[..len * self.hidden],
                    v: &self.v[..len * self.hidden],
                    mask,
                    hidden: self.hidden,
                    offset,
                    head_dim: self.head_dim,
                    scale: 1.0 / (self.head_dim as f32).sqrt(),
                };
                // SAFETY: called only with the widths this CPU has (see `widths`); `out`
                // holds the window.
                unsafe { attend(&head, &mut scratch, out.as_mut_ptr()) };
            }
            out
        }

        /// Softmax attention in f64, the definition the kernel rounds.
        fn reference(&self, mask: &[f32]) -> Vec<f64> {
            let (len, hidden, d) = (mask.len(), self.hidden, self.head_dim);
            let mut out = vec![0.0; len * hidden];
            for offset in (0..hidden).step_by(d) {
                for i in 0..len {
                    let score = |j: usize| {
                        let dot: f64 = (0..d)
                            .map(|c| {
                                f64::from(self.q[i * hidden + offset + c])
                                    * f64::from(self.k[j * hidden + offset + c])
                            })
                            .sum();
                        dot / (d as f64).sqrt() + f64::from(mask[j])
                    };
                    let scores: Vec<f64> = (0..len).map(score).collect();
                    let top = scores.iter().copied().fold(f64::MIN, f64::max);
                    let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for c in 0..d {
                        out[i * hidden + offset + c] = (0..len)
                            .map(|j| weights[j] * f64::from(self.v[j * hidden + offset + c]))
                            .sum::<f64>()
                            / total;
                    }
                }
            }
            out
        }
    }

    /// The widths this CPU has.
    fn widths() -> Vec<unsafe fn(&Head, &mut Scratch, *mut f32)> {
        let mut found: Vec<unsafe fn(&Head, &mut Scratch, *mut f32)> = Vec::new();
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            found.push(attend_avx2);
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            found.push(attend_avx512);
        }
        found
    }

    #[test]
    fn every_width_gives_the_same_bits_close_to_the_definition() {
        assert!(
            available(),
            "every x86-64 CPU bertqa runs on has AVX2 + FMA"
        );
        for (len, heads, head_dim) in [(1, 2, 32), (7, 3, 32), (33, 2, 64), (180, 12, 32)] {
            let window = Window::new(len, heads, head_dim);
            let mut mask = vec![0.0; len];
            if len > 2 {
                mask[len - 2..].fill(-10_000.0);
            }
            let results: Vec<Vec<f32>> = widths()
                .into_iter()
                .map(|w| window.context(&mask, w))
                .collect();
            for other in &results[1..] {
                assert!(
                    other
                        .iter()
                        .zip(&results[0])
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{len} x {heads} x {head_dim}: a vector width differs"
                );
            }
            let gap = results[0]
                .iter()
                .zip(window.reference(&mask))
                .map(|(&a, b)| (f64::from(a) - b).abs())
                .fold(0.0, f64::max);
            assert!(
                gap < 1e-5,
                "{len} x {heads} x {head_dim}: {gap} from the definition"
            );
        }
    }

    #[test]
    fn a_windows_own_tokens_end_at_its_last_key_that_is_not_padding() {
        assert_eq!(own_tokens(&[0.0, -10_000.0, 0.0, -10_000.0, f32::MIN]), 3);
        assert_eq!(
            own_tokens(&[0.0, -9_999.0]),
            2,
            "a mask above BERT's is no padding"
        );
        assert_eq!(
            own_tokens(&[-10_000.0; 4]),
            4,
            "no own token: every key stays"
        );
    }

    #[test]
    fn masked_keys_and_padding_change_no_bit_of_the_real_rows() {
        let (len, padded) = (45, 70);
        let window = Window::new(padded, 4, 32);
        let alone = vec![0.0; len];
        let mut in_batch = vec![-10_000.0; padded];
        in_batch[..len].fill(0.0);
        for width in widths() {
            let unpadded = Window {
                q: window.q[..len * window.hidden].to_vec(),
                k: window.k[..len * window.hidden].to_vec(),
                v: window.v[..len * window.hidden].to_vec(),
                hidden: window.hidden,
                head_dim: window.head_dim,
            };
            let a = unpadded.context(&alone, width);
            let b = window.context(&in_batch, width);
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "a padded window's rows differ from the window alone"
            );
        }
    }
}
