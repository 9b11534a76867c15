//! bertqa's own CPU kernels, fused at load time into a graph the file keeps in standard ONNX
//! operators: the file stays portable (Python ONNX Runtime, other runtimes), and bertqa runs
//! the passes ONNX Runtime would make one at a time as one, with the same arithmetic, so the
//! answers are the same bit for bit. Today that is where the int8 graphs quantize activations:
//! SmoothQuant's factors with the per-token quantization after them (the GELU output of
//! `int8-static-gelu-rowwise`, every site of `int8-rowwise`), or with a calibrated step (the
//! other sites of `int8-static-gelu-rowwise` and `int8-static`). With `--kernels
//! fused-attention`, each layer's attention too, in any graph (`attention`), the GELU
//! before a per-token site (`activation`), and each dense layer's bias, residual and layer
//! normalization (`norm`): those logits differ from ONNX Runtime's in the last bits, the same
//! on every CPU.

mod activation;
mod attention;
mod kernels;
mod math;
mod norm;
mod pattern;
mod tasks;

use crate::onnx::proto::{ModelProto, OperatorSetIdProto};
use ort::operator::OperatorDomain;
use prost::Message;

/// The operator domain of bertqa's kernels.
pub const DOMAIN: &str = "ai.bertqa";

/// Whether graphs run ONNX Runtime's operators as written or with bertqa's fused kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Kernels {
    /// `fused`, and each layer's attention as one bertqa kernel, the feed-forward's GELU
    /// inside the quantization after it, and each dense layer's end with its layer
    /// normalization as one (CPU with AVX2 + FMA or AVX-512; logits within rounding of the
    /// graph's, the same on every such CPU).
    FusedAttention,
    /// bertqa's fused kernels where the graph has their pattern (CPU only), with the logits
    /// ONNX Runtime gives for the graph, bit for bit.
    Fused,
    /// Every operator as the file writes it.
    Onnx,
}

/// `model` with every site `kernels` fuses replaced, and how many sites were; None when there
/// was none, or when `model` does not hold all of `bytes`, the file it was decoded from (a
/// field bertqa's ONNX messages do not declare would be lost in the rewrite).
pub fn fuse(model: &ModelProto, bytes: &[u8], kernels: Kernels) -> Option<(ModelProto, usize)> {
    let own_arithmetic = match kernels {
        Kernels::Onnx => return None,
        Kernels::Fused => false,
        Kernels::FusedAttention => attention::available(),
    };
    let sites = pattern::find_sites(model.graph.as_ref()?, DOMAIN, own_arithmetic);
    if sites.is_empty() || model.encode_to_vec() != bytes {
        return None;
    }
    let count = sites.len();
    let mut fused = model.clone();
    pattern::replace(fused.graph.as_mut()?, sites);
    fused.opset_import.push(OperatorSetIdProto {
        domain: DOMAIN.into(),
        version: 1,
    });
    Some((fused, count))
}

/// The operators a fused graph needs, to register on its session.
pub fn operators() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(DOMAIN)?
        .add(kernels::SmoothRowQuantize(activation::Activation::Identity))?
        .add(kernels::SmoothRowQuantize(activation::Activation::Gelu))?
        .add(kernels::SmoothQuantize)?
        .add(attention::Attention)?
        .add(norm::AddLayerNormalization)
}
