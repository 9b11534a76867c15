//! The layers of the BERT-QA graph, written node by node: embeddings (int8 word table for
//! int8 graphs), the attention mask, self-attention, residual LayerNorm, GELU, and the
//! encoder layer that joins them with its dense layers ([`super::dense`]).

use super::{OpStyle, Smoothing, WeightFormat};
use crate::model::BertConfig;
use crate::onnx::clip::ActivationClips;
use crate::onnx::graph::{attr_float, attr_int, attr_ints, GraphBuilder};
use crate::onnx::proto::data_type;
use crate::onnx::quantize::quantize_rows;
use crate::onnx::smooth::Site;
use crate::onnx::weights::Weights;
use crate::onnx::ExportError;

pub(super) struct Builder<'w> {
    pub(super) g: GraphBuilder,
    pub(super) weights: &'w Weights,
    pub(super) config: &'w BertConfig,
    pub(super) style: OpStyle,
    pub(super) smoothing: Option<Smoothing<'w>>,
    /// The calibrated step of every site, for the static int8 graph.
    pub(super) clips: Option<&'w ActivationClips>,
    /// Record every dense input as (site key, tensor, channels) so a calibration graph can
    /// output it.
    pub(super) observe: bool,
    pub(super) observed: Vec<(String, String, usize)>,
}

