//! `Featurizer` and span decoding on arbitrary Unicode and window geometry: windows fit their
//! geometry, and every answer decoded from arbitrary logits is exactly its characters of the
//! context.
#![no_main]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use bertqa::qa::decode::{decode, DecodeConfig, WindowLogits};
use bertqa::qa::features::{Featurizer, Window, WindowConfig};
use libfuzzer_sys::fuzz_target;

fn tokenizer() -> &'static tokenizers::Tokenizer {
    static TOKENIZER: OnceLock<tokenizers::Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/minilm-l6-squad1/tokenizer.json"
        );
        tokenizers::Tokenizer::from_file(path).expect("the default model's tokenizer")
    })
}

/// The windows of `question` + `context` under `config`, with featurizers built once per
/// geometry (a tokenizer clone costs milliseconds); `None` for a geometry that is refused.
fn windows(config: WindowConfig, question: &str, context: &str) -> Option<Vec<Window>> {
    type Cache = HashMap<(usize, usize, usize), Option<Featurizer>>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().ok()?;
    if cache.len() > 256 {
        cache.clear();
    }
    let key = (config.max_seq_len, config.doc_stride, config.max_query_len);
    let featurizer = cache
        .entry(key)
        .or_insert_with(|| Featurizer::new(tokenizer().clone(), config).ok())
        .as_ref()?;
    featurizer.windows(question, context).ok()
}

fuzz_target!(|input: (u8, u8, u8, u8, String, String)| {
    let (seq, stride, query, answer_len, question, context) = input;
    let config = WindowConfig {
        max_seq_len: usize::from(seq),
        doc_stride: usize::from(stride),
        max_query_len: usize::from(query),
    };
    let Some(windows) = windows(config, &question, &context) else {
        return;
    };
    let chars: Vec<char> = context.chars().collect();
    let logits: Vec<WindowLogits> = windows
        .iter()
        .map(|w| {
            assert!(
                w.len() <= config.max_seq_len,
                "window longer than its geometry"
            );
            let ramp = |k: usize| (0..w.len()).map(|i| ((i * 7 + k) % 13) as f32).collect();
            WindowLogits {
                start: ramp(3),
                end: ramp(5),
            }
        })
        .collect();
    let decode_config = DecodeConfig {
        n_best: 20,
        max_answer_len: usize::from(answer_len).max(1),
    };
    let prediction = decode(&context, &windows, &logits, &decode_config, true).expect("logits fit");
    for answer in &prediction.answers {
        assert!(answer.start < answer.end && answer.end <= chars.len());
        let expected: String = chars[answer.start..answer.end].iter().collect();
        assert_eq!(answer.text, expected);
    }
});
