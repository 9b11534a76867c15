//! The BERT question-answering graph, mirroring `train::bert` (a parity test keeps the two in
//! step): inputs `input_ids`, `attention_mask`, `token_type_ids` (int64 `[batch, sequence]`),
//! outputs `start_logits`, `end_logits` (float `[batch, sequence]`).
//!
//! It is written directly in the fused forms ONNX Runtime's CPU kernels run fastest:
//! `MultiHeadAttention` (one kernel for scores, mask, softmax and context),
//! `SkipLayerNormalization` (residual add + LayerNorm) and erf `Gelu` from the `com.microsoft`
//! domain. With int8 weights every dense layer of the encoder becomes `DynamicQuantizeMatMul`
//! (per-column int8 weights, activations quantized per batch by the kernel); the embeddings,
//! LayerNorms and the 2-wide QA head stay fp32.

use super::graph::{attr_float, attr_int, tensor_value, GraphBuilder};
use super::proto::{data_type, ModelProto, OperatorSetIdProto, StringStringEntryProto};
use super::quantize::{quantize_columns, transpose};
use super::weights::Weights;
use super::ExportError;
use crate::model::BertConfig;

/// How dense-layer weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum WeightFormat {
    /// fp32 MatMul + bias.
    Fp32,
    /// int8 per-column weights, `DynamicQuantizeMatMul`, in every encoder dense layer: fastest.
    Int8,
    /// int8 except each layer's feed-forward down projection, whose GELU inputs have outliers
    /// that per-tensor activation quantization handles badly: closer to fp32, ~20% slower
    /// (measured in bench/RESULTS.md and the export issue's note).
    Int8Mixed,
}

struct Builder<'w> {
    g: GraphBuilder,
    weights: &'w Weights,
    config: &'w BertConfig,
}

impl Builder<'_> {
    /// `x @ W^T + b` for the Linear layer `prefix` (`[out, in]` weight).
    fn dense(
        &mut self,
        x: &str,
        prefix: &str,
        out: usize,
        inp: usize,
        format: WeightFormat,
    ) -> Result<String, ExportError> {
        let w = self.weights.get(&format!("{prefix}.weight"), &[out, inp])?;
        let b = self.weights.get(&format!("{prefix}.bias"), &[out])?;
        let bias = self
            .g
            .float_tensor(&format!("{prefix}.bias"), &[out], &b.data);
        match format {
            WeightFormat::Fp32 => {
                let wt = self.g.float_tensor(
                    &format!("{prefix}.weight_t"),
                    &[inp, out],
                    &transpose(&w.data, out, inp),
                );
                let product = self.g.node("MatMul", &[x, &wt], vec![]);
                Ok(self.g.node("Add", &[&product, &bias], vec![]))
            }
            WeightFormat::Int8 | WeightFormat::Int8Mixed => {
                let q = quantize_columns(&w.data, out, inp);
                let values =
                    self.g
                        .int8_tensor(&format!("{prefix}.weight_int8"), &[inp, out], &q.values);
                let scales =
                    self.g
                        .float_tensor(&format!("{prefix}.weight_scale"), &[out], &q.scales);
                let zeros =
                    self.g
                        .int8_tensor(&format!("{prefix}.weight_zero"), &[out], &vec![0; out]);
                Ok(self.g.contrib(
                    "DynamicQuantizeMatMul",
                    &[x, &values, &scales, &zeros, &bias],
                    vec![],
                ))
            }
        }
    }

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

    fn embeddings(&mut self) -> Result<String, ExportError> {
        let c = self.config;
        let h = c.hidden_size;
        let table = |b: &mut Self, name: &str, rows: usize| -> Result<String, ExportError> {
            let full = format!("bert.embeddings.{name}.weight");
            let data = b.weights.get(&full, &[rows, h])?.data.clone();
            Ok(b.g.float_tensor(&full, &[rows, h], &data))
        };
        let words = table(self, "word_embeddings", c.vocab_size)?;
        let positions = table(self, "position_embeddings", c.max_position_embeddings)?;
        let types = table(self, "token_type_embeddings", c.type_vocab_size)?;
        let word = self
            .g
            .node("Gather", &[&words, "input_ids"], vec![attr_int("axis", 0)]);
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

    fn layer(
        &mut self,
        hidden: &str,
        mask: &str,
        l: usize,
        format: WeightFormat,
    ) -> Result<String, ExportError> {
        let (h, i) = (self.config.hidden_size, self.config.intermediate_size);
        let p = format!("bert.encoder.layer.{l}.");
        let q = self.dense(hidden, &format!("{p}attention.self.query"), h, h, format)?;
        let k = self.dense(hidden, &format!("{p}attention.self.key"), h, h, format)?;
        let v = self.dense(hidden, &format!("{p}attention.self.value"), h, h, format)?;
        let heads = attr_int("num_heads", self.config.num_attention_heads as i64);
        let context = self
            .g
            .contrib("MultiHeadAttention", &[&q, &k, &v, "", mask], vec![heads]);
        let attended = self.dense(
            &context,
            &format!("{p}attention.output.dense"),
            h,
            h,
            format,
        )?;
        let eps = attr_float("epsilon", self.config.layer_norm_eps as f32);
        let (gamma, beta) = self.norm_params(&format!("{p}attention.output.LayerNorm"))?;
        let hidden = self.g.contrib(
            "SkipLayerNormalization",
            &[&attended, hidden, &gamma, &beta],
            vec![eps.clone()],
        );
        let inner = self.dense(&hidden, &format!("{p}intermediate.dense"), i, h, format)?;
        let inner = self.g.contrib("Gelu", &[&inner], vec![]);
        let down = if format == WeightFormat::Int8Mixed {
            WeightFormat::Fp32
        } else {
            format
        };
        let out = self.dense(&inner, &format!("{p}output.dense"), h, i, down)?;
        let (gamma, beta) = self.norm_params(&format!("{p}output.LayerNorm"))?;
        Ok(self.g.contrib(
            "SkipLayerNormalization",
            &[&out, &hidden, &gamma, &beta],
            vec![eps],
        ))
    }
}

