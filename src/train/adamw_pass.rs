//! AdamW's update of one fp32 CPU parameter as a single pass over its memory.
//!
//! Written as libtorch tensor operations, one update reads or writes a parameter-sized tensor
//! about 24 times (nine in-place passes, the clipping scale and the gradient's zeroing): for
//! MiniLM's 91 MB of weights, some 2 GB of memory traffic per step. Here the weight, both
//! moments and the gradient are each read once and written once (the gradient left zero for
//! the next backward pass), 8 accesses instead of 24.
//! The Hugging Face Trainer's default on torch 2.8 and later, `adamw_torch_fused`, does the
//! same. Elements are independent, so every vector width gives the same bits.

use super::omp_team;
use crate::runtime::widest::{run_widest, Vectorized};

/// The constants of one update, the same for every element of every parameter of a group.
#[derive(Debug, Clone, Copy)]
pub struct Coefficients {
    /// Multiplies each gradient first: global-norm clipping's factor (1 when not clipping).
    pub grad_scale: f32,
    /// `1 - β1`: how far the first moment moves toward the gradient.
    pub first_rate: f32,
    /// `1 - β2`: how far the second moment moves toward the squared gradient.
    pub second_rate: f32,
    /// `1 - lr · weight_decay` (1 where the parameter takes no decay).
    pub decay: f32,
    /// `lr / (1 - β1^t)`: the learning rate with the first moment's bias correction.
    pub step_size: f32,
    /// `1 / sqrt(1 - β2^t)`: the second moment's bias correction, applied to its root.
    pub root_correction: f32,
    /// Added to the corrected root so that a zero second moment does not divide by zero.
    pub eps: f32,
}

/// The four equally long views of one parameter that an update reads and writes.
pub struct ParamSlices<'a> {
    /// The weights, updated in place.
    pub value: &'a mut [f32],
    /// The gradient, read, then left zero for the next backward pass to accumulate into.
    pub grad: &'a mut [f32],
    /// Adam's first moment (the gradient's running mean).
    pub first: &'a mut [f32],
    /// Adam's second moment (the squared gradient's running mean).
    pub second: &'a mut [f32],
}

/// One AdamW step over `p`, at the widest vectors this CPU has, large parameters split over
/// libtorch's threads ([`omp_team`]: each element's update is its own).
pub fn update(p: ParamSlices<'_>, c: Coefficients) {
    let cuts = omp_team::ranges(p.value.len(), 64);
    let value = omp_team::split_mut(p.value, &cuts);
    let grad = omp_team::split_mut(p.grad, &cuts);
    let first = omp_team::split_mut(p.first, &cuts);
    let second = omp_team::split_mut(p.second, &cuts);
    let parts: Vec<ParamSlices> = value
        .into_iter()
        .zip(grad)
        .zip(first.into_iter().zip(second))
        .map(|((value, grad), (first, second))| ParamSlices {
            value,
            grad,
            first,
            second,
        })
        .collect();
    omp_team::run_parts(parts, |part| run_widest(Update(part, c)));
}

/// [`update`]'s work, compiled at each width by [`run_widest`]: square root and division
/// vectorize; nothing is fused into FMAs, so each width rounds alike.
struct Update<'a>(ParamSlices<'a>, Coefficients);

impl Vectorized for Update<'_> {
    #[inline(always)]
    fn run(self) {
        let Update(p, c) = self;
        let elements = p
            .value
            .iter_mut()
            .zip(p.grad.iter_mut())
            .zip(p.first.iter_mut().zip(p.second.iter_mut()));
        for ((w, g), (m, v)) in elements {
            let grad = *g * c.grad_scale;
            *m += c.first_rate * (grad - *m);
            *v += c.second_rate * (grad * grad - *v);
            *w = *w * c.decay - c.step_size * *m / (v.sqrt() * c.root_correction + c.eps);
            *g = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::widest::Width;

    /// Deterministic values in about [-1, 1], different for each `seed`.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let bits = crate::qa::random::splitmix64_at(seed, i as u64);
                (bits >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn coefficients() -> Coefficients {
        Coefficients {
            grad_scale: 0.5,
            first_rate: 0.1,
            second_rate: 0.001,
            decay: 1.0 - 1e-3 * 0.01,
            step_size: 1e-3 / 0.19,
            root_correction: 1.0 / 0.001999f32.sqrt(),
            eps: 1e-8,
        }
    }

    /// Runs `update_with` on fresh copies of one parameter's state; returns the four slices.
    fn run(len: usize, update_with: impl FnOnce(ParamSlices<'_>, Coefficients)) -> [Vec<f32>; 4] {
        let [mut w, mut g, mut m, v] = [1, 2, 3, 4].map(|seed| values(len, seed));
        let mut v: Vec<f32> = v.iter().map(|x| x.abs()).collect();
        let p = ParamSlices {
            value: &mut w,
            grad: &mut g,
            first: &mut m,
            second: &mut v,
        };
        update_with(p, coefficients());
        [w, g, m, v]
    }

    #[test]
    fn every_width_gives_the_bits_of_the_plain_loop() {
        // Lengths around the 16-lane vectors and their unrolled loops, tails included, and one
        // that `update` splits over a team of two threads.
        tch::set_num_threads(2);
        for len in [
            1,
            15,
            16,
            17,
            63,
            64,
            65,
            1000,
            4099,
            3 * omp_team::MIN_PART + 7,
        ] {
            let want = run(len, |p, c| Width::Baseline.run(Update(p, c)));
            assert_eq!(run(len, update), want, "length {len}");
            for width in Width::every() {
                let got = run(len, |p, c| width.run(Update(p, c)));
                assert_eq!(got, want, "{width:?}, length {len}");
            }
        }
    }

    #[test]
    fn matches_the_textbook_update_in_f64_and_clears_the_gradient() {
        let len = 1000;
        let [w0, g0, m0, v0] = [1, 2, 3, 4].map(|seed| values(len, seed));
        let [w, g, m, v] = run(len, update);
        let c = coefficients();
        for i in 0..len {
            let grad = f64::from(g0[i]) * f64::from(c.grad_scale);
            let m1 = 0.9 * f64::from(m0[i]) + 0.1 * grad;
            let v1 = 0.999 * f64::from(v0[i].abs()) + 0.001 * grad * grad;
            let root = v1.sqrt() * f64::from(c.root_correction) + f64::from(c.eps);
            let w1 = f64::from(w0[i]) * f64::from(c.decay) - f64::from(c.step_size) * m1 / root;
            assert!((f64::from(m[i]) - m1).abs() < 1e-6, "m[{i}]");
            assert!((f64::from(v[i]) - v1).abs() < 1e-6, "v[{i}]");
            assert!(
                (f64::from(w[i]) - w1).abs() < 1e-5 * w1.abs().max(1.0),
                "w[{i}]"
            );
        }
        assert!(g.iter().all(|&x| x == 0.0));
    }
}
