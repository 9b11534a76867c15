//! AdamW with decoupled weight decay (none on biases and LayerNorm), global gradient-norm
//! clipping, and the linear warm-up/decay schedule of Hugging Face's Trainer.
//!
//! Written out instead of using tch's optimizer so that its moments can be saved and restored:
//! `--resume` must continue exactly where a run stopped.

use std::collections::HashMap;

use tch::{nn::VarStore, Kind, Tensor};

/// AdamW over every trainable variable of a VarStore.
pub struct AdamW {
    params: Vec<Param>,
    /// Optimizer steps taken (bias correction depends on it).
    pub step: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

struct Param {
    name: String,
    value: Tensor,
    m: Tensor,
    v: Tensor,
    decay: bool,
}

impl AdamW {
    /// Adam moments start at zero; biases and LayerNorm parameters get no weight decay.
    pub fn new(vs: &VarStore, weight_decay: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, value)| Param {
                decay: !(name.ends_with(".bias") || name.contains("LayerNorm")),
                m: value.zeros_like(),
                v: value.zeros_like(),
                name,
                value,
            })
            .collect();
        Self {
            params,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm
    /// before clipping (logged: a spike shows a bad batch or a too-high learning rate).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let squares: Vec<Tensor> = self
                .params
                .iter()
                .map(|p| p.value.grad())
                .filter(|g| g.defined())
                // A norm per tensor (no squared copy of each gradient), combined below.
                .map(|g| g.norm().square())
                .collect();
            if squares.is_empty() {
                return 0.0;
            }
            let norm = Tensor::stack(&squares, 0)
                .sum(Kind::Float)
                .sqrt()
                .double_value(&[]);
            if norm > max_norm {
                let scale = max_norm / (norm + 1e-6);
                for p in &self.params {
                    let mut g = p.value.grad();
                    if g.defined() {
                        let _ = g.g_mul_scalar_(scale);
                    }
                }
            }
            norm
        })
    }

    /// One update with learning rate `lr`, then clears the gradients.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        // Every pass below is in place, and the gradient's own buffer (cleared afterwards
        // anyway) holds g², then the denominator: no temporaries as large as the 47 MB word
        // embedding table are allocated, and 9 passes over each parameter replace 14.
        tch::no_grad(|| {
            for p in &mut self.params {
                let mut g = p.value.grad();
                if !g.defined() {
                    continue;
                }
                let _ = p.m.lerp_(&g, 1.0 - self.beta1); // m = β1 m + (1-β1) g
                let _ = g.g_mul_(&g.shallow_clone()); // g²
                let _ = p.v.lerp_(&g, 1.0 - self.beta2); // v = β2 v + (1-β2) g²
                if p.decay {
                    let _ = p.value.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                // denominator = (sqrt(v / c2) + eps) / -(lr / c1), so that adding m / denominator
                // subtracts (lr / c1) m / (sqrt(v / c2) + eps).
                if lr > 0.0 {
                    let _ = p.v.sqrt_out(&g);
                    let _ = g.g_mul_scalar_(1.0 / c2.sqrt());
                    let _ = g.g_add_scalar_(self.eps);
                    let _ = g.g_mul_scalar_(-c1 / lr);
                    let _ = p.value.addcdiv_(&p.m, &g);
                }
                p.value.zero_grad();
            }
        });
    }

    /// The moments as named tensors (`m.<param>`, `v.<param>`), for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .flat_map(|p| {
                [
                    (format!("m.{}", p.name), p.m.shallow_clone()),
                    (format!("v.{}", p.name), p.v.shallow_clone()),
                ]
            })
            .collect()
    }

    /// Restores moments saved by [`AdamW::state_tensors`]; returns the names it lacked.
    pub fn load_state_tensors(&mut self, tensors: Vec<(String, Tensor)>, step: u64) -> Vec<String> {
        let map: HashMap<String, Tensor> = tensors.into_iter().collect();
        let mut missing = vec![];
        tch::no_grad(|| {
            for p in &mut self.params {
                for (slot, tensor) in [("m", &mut p.m), ("v", &mut p.v)] {
                    match map.get(&format!("{slot}.{}", p.name)) {
                        Some(saved) if saved.size() == tensor.size() => tensor.copy_(saved),
                        _ => missing.push(format!("{slot}.{}", p.name)),
                    }
                }
            }
        });
        self.step = step;
        missing
    }
}

