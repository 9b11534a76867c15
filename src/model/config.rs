//! `config.json` of a Hugging Face BERT checkpoint (any size: MiniLM, base, large).

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a `config.json` cannot describe a model we can build.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Missing or unreadable file.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Not a BERT config.
    #[error("{path} is not a BERT config.json: {message}")]
    Parse {
        /// The file.
        path: String,
        /// serde's message with the failing field.
        message: String,
    },
    /// Parsed, but describes something we do not support.
    #[error("unsupported BERT config: {0}")]
    Unsupported(String),
}

fn default_initializer_range() -> f64 {
    0.02
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

fn default_dropout() -> f64 {
    0.1
}

/// The architecture hyperparameters; unknown keys of `config.json` are kept so that a
/// checkpoint we save still loads in `transformers` with everything it had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word embedding).
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer; only exact (erf) GELU is supported.
    pub hidden_act: String,
    /// Longest sequence the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Segment (token type) vocabulary, 2 for BERT.
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm.
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Dropout after embeddings, attention output and feed-forward output.
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Standard deviation of freshly initialised weights (e.g. the QA head).
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// Every other key of the file, written back unchanged.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl BertConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: name.clone(),
            error,
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            path: name,
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the invariants the model code relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let unsupported = |m: String| Err(ConfigError::Unsupported(m));
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return unsupported(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.hidden_act != "gelu" {
            return unsupported(format!(
                "hidden_act '{}' (only exact 'gelu' is supported)",
                self.hidden_act
            ));
        }
        if let Some(kind) = self
            .extra
            .get("position_embedding_type")
            .and_then(|v| v.as_str())
        {
            if kind != "absolute" {
                return unsupported(format!("position_embedding_type '{kind}'"));
            }
        }
        if [
            self.vocab_size,
            self.num_hidden_layers,
            self.intermediate_size,
            self.max_position_embeddings,
            self.type_vocab_size,
        ]
        .contains(&0)
        {
            return unsupported("a size in config.json is zero".into());
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// A small random-init config for tests and smoke runs (2 layers, width 32).
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            hidden_act: "gelu".into(),
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            initializer_range: 0.02,
            extra: serde_json::Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_are_rejected_with_the_reason() {
        let mut c = BertConfig::tiny(100);
        assert!(c.validate().is_ok());
        c.num_attention_heads = 5;
        assert!(c.validate().unwrap_err().to_string().contains("multiple"));
        let mut c = BertConfig::tiny(100);
        c.hidden_act = "relu".into();
        assert!(c.validate().unwrap_err().to_string().contains("relu"));
    }

    #[test]
    fn unknown_keys_survive_a_round_trip() {
        let json = r#"{"vocab_size":10,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,
            "intermediate_size":16,"hidden_act":"gelu","max_position_embeddings":32,"type_vocab_size":2,
            "model_type":"bert","architectures":["BertModel"]}"#;
        let c: BertConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.layer_norm_eps, 1e-12);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["model_type"], "bert");
    }
}