impl Builder<'_> {
    fn norm_params(&mut self, prefix: &str) -> Result<(String, String), ExportError> {
        let h = self.config.hidden_size;
        let gamma = self
            .weights
            .get(&format!("{prefix}.weight"), &[h])?
            .data
            .clone();
        let beta = self
            .weights
            .get(&format!("{prefix}.bias"), &[h])?
            .data
            .clone();
        Ok((
            self.g
                .float_tensor(&format!("{prefix}.weight"), &[h], &gamma),
            self.g.float_tensor(&format!("{prefix}.bias"), &[h], &beta),
        ))
    }

    /// Word vectors of `input_ids`, `[B, L, H]`: an fp32 table, or (int8 graphs) an int8 table
    /// with a scale per row, dequantized after the gather; the table is most of a small model's
    /// file (47 of 58 MB for MiniLM-L6), so this is what makes int8 folders small.
    fn word_vectors(&mut self, format: WeightFormat) -> Result<String, ExportError> {
        let (rows, h) = (self.config.vocab_size, self.config.hidden_size);
        let name = "bert.embeddings.word_embeddings.weight";
        let table = &self.weights.get(name, &[rows, h])?.data;
        let gather = vec![attr_int("axis", 0)];
        if format == WeightFormat::Fp32 {
            let words = self.g.float_tensor(name, &[rows, h], table);
            return Ok(self.g.node("Gather", &[&words, "input_ids"], gather));
        }
        let q = quantize_rows(table, rows, h);
        let values = self
            .g
            .int8_tensor(&format!("{name}_int8"), &[rows, h], &q.values);
        let scales = self
            .g
            .float_tensor(&format!("{name}_scale"), &[rows], &q.scales);
        let gathered = self
            .g
            .node("Gather", &[&values, "input_ids"], gather.clone());
        let widened = self.g.node(
            "Cast",
            &[&gathered],
            vec![attr_int("to", i64::from(data_type::FLOAT))],
        );
        let row_scale = self.g.node("Gather", &[&scales, "input_ids"], gather);
        let last = self.g.int64_const("scale_axis", &[1], &[-1]);
        let row_scale = self.g.node("Unsqueeze", &[&row_scale, &last], vec![]);
        Ok(self.g.node("Mul", &[&widened, &row_scale], vec![]))
    }

    pub(super) fn embeddings(&mut self, format: WeightFormat) -> Result<String, ExportError> {
        let c = self.config;
        let h = c.hidden_size;
        let table = |b: &mut Self, name: &str, rows: usize| -> Result<String, ExportError> {
            let full = format!("bert.embeddings.{name}.weight");
            let data = b.weights.get(&full, &[rows, h])?.data.clone();
            Ok(b.g.float_tensor(&full, &[rows, h], &data))
        };
        let positions = table(self, "position_embeddings", c.max_position_embeddings)?;
        let types = table(self, "token_type_embeddings", c.type_vocab_size)?;
        let word = self.word_vectors(format)?;
        let kind = self.g.node(
            "Gather",
            &[&types, "token_type_ids"],
            vec![attr_int("axis", 0)],
        );
        let shape = self.g.node("Shape", &["input_ids"], vec![]);
        let one = self.g.int64_tensor("const_one", &[], &[1]);
        let zero = self.g.int64_tensor("const_zero", &[], &[0]);
        let length = self
            .g
            .node("Gather", &[&shape, &one], vec![attr_int("axis", 0)]);
        let ids = self.g.node("Range", &[&zero, &length, &one], vec![]);
        let position = self
            .g
            .node("Gather", &[&positions, &ids], vec![attr_int("axis", 0)]);
        let sum = self.g.node("Add", &[&word, &kind], vec![]);
        let sum = self.g.node("Add", &[&sum, &position], vec![]);
        let (gamma, beta) = self.norm_params("bert.embeddings.LayerNorm")?;
        let eps = c.layer_norm_eps as f32;
        Ok(self.g.node(
            "LayerNormalization",
            &[&sum, &gamma, &beta],
            vec![attr_int("axis", -1), attr_float("epsilon", eps)],
        ))
    }

    /// The attention mask in the form the attention operator takes: int32 `[B, L]` for the fused
    /// kernel, an additive float `[B, 1, 1, L]` (0 or -10000) for primitives.
    pub(super) fn mask(&mut self) -> String {
        match self.style {
            OpStyle::Fused => self.g.node(
                "Cast",
                &["attention_mask"],
                vec![attr_int("to", i64::from(data_type::INT32))],
            ),
            OpStyle::Primitive => {
                let mask = self.g.node(
                    "Cast",
                    &["attention_mask"],
                    vec![attr_int("to", i64::from(data_type::FLOAT))],
                );
                let one = self.g.float_tensor("const_one_f", &[], &[1.0]);
                let penalty = self.g.float_tensor("const_mask_penalty", &[], &[-10000.0]);
                let masked = self.g.node("Sub", &[&one, &mask], vec![]);
                let additive = self.g.node("Mul", &[&masked, &penalty], vec![]);
                let axes = self.g.int64_tensor("mask_axes", &[2], &[1, 2]);
                self.g.node("Unsqueeze", &[&additive, &axes], vec![])
            }
        }
    }

    /// Multi-head scaled dot-product attention of projected `q`, `k`, `v` (`[B, L, H]`).
    fn attention(&mut self, q: &str, k: &str, v: &str, mask: &str) -> String {
        let heads = self.config.num_attention_heads as i64;
        if self.style == OpStyle::Fused {
            return self.g.contrib(
                "MultiHeadAttention",
                &[q, k, v, "", mask],
                vec![attr_int("num_heads", heads)],
            );
        }
        let head_dim = self.config.head_dim() as i64;
        let split = self
            .g
            .int64_const("heads_shape", &[4], &[0, 0, heads, head_dim]);
        let merged = self
            .g
            .int64_const("merged_shape", &[3], &[0, 0, heads * head_dim]);
        let to_heads = |b: &mut Self, x: &str, perm: &[i64]| {
            let r = b.g.node("Reshape", &[x, &split], vec![]);
            b.g.node("Transpose", &[&r], vec![attr_ints("perm", perm)])
        };
        let q = to_heads(self, q, &[0, 2, 1, 3]);
        let k = to_heads(self, k, &[0, 2, 3, 1]);
        let v = to_heads(self, v, &[0, 2, 1, 3]);
        let scale = self
            .g
            .float_const("attention_scale", &[], &[1.0 / (head_dim as f32).sqrt()]);
        let scores = self.g.node("MatMul", &[&q, &k], vec![]);
        let scores = self.g.node("Mul", &[&scores, &scale], vec![]);
        let scores = self.g.node("Add", &[&scores, mask], vec![]);
        let probs = self
            .g
            .node("Softmax", &[&scores], vec![attr_int("axis", -1)]);
        let context = self.g.node("MatMul", &[&probs, &v], vec![]);
        let context = self.g.node(
            "Transpose",
            &[&context],
            vec![attr_ints("perm", &[0, 2, 1, 3])],
        );
        self.g.node("Reshape", &[&context, &merged], vec![])
    }

    /// LayerNorm(x + residual).
    fn add_norm(&mut self, x: &str, residual: &str, prefix: &str) -> Result<String, ExportError> {
        let (gamma, beta) = self.norm_params(prefix)?;
        let eps = attr_float("epsilon", self.config.layer_norm_eps as f32);
        Ok(match self.style {
            OpStyle::Fused => self.g.contrib(
                "SkipLayerNormalization",
                &[x, residual, &gamma, &beta],
                vec![eps],
            ),
            OpStyle::Primitive => {
                let sum = self.g.node("Add", &[x, residual], vec![]);
                self.g.node(
                    "LayerNormalization",
                    &[&sum, &gamma, &beta],
                    vec![attr_int("axis", -1), eps],
                )
            }
        })
    }

    /// Exact (erf) GELU.
    fn gelu(&mut self, x: &str) -> String {
        if self.style == OpStyle::Fused {
            return self.g.contrib("Gelu", &[x], vec![]);
        }
        let sqrt2 = self
            .g
            .float_const("const_sqrt2", &[], &[std::f32::consts::SQRT_2]);
        let one = self.g.float_const("const_one", &[], &[1.0]);
        let half = self.g.float_const("const_half", &[], &[0.5]);
        let scaled = self.g.node("Div", &[x, &sqrt2], vec![]);
        let erf = self.g.node("Erf", &[&scaled], vec![]);
        let shifted = self.g.node("Add", &[&erf, &one], vec![]);
        let product = self.g.node("Mul", &[x, &shifted], vec![]);
        self.g.node("Mul", &[&product, &half], vec![])
    }

    pub(super) fn layer(
        &mut self,
        hidden: &str,
        mask: &str,
        l: usize,
        format: WeightFormat,
    ) -> Result<String, ExportError> {
        let (h, i) = (self.config.hidden_size, self.config.intermediate_size);
        let p = format!("bert.encoder.layer.{l}.");
        let (query, key, value) = (
            format!("{p}attention.self.query"),
            format!("{p}attention.self.key"),
            format!("{p}attention.self.value"),
        );
        let projections = [(query.as_str(), h), (key.as_str(), h), (value.as_str(), h)];
        let input = self.site_input(hidden, l, Site::Attention, &projections, h, format)?;
        let q = self.dense(&query, h, h, format, &input)?;
        let k = self.dense(&key, h, h, format, &input)?;
        let v = self.dense(&value, h, h, format, &input)?;
        let context = self.attention(&q, &k, &v, mask);
        let projection = format!("{p}attention.output.dense");
        let input = self.site_input(&context, l, Site::Context, &[(&projection, h)], h, format)?;
        let attended = self.dense(&projection, h, h, format, &input)?;
        let hidden = self.add_norm(&attended, hidden, &format!("{p}attention.output.LayerNorm"))?;
        let up = format!("{p}intermediate.dense");
        let input = self.site_input(&hidden, l, Site::FeedForward, &[(&up, i)], h, format)?;
        let inner = self.dense(&up, i, h, format, &input)?;
        let inner = self.gelu(&inner);
        let down_format = if format == WeightFormat::Int8Mixed {
            WeightFormat::Fp32
        } else {
            format
        };
        let down = format!("{p}output.dense");
        let input = self.site_input(&inner, l, Site::Gelu, &[(&down, h)], i, down_format)?;
        let out = self.dense(&down, h, i, down_format, &input)?;
        self.add_norm(&out, &hidden, &format!("{p}output.LayerNorm"))
    }
}
