//! AdamW with decoupled weight decay (none on biases and LayerNorm), global gradient-norm
//! clipping, and the linear warm-up/decay schedule of Hugging Face's Trainer.
//!
//! Written out instead of using tch's optimizer so that its moments can be saved and restored:
//! `--resume` must continue exactly where a run stopped. On CPU each parameter is updated in
//! one pass over its memory ([`super::adamw_pass`]); elsewhere by libtorch tensor operations.

use std::collections::HashMap;

use tch::{nn::VarStore, Device, Kind, Tensor};

use super::adamw_pass::{self, Coefficients, ParamSlices};

/// AdamW over every trainable variable of a VarStore.
pub struct AdamW {
    params: Vec<Param>,
    /// Optimizer steps taken (bias correction depends on it).
    pub step: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Global-norm clipping's factor for the gradients of the coming step, set by
    /// [`AdamW::clip_grad_norm`] and applied inside the update (no pass of its own).
    grad_scale: f64,
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
            grad_scale: 1.0,
        }
    }

    /// Makes the coming [`AdamW::step`] scale the gradients so that their global L2 norm is at
    /// most `max_norm`; returns the norm before clipping (logged: a spike shows a bad batch or
    /// a too-high learning rate).
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
            self.grad_scale = if norm > max_norm {
                max_norm / (norm + 1e-6)
            } else {
                1.0
            };
            norm
        })
    }

    /// One update with learning rate `lr`, then clears the gradients.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        let coefficients = |decay: bool| Coefficients {
            grad_scale: self.grad_scale as f32,
            first_rate: (1.0 - self.beta1) as f32,
            second_rate: (1.0 - self.beta2) as f32,
            decay: if decay {
                (1.0 - lr * self.weight_decay) as f32
            } else {
                1.0
            },
            step_size: (lr / c1) as f32,
            root_correction: (1.0 / c2.sqrt()) as f32,
            eps: self.eps as f32,
        };
        let (with_decay, without_decay) = (coefficients(true), coefficients(false));
        tch::no_grad(|| {
            for p in &mut self.params {
                let c = if p.decay { with_decay } else { without_decay };
                let mut grad = p.value.grad();
                if !grad.defined() {
                    continue;
                }
                // SAFETY: the four tensors are distinct and nothing else uses them during
                // the update.
                match unsafe { p.cpu_slices(&mut grad) } {
                    Some(slices) => adamw_pass::update(slices, c),
                    None => p.update_with_tensor_ops(&mut grad, c),
                }
            }
        });
        self.grad_scale = 1.0;
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

impl Param {
    /// The four tensors' elements when all are contiguous fp32 CPU tensors of one length.
    ///
    /// # Safety
    /// No other reference to the four tensors' memory may be used while the slices live.
    unsafe fn cpu_slices<'a>(&'a mut self, grad: &'a mut Tensor) -> Option<ParamSlices<'a>> {
        let len = self.value.numel();
        let floats = |t: &Tensor| {
            let fits = t.device() == Device::Cpu
                && t.kind() == Kind::Float
                && t.is_contiguous()
                && t.numel() == len;
            // SAFETY: a contiguous CPU tensor of `len` f32s; the caller keeps it unaliased.
            fits.then(|| unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), len) })
        };
        Some(ParamSlices {
            value: floats(&self.value)?,
            grad: floats(grad)?,
            first: floats(&self.m)?,
            second: floats(&self.v)?,
        })
    }

    /// [`adamw_pass::update`]'s step as libtorch operations, for tensors on a GPU. Every pass
    /// is in place, and the gradient's own buffer (cleared afterwards anyway) holds g², then
    /// the denominator: no temporaries as large as the word embedding table are allocated.
    fn update_with_tensor_ops(&mut self, g: &mut Tensor, c: Coefficients) {
        if c.grad_scale != 1.0 {
            let _ = g.g_mul_scalar_(f64::from(c.grad_scale));
        }
        let _ = self.m.lerp_(g, f64::from(c.first_rate)); // m = β1 m + (1-β1) g
        let _ = g.g_mul_(&g.shallow_clone()); // g²
        let _ = self.v.lerp_(g, f64::from(c.second_rate)); // v = β2 v + (1-β2) g²
        let _ = self.value.g_mul_scalar_(f64::from(c.decay));
        // denominator = (sqrt(v / c2) + eps) / -step_size, so that adding m / denominator
        // subtracts step_size · m / (sqrt(v / c2) + eps).
        if c.step_size > 0.0 {
            let _ = self.v.sqrt_out(g);
            let _ = g.g_mul_scalar_(f64::from(c.root_correction));
            let _ = g.g_add_scalar_(f64::from(c.eps));
            let _ = g.g_mul_scalar_(-1.0 / f64::from(c.step_size));
            let _ = self.value.addcdiv_(&self.m, g);
        }
        self.value.zero_grad();
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
        // The gradient's norm is 1.52, 3.01, 4.51: the last two steps are clipped to 2.
        for (step, lr) in [(1, 1e-3), (2, 2e-3), (3, 5e-4)] {
            let raw = [1.5 * step as f64, -0.25, 0.0];
            let loss = (&w * Tensor::from_slice(&raw.map(|x| x as f32))).sum(Kind::Float);
            loss.backward();
            let norm = opt.clip_grad_norm(2.0);
            let scale = if norm > 2.0 { 2.0 / (norm + 1e-6) } else { 1.0 };
            let slope = raw.map(|x| x * scale);
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

    #[test]
    fn tensor_operations_on_other_devices_agree_with_the_one_pass_update() {
        let _generator = crate::train::libtorch_generator();
        let param = || {
            tch::manual_seed(5);
            let value =
                Tensor::randn([1000], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
            let slope = Tensor::randn([1000], (Kind::Float, tch::Device::Cpu));
            (&value * slope).sum(Kind::Float).backward();
            Param {
                name: "layer.weight".into(),
                m: Tensor::randn([1000], (Kind::Float, tch::Device::Cpu)) * 0.1,
                v: Tensor::randn([1000], (Kind::Float, tch::Device::Cpu)).abs() * 0.01,
                value,
                decay: true,
            }
        };
        let c = Coefficients {
            grad_scale: 0.7,
            first_rate: 0.1,
            second_rate: 0.001,
            decay: 0.9999,
            step_size: 1e-3,
            root_correction: 1.3,
            eps: 1e-8,
        };
        let (mut one_pass, mut tensor_ops) = (param(), param());
        tch::no_grad(|| {
            let mut grad = one_pass.value.grad();
            // SAFETY: the test holds no other reference to the tensors.
            let slices = unsafe { one_pass.cpu_slices(&mut grad) }.expect("fp32 CPU tensors");
            adamw_pass::update(slices, c);
            tensor_ops.update_with_tensor_ops(&mut tensor_ops.value.grad(), c);
        });
        for (a, b) in [
            (&one_pass.value, &tensor_ops.value),
            (&one_pass.m, &tensor_ops.m),
            (&one_pass.v, &tensor_ops.v),
        ] {
            assert!(a.allclose(b, 1e-6, 1e-7, false));
        }
        for p in [&one_pass, &tensor_ops] {
            assert_eq!(p.value.grad().abs().max().double_value(&[]), 0.0);
        }
    }
}
