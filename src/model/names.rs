//! Parameter names of Hugging Face `BertForQuestionAnswering`, the one naming every file we
//! write uses. Checkpoints of a bare `BertModel` (like all-MiniLM-L6-v2) lack the `bert.`
//! prefix; older ones call LayerNorm parameters `gamma`/`beta`. [`canonical`] maps those to
//! ours.

/// Prefix of the encoder's parameters in a question-answering checkpoint.
pub const ENCODER_PREFIX: &str = "bert.";

/// Names of checkpoint tensors that are not parameters of the QA model (the pretraining
/// pooler and the position-id buffer): skipped when loading, never reported as unexpected.
pub fn is_ignored(name: &str) -> bool {
    name.contains("pooler.") || name.ends_with("position_ids") || name.starts_with("cls.")
}

/// The `BertForQuestionAnswering` name of a checkpoint tensor name.
pub fn canonical(name: &str) -> String {
    let renamed = name
        .replace("LayerNorm.gamma", "LayerNorm.weight")
        .replace("LayerNorm.beta", "LayerNorm.bias");
    if renamed.starts_with(ENCODER_PREFIX) || renamed.starts_with("qa_outputs.") {
        renamed
    } else {
        format!("{ENCODER_PREFIX}{renamed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_and_legacy_names_map_to_qa_names() {
        assert_eq!(
            canonical("embeddings.word_embeddings.weight"),
            "bert.embeddings.word_embeddings.weight"
        );
        assert_eq!(
            canonical("bert.encoder.layer.0.output.LayerNorm.gamma"),
            "bert.encoder.layer.0.output.LayerNorm.weight"
        );
        assert_eq!(canonical("qa_outputs.bias"), "qa_outputs.bias");
        assert!(is_ignored("pooler.dense.weight") && is_ignored("embeddings.position_ids"));
        assert!(!is_ignored("bert.embeddings.word_embeddings.weight"));
    }
}
