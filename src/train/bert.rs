//! BERT for question answering in tch, written like the paper (and rust-bert): embeddings,
//! N layers of self-attention + GELU feed-forward with post-LayerNorm residuals, and a dense
//! `qa_outputs` head giving start and end logits.
//!
//! Variables live under Hugging Face `BertForQuestionAnswering` names (`bert.encoder.layer.0.…`),
//! so a VarStore saves straight to a checkpoint `transformers` can load.
//!
//! Mixed precision without autocast (which does nothing on CPU): weights stay fp32 ("master
//! weights", updated by the optimizer); each matrix product casts its operands to the compute
//! kind (bf16), while embeddings, residual sums, LayerNorm, and logits stay fp32.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::dropout::{dropout, keep_mask};
use super::precision::Precision;

use crate::model::BertConfig;

fn normal(config: &BertConfig) -> nn::Init {
    nn::Init::Randn {
        mean: 0.0,
        stdev: config.initializer_range,
    }
}

fn dense(p: nn::Path, inputs: usize, outputs: usize, config: &BertConfig) -> nn::Linear {
    let c = nn::LinearConfig {
        ws_init: normal(config),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(p, inputs as i64, outputs as i64, c)
}

fn layer_norm(p: nn::Path, config: &BertConfig) -> nn::LayerNorm {
    let c = nn::LayerNormConfig {
        eps: config.layer_norm_eps,
        ..Default::default()
    };
    nn::layer_norm(p, vec![config.hidden_size as i64], c)
}

/// `x W^T + b` with both operands cast to `kind`.
fn project(x: &Tensor, layer: &nn::Linear, kind: Kind) -> Tensor {
    if kind == Kind::Float {
        return x.linear(&layer.ws, layer.bs.as_ref());
    }
    let bias = layer.bs.as_ref().map(|b| b.to_kind(kind));
    x.to_kind(kind).linear(&layer.ws.to_kind(kind), bias)
}

/// Word + position + token-type embeddings, LayerNorm, dropout.
#[derive(Debug)]
pub struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    norm: nn::LayerNorm,
    dropout: f64,
}

impl Embeddings {
    /// Creates the tables under `p` (`bert.embeddings`).
    pub fn new(p: nn::Path, config: &BertConfig) -> Self {
        let c = nn::EmbeddingConfig {
            ws_init: normal(config),
            ..Default::default()
        };
        let h = config.hidden_size as i64;
        Self {
            word: nn::embedding(&p / "word_embeddings", config.vocab_size as i64, h, c),
            position: nn::embedding(
                &p / "position_embeddings",
                config.max_position_embeddings as i64,
                h,
                c,
            ),
            token_type: nn::embedding(
                &p / "token_type_embeddings",
                config.type_vocab_size as i64,
                h,
                c,
            ),
            norm: layer_norm(&p / "LayerNorm", config),
            dropout: config.hidden_dropout_prob,
        }
    }

    /// `[B, L]` ids → `[B, L, H]` fp32 hidden states.
    pub fn forward_t(&self, input_ids: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let len = input_ids.size()[1];
        let positions = Tensor::arange(len, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let sum = self.word.forward(input_ids)
            + self.position.forward(&positions)
            + self.token_type.forward(token_type_ids);
        dropout(&self.norm.forward(&sum), self.dropout, train)
    }
}

/// Multi-head scaled dot-product self-attention.
#[derive(Debug)]
pub struct SelfAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    heads: i64,
    head_dim: i64,
    dropout: f64,
}

impl SelfAttention {
    /// Creates Q, K, V projections under `p` (`…attention.self`).
    pub fn new(p: nn::Path, config: &BertConfig) -> Self {
        let h = config.hidden_size;
        Self {
            query: dense(&p / "query", h, h, config),
            key: dense(&p / "key", h, h, config),
            value: dense(&p / "value", h, h, config),
            heads: config.num_attention_heads as i64,
            head_dim: config.head_dim() as i64,
            dropout: config.attention_probs_dropout_prob,
        }
    }