/// Linear warm-up from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`.
/// `step` counts from 1 (the first update).
pub fn linear_schedule(peak: f64, step: u64, warmup: u64, total: u64) -> f64 {
    if step <= warmup && warmup > 0 {
        return peak * step as f64 / warmup as f64;
    }
    let remaining = total.saturating_sub(step) as f64;
    peak * (remaining / total.saturating_sub(warmup).max(1) as f64).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert_eq!(linear_schedule(1.0, 5, 10, 110), 0.5);
        assert_eq!(linear_schedule(1.0, 10, 10, 110), 1.0);
        assert_eq!(linear_schedule(1.0, 60, 10, 110), 0.5);
        assert_eq!(linear_schedule(1.0, 110, 10, 110), 0.0);
        assert_eq!(linear_schedule(1.0, 1, 0, 4), 0.75);
    }

    #[test]
    fn adamw_first_step_moves_each_weight_by_lr_against_its_gradient() {
        let vs = VarStore::new(tch::Device::Cpu);
        let w = (vs.root() / "layer").var("weight", &[2], tch::nn::Init::Const(1.0));
        let b = (vs.root() / "layer").var("bias", &[1], tch::nn::Init::Const(1.0));
        let mut opt = AdamW::new(&vs, 0.5);
        let loss = (&w * Tensor::from_slice(&[3.0f32, -2.0])).sum(Kind::Float) + b.sum(Kind::Float);
        loss.backward();
        let norm = opt.clip_grad_norm(100.0);
        assert!((norm - (9.0f64 + 4.0 + 1.0).sqrt()).abs() < 1e-5);
        opt.step(0.1);
        // Adam's first step is lr * sign(grad); decay shrinks the weight (not the bias) first.
        let got: Vec<f32> = Vec::try_from(&w.detach()).unwrap();
        assert!(
            (got[0] - (0.95 - 0.1)).abs() < 1e-5 && (got[1] - (0.95 + 0.1)).abs() < 1e-5,
            "{got:?}"
        );
        assert!((b.double_value(&[0]) - 0.9).abs() < 1e-5);
        assert_eq!(opt.state_tensors().len(), 4);
    }

    #[test]
    fn adamw_matches_the_textbook_update_over_several_steps() {
        let vs = VarStore::new(tch::Device::Cpu);
        let w = (vs.root() / "layer").var("weight", &[3], tch::nn::Init::Const(0.5));
        let mut opt = AdamW::new(&vs, 0.01);
        let (mut reference, mut m, mut v) = ([0.5f64; 3], [0.0f64; 3], [0.0f64; 3]);
        for (step, lr) in [(1, 1e-3), (2, 2e-3), (3, 5e-4)] {
            let slope = [1.5 * step as f64, -0.25, 0.0];
            let loss = (&w * Tensor::from_slice(&slope.map(|x| x as f32))).sum(Kind::Float);
            loss.backward();
            opt.step(lr);
            let (c1, c2) = (1.0 - 0.9f64.powi(step), 1.0 - 0.999f64.powi(step));
            for k in 0..3 {
                m[k] = 0.9 * m[k] + 0.1 * slope[k];
                v[k] = 0.999 * v[k] + 0.001 * slope[k] * slope[k];
                reference[k] *= 1.0 - lr * 0.01;
                reference[k] -= lr / c1 * m[k] / ((v[k] / c2).sqrt() + 1e-8);
            }
        }
        let got: Vec<f32> = Vec::try_from(&w.detach()).unwrap();
        for (g, r) in got.iter().zip(reference) {
            assert!((f64::from(*g) - r).abs() < 1e-6, "{got:?} vs {reference:?}");
        }
    }
}
