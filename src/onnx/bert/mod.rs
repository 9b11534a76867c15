//! The BERT question-answering graph, mirroring `train::bert` (a parity test keeps the two in
//! step): inputs `input_ids`, `attention_mask`, `token_type_ids` (int64 `[batch, sequence]`),
//! outputs `start_logits`, `end_logits` (float `[batch, sequence]`).
//!
//! Two operator styles ([`OpStyle`]): standard primitives that ONNX Runtime's optimizer fuses
//! (the default, measured faster), or its contrib kernels written directly. With int8 weights
//! ([`WeightFormat`]) every dense layer of the encoder runs on per-column int8 weights, its
//! activations quantized per batch by `DynamicQuantizeMatMul` or, batch-invariantly, per row or
//! with calibrated steps ([`crate::onnx::activation_quant`]); the embeddings, LayerNorms and
//! the 2-wide QA head stay fp32.

mod dense;
mod layers;

use dense::SiteInput;
use layers::Builder;

use super::clip::ActivationClips;
use super::graph::{attr_int, tensor_value, GraphBuilder};
use super::proto::{
    data_type, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, ValueInfoProto,
};
use super::smooth::{ActivationRanges, Site};
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
    /// int8 weights as `Int8`, activations quantized per row (per token) with standard ops:
    /// batch-invariant answers and closer to fp32, but 36% slower than `Int8` on the default
    /// model (bench/RESULTS.md).
    Int8Rowwise,
    /// int8 weights as `Int8`, activations quantized with one calibrated step per site
    /// (SmoothQuant-balanced, [`super::clip`]): batch-invariant like `Int8Rowwise` without its
    /// per-row work; needs calibration data.
    Int8Static,
    /// `Int8Static` except the GELU output (the down projection's input), quantized per row as
    /// in `Int8Rowwise`: that one site of four held most of the static form's lost agreement
    /// with fp32 (93% -> 96%), for a quarter of the row-wise form's per-row work
    /// (bench/RESULTS.md, "Which sites cost the accuracy"); needs calibration data.
    Int8StaticGeluRowwise,
}

impl WeightFormat {
    /// Whether the format quantizes each site's input itself, so that a window's logits never
    /// depend on its batch mates; these are the formats calibration applies to.
    pub fn is_batch_invariant_int8(self) -> bool {
        matches!(
            self,
            Self::Int8Rowwise | Self::Int8Static | Self::Int8StaticGeluRowwise
        )
    }

    /// Whether some site takes a calibrated step (a batch-invariant format that does not
    /// quantize every site per row), so the export cannot run without calibration data.
    pub fn needs_clips(self) -> bool {
        self.is_batch_invariant_int8()
            && Site::ALL.iter().any(|&site| !self.quantizes_rows_at(site))
    }

    /// Whether a batch-invariant graph of this format quantizes `site`'s input row by row at
    /// run time rather than with the site's calibrated step.
    pub fn quantizes_rows_at(self, site: Site) -> bool {
        match self {
            Self::Int8Rowwise => true,
            Self::Int8StaticGeluRowwise => site == Site::Gelu,
            _ => false,
        }
    }

    /// The name `--int8-mode` takes, for messages that tell the user what to change.
    pub fn flag_name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_string())
    }

    /// The `--int8-mode` names of the formats `keep` accepts ("a, b or c"), so that messages
    /// listing the valid choices follow the enum.
    pub fn flag_names(keep: impl Fn(Self) -> bool) -> String {
        use clap::ValueEnum;
        let names: Vec<String> = Self::value_variants()
            .iter()
            .copied()
            .filter(|format| keep(*format))
            .map(Self::flag_name)
            .collect();
        match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// Which operators express attention, residual LayerNorm and GELU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum OpStyle {
    /// Standard opset-17 primitives (MatMul/Softmax attention, Add + LayerNormalization, Erf
    /// GELU) that ONNX Runtime's optimizer fuses itself: the default, as it measured as fast in
    /// fp32 and 10-15% faster in int8 than `Fused` in interleaved runs (bench/RESULTS.md), and
    /// it is portable to other ONNX runtimes.
    Primitive,
    /// ONNX Runtime's contrib kernels written directly (`MultiHeadAttention`,
    /// `SkipLayerNormalization`, `Gelu`).
    Fused,
}

/// Activation ranges and the migration strength α that the row-wise int8 graph smooths with
/// (see [`super::smooth`]).
#[derive(Debug, Clone, Copy)]
pub struct Smoothing<'r> {
    /// Per-channel maxima from calibration windows.
    pub ranges: &'r ActivationRanges,
    /// 0: no migration; 1: all of the activation range moves into the weights.
    pub alpha: f32,
}