    /// `[B, L, H]` → `[B, L, H]` in `kind`; `key_bias` is the `[B, 1, 1, L]` additive key
    /// mask (0 on real tokens, -1e9 on padding) in `kind`. On CPU the attention is
    /// [`written_out_attention`], elsewhere libtorch's fused kernel.
    pub fn forward_t(&self, x: &Tensor, key_bias: &Tensor, kind: Kind, train: bool) -> Tensor {
        let (b, l, _) = x.size3().unwrap_or((0, 0, 0));
        let heads = |t: Tensor| t.view([b, l, self.heads, self.head_dim]).transpose(1, 2);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let q = heads(project(x, &self.query, kind) * scale);
        let k = heads(project(x, &self.key, kind));
        let v = heads(project(x, &self.value, kind));
        let p = if train { self.dropout } else { 0.0 };
        let context = if x.device() == Device::Cpu {
            written_out_attention(&q, &k, &v, key_bias, p)
        } else {
            let keep = key_bias.eq(0.0);
            Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(&keep),
                p,
                false,
                Some(1.0),
                false,
            )
        };
        context
            .transpose(1, 2)
            .contiguous()
            .view([b, l, self.heads * self.head_dim])
    }
}

/// `softmax(q kᵀ + key_bias) v` for `[B, heads, L, head_dim]` operands (`q` already scaled),
/// with dropout `p` on the probabilities. Written out rather than libtorch's fused kernel: on
/// CPU, with dropout or a mask in bf16, that kernel falls back to a path that upcasts every
/// step to fp32, while here both products stay in the operands' kind (softmax accumulates in
/// fp32 internally) and the dropout mask comes from [`keep_mask`].
fn written_out_attention(q: &Tensor, k: &Tensor, v: &Tensor, key_bias: &Tensor, p: f64) -> Tensor {
    let kind = q.kind();
    let probs = (q.matmul(&k.transpose(-1, -2)) + key_bias).softmax(-1, kind);
    if p > 0.0 {
        let keep = keep_mask(&probs.size(), p, kind);
        (probs * keep.mask).matmul(v) * keep.scale
    } else {
        probs.matmul(v)
    }
}

/// One transformer layer: attention, residual + LayerNorm, GELU feed-forward, residual + LayerNorm.
#[derive(Debug)]
pub struct Layer {
    attention: SelfAttention,
    attention_output: nn::Linear,
    attention_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_norm: nn::LayerNorm,
    dropout: f64,
}

impl Layer {
    /// Creates the layer under `p` (`bert.encoder.layer.{i}`).
    pub fn new(p: nn::Path, config: &BertConfig) -> Self {
        let (h, i) = (config.hidden_size, config.intermediate_size);
        Self {
            attention: SelfAttention::new(&p / "attention" / "self", config),
            attention_output: dense(&p / "attention" / "output" / "dense", h, h, config),
            attention_norm: layer_norm(&p / "attention" / "output" / "LayerNorm", config),
            intermediate: dense(&p / "intermediate" / "dense", h, i, config),
            output: dense(&p / "output" / "dense", i, h, config),
            output_norm: layer_norm(&p / "output" / "LayerNorm", config),
            dropout: config.hidden_dropout_prob,
        }
    }

    /// fp32 `[B, L, H]` → fp32 `[B, L, H]`.
    pub fn forward_t(&self, hidden: &Tensor, key_bias: &Tensor, kind: Kind, train: bool) -> Tensor {
        let attended = self.attention.forward_t(hidden, key_bias, kind, train);
        let attended = dropout(
            &project(&attended, &self.attention_output, kind).to_kind(Kind::Float),
            self.dropout,
            train,
        );
        let hidden = self.attention_norm.forward(&(attended + hidden));
        let inner = project(&hidden, &self.intermediate, kind).gelu("none");
        let out = dropout(
            &project(&inner, &self.output, kind).to_kind(Kind::Float),
            self.dropout,
            train,
        );
        self.output_norm.forward(&(out + hidden))
    }
}

/// The whole question-answering model.
#[derive(Debug)]
pub struct BertForQuestionAnswering {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    qa_outputs: nn::Linear,
    precision: Precision,
}

