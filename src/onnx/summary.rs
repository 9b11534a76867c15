//! What a bertqa graph holds, read from its weights and metadata rather than from files that
//! may not travel with it (a model folder has no `config.json`): the architecture and the
//! weight format, for `GET /info` and the info metric.

use super::proto::ModelProto;

/// The facts of one graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSummary {
    /// Transformer layers.
    pub layers: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Word-piece vocabulary.
    pub vocab_size: usize,
    /// Longest window the position embeddings allow.
    pub max_positions: usize,
    /// Model parameters stored in the graph (quantization scales and zero points excluded).
    pub parameters: u64,
    /// Weight format from the graph's metadata (`fp32`, `int8`, `int8rowwise`, ...;
    /// `unknown` for graphs bertqa did not write).
    pub weights: String,
}

/// Quantization bookkeeping, not parameters of the model.
fn is_quantization_constant(name: &str) -> bool {
    name.ends_with("_scale") || name.ends_with("_zero") || name.starts_with("smooth.")
}

impl GraphSummary {
    /// Reads the summary of `model` (zeros where a weight is missing).
    pub fn of(model: &ModelProto) -> Self {
        let metadata = |key: &str| {
            model
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.clone())
        };
        let initializers = model.graph.as_ref().map_or(&[][..], |g| &g.initializer[..]);
        let dims_of = |prefix: &str| {
            initializers
                .iter()
                .find(|t| t.name.starts_with(prefix) && t.dims.len() == 2)
                .map_or((0, 0), |t| (t.dims[0] as usize, t.dims[1] as usize))
        };
        let (vocab_size, hidden_size) = dims_of("bert.embeddings.word_embeddings");
        let (max_positions, _) = dims_of("bert.embeddings.position_embeddings");
        let layers = initializers
            .iter()
            .filter_map(|t| t.name.strip_prefix("bert.encoder.layer."))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |last| last + 1);
        let parameters = initializers
            .iter()
            .filter(|t| t.dims.len() >= 2 || t.name.ends_with("bias") || t.name.ends_with("weight"))
            .filter(|t| !is_quantization_constant(&t.name))
            .map(|t| t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>())
            .sum();
        Self {
            layers,
            hidden_size,
            vocab_size,
            max_positions,
            parameters,
            weights: metadata("weights").unwrap_or_else(|| "unknown".into()),
        }
    }

    /// True when the matrix products run on int8 weights.
    pub fn is_int8(&self) -> bool {
        self.weights.starts_with("int8")
    }
}