/// What graph [`bert_qa_model`] builds.
#[derive(Debug, Clone, Copy)]
pub struct GraphOptions<'r> {
    /// How dense-layer weights are stored.
    pub format: WeightFormat,
    /// Operator style.
    pub style: OpStyle,
    /// Smooth the activations of the batch-invariant int8 graphs (ignored by other formats).
    pub smoothing: Option<Smoothing<'r>>,
    /// The calibrated step of every site: required by the formats that
    /// [`WeightFormat::needs_clips`], ignored by the others.
    pub clips: Option<&'r ActivationClips>,
    /// Also output every dense layer's input as `observe.{site key}` (`[batch, sequence,
    /// channels]`): the calibration graph that measures [`ActivationRanges`].
    pub observe: bool,
}

impl GraphOptions<'_> {
    /// A plain graph of `format` in `style`.
    pub fn new(format: WeightFormat, style: OpStyle) -> Self {
        Self {
            format,
            style,
            smoothing: None,
            clips: None,
            observe: false,
        }
    }
}

/// The graph output carrying the dense input at a site, in calibration graphs.
pub fn observed_output(key: &str) -> String {
    format!("observe.{key}")
}

/// Builds the whole model.
pub fn bert_qa_model<'w>(
    weights: &'w Weights,
    config: &'w BertConfig,
    options: &GraphOptions<'w>,
) -> Result<ModelProto, ExportError> {
    config
        .validate()
        .map_err(|e| ExportError::Checkpoint(e.to_string()))?;
    let (format, style) = (options.format, options.style);
    let mut b = Builder {
        g: GraphBuilder::default(),
        weights,
        config,
        style,
        smoothing: options.smoothing,
        clips: options.clips,
        observe: options.observe,
        observed: vec![],
    };
    let mask = b.mask();
    let mut hidden = b.embeddings(format)?;
    for l in 0..config.num_hidden_layers {
        hidden = b.layer(&hidden, &mask, l, format)?;
    }
    qa_head(&mut b, hidden)?;
    let (inputs, outputs) = interface(&mut b);
    let graph = b.g.finish("bert_qa", inputs, outputs);
    Ok(model_file(graph, options))
}

/// The 2-wide QA head (fp32) split into the two named logit outputs.
fn qa_head(b: &mut Builder, hidden: String) -> Result<(), ExportError> {
    let head_input = SiteInput::plain(hidden);
    let width = b.config.hidden_size;
    let logits = b.dense("qa_outputs", 2, width, WeightFormat::Fp32, &head_input)?;
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
    Ok(())
}

/// The graph's inputs and outputs: every bertqa graph's three and two, plus the observed
/// activations of a calibration graph.
fn interface(b: &mut Builder) -> (Vec<ValueInfoProto>, Vec<ValueInfoProto>) {
    let dims = [Err("batch"), Err("sequence")];
    let inputs = ["input_ids", "attention_mask", "token_type_ids"]
        .map(|n| tensor_value(n, data_type::INT64, &dims))
        .to_vec();
    let mut outputs = ["start_logits", "end_logits"]
        .map(|n| tensor_value(n, data_type::FLOAT, &dims))
        .to_vec();
    for (key, tensor, channels) in std::mem::take(&mut b.observed) {
        let name = observed_output(&key);
        b.g.node_named("Identity", &[&tensor], vec![], &name);
        let dims = [Err("batch"), Err("sequence"), Ok(channels as i64)];
        outputs.push(tensor_value(&name, data_type::FLOAT, &dims));
    }
    (inputs, outputs)
}

/// The model file around `graph`: opsets, producer, and metadata naming its weight format,
/// operator style and smoothing.
fn model_file(graph: GraphProto, options: &GraphOptions) -> ModelProto {
    let (format, style) = (options.format, options.style);
    let mut metadata_props = vec![
        StringStringEntryProto {
            key: "weights".into(),
            value: format!("{format:?}").to_lowercase(),
        },
        StringStringEntryProto {
            key: "ops".into(),
            value: format!("{style:?}").to_lowercase(),
        },
    ];
    let mut note = |key: &str, value: String| {
        metadata_props.push(StringStringEntryProto {
            key: key.into(),
            value,
        })
    };
    if let Some(smoothing) = options
        .smoothing
        .filter(|_| format.is_batch_invariant_int8())
    {
        note("smoothing_alpha", smoothing.alpha.to_string());
    }
    if let Some(clips) = options.clips.filter(|_| format.needs_clips()) {
        note("clip_percentile", clips.percentile.to_string());
    }
    ModelProto {
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
        metadata_props,
    }
}