impl BertForQuestionAnswering {
    /// Creates every variable under `p` (the VarStore root), randomly initialised; load a
    /// checkpoint over them with `train::checkpoint`.
    pub fn new(p: &nn::Path, config: &BertConfig) -> Self {
        let bert = p / "bert";
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(&bert / "encoder" / "layer" / i, config))
            .collect();
        Self {
            embeddings: Embeddings::new(&bert / "embeddings", config),
            layers,
            qa_outputs: dense(p / "qa_outputs", config.hidden_size, 2, config),
            precision: Precision::Fp32,
        }
    }

    /// Switches the numeric format of the matrix products.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// `[B, L]` int64 ids, type ids and 0/1 mask → fp32 `[B, L]` start and end logits.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> (Tensor, Tensor) {
        let kind = self.precision.kind();
        let size = input_ids.size();
        let key_bias = (attention_mask.eq(0).to_kind(kind) * -1e9).view([size[0], 1, 1, size[1]]);
        let mut hidden = self.embeddings.forward_t(input_ids, token_type_ids, train);
        for layer in &self.layers {
            hidden = layer.forward_t(&hidden, &key_bias, kind, train);
        }
        let logits = project(&hidden, &self.qa_outputs, kind).to_kind(Kind::Float);
        let start = logits.select(-1, 0);
        let end = logits.select(-1, 1);
        (start, end)
    }
}

/// Sum of the negative log likelihoods of the true start and end under a softmax over each
/// window's real tokens (padding masked out), averaged over the batch.
pub fn span_loss(
    start: &Tensor,
    end: &Tensor,
    attention_mask: &Tensor,
    start_pos: &Tensor,
    end_pos: &Tensor,
) -> Tensor {
    let pad = attention_mask.eq(0);
    let nll = |logits: &Tensor, target: &Tensor| {
        logits
            .masked_fill(&pad, -1e9)
            .cross_entropy_for_logits(target)
    };
    nll(start, start_pos) + nll(end, end_pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Q (scaled), K, V `[2, 3, 7, 4]` and the key bias of a batch whose second window has 4
    /// tokens.
    fn operands() -> ([Tensor; 3], Tensor) {
        tch::manual_seed(1);
        let qkv = [0, 1, 2].map(|_| Tensor::randn([2, 3, 7, 4], (Kind::Float, Device::Cpu)));
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
        let key_bias = (mask.eq(0).to_kind(Kind::Float) * -1e9).view([2, 1, 1, 7]);
        (qkv, key_bias)
    }

    #[test]
    fn written_out_attention_is_libtorchs_fused_attention_with_the_same_mask() {
        let _generator = crate::train::libtorch_generator();
        let ([q, k, v], key_bias) = operands();
        let ours = written_out_attention(&q, &k, &v, &key_bias, 0.0);
        let keep = key_bias.eq(0.0);
        let fused = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Some(&keep),
            0.0,
            false,
            Some(1.0),
            false,
        );
        assert!(ours.allclose(&fused, 1e-5, 1e-6, false));
    }

    #[test]
    fn attention_dropout_changes_each_draw_and_keeps_the_expected_value() {
        let _generator = crate::train::libtorch_generator();
        let ([q, k, v], key_bias) = operands();
        let undropped = written_out_attention(&q, &k, &v, &key_bias, 0.0);
        let draws = 4000;
        let (mut sum, mut squares) = (undropped.zeros_like(), undropped.zeros_like());
        for _ in 0..draws {
            let once = written_out_attention(&q, &k, &v, &key_bias, 0.3);
            assert!(!once.allclose(&undropped, 1e-3, 1e-3, false));
            squares += &once * &once;
            sum += once;
        }
        // Each element's mean within 5 standard errors of no dropout.
        let mean = sum / draws as f64;
        let variance = (squares / draws as f64 - &mean * &mean).clamp_min(0.0);
        let spread = variance.sqrt() / (draws as f64).sqrt();
        let worst = ((mean - &undropped).abs() / (spread + 1e-9))
            .max()
            .double_value(&[]);
        assert!(
            worst < 5.0,
            "a mean is {worst} standard errors from no dropout"
        );
    }
}