/// Builds the whole model.
pub fn bert_qa_model(
    weights: &Weights,
    config: &BertConfig,
    format: WeightFormat,
) -> Result<ModelProto, ExportError> {
    config
        .validate()
        .map_err(|e| ExportError::Checkpoint(e.to_string()))?;
    let mut b = Builder {
        g: GraphBuilder::default(),
        weights,
        config,
    };
    let mask = b.g.node(
        "Cast",
        &["attention_mask"],
        vec![attr_int("to", i64::from(data_type::INT32))],
    );
    let mut hidden = b.embeddings()?;
    for l in 0..config.num_hidden_layers {
        hidden = b.layer(&hidden, &mask, l, format)?;
    }
    let logits = b.dense(
        &hidden,
        "qa_outputs",
        2,
        config.hidden_size,
        WeightFormat::Fp32,
    )?;
    let sizes = b.g.int64_tensor("split_sizes", &[2], &[1, 1]);
    let parts = b.g.node_multi(
        "",
        "Split",
        &[&logits, &sizes],
        vec![attr_int("axis", -1)],
        2,
    );
    let last = b.g.int64_tensor("last_axis", &[1], &[-1]);
    b.g.node_named("Squeeze", &[&parts[0], &last], vec![], "start_logits");
    b.g.node_named("Squeeze", &[&parts[1], &last], vec![], "end_logits");
    let dims = [Err("batch"), Err("sequence")];
    let inputs = ["input_ids", "attention_mask", "token_type_ids"]
        .map(|n| tensor_value(n, data_type::INT64, &dims))
        .to_vec();
    let outputs = ["start_logits", "end_logits"]
        .map(|n| tensor_value(n, data_type::FLOAT, &dims))
        .to_vec();
    let graph = b.g.finish("bert_qa", inputs, outputs);
    Ok(ModelProto {
        ir_version: 8,
        producer_name: "bertqa".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "BERT extractive question answering (start/end logits)".into(),
        graph: Some(graph),
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: super::graph::MICROSOFT.into(),
                version: 1,
            },
        ],
        metadata_props: vec![StringStringEntryProto {
            key: "weights".into(),
            value: format!("{format:?}").to_lowercase(),
        }],
    })
}
