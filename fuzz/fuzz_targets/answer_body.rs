//! The `/answer` body parser and its checks on arbitrary bytes: a request with its passages
//! or an error with a 4xx status, never a panic.
#![no_main]

use bertqa::serve::answer::{AnswerInput, RequestLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let limits = RequestLimits {
        max_context_chars: 1000,
        max_contexts: 4,
        max_answer_len: 384,
        has_null: bytes.first().is_some_and(|b| b & 1 == 1),
    };
    match AnswerInput::parse(bytes) {
        Ok(input) => {
            for mut request in input.into_requests() {
                match request.passages(&limits) {
                    Ok(passages) => {
                        assert!(!passages.list.is_empty() && passages.list.len() <= 4);
                        assert!(passages.list.iter().all(|p| p.text.chars().count() <= 1000));
                    }
                    Err(error) => assert!(error.status().is_client_error(), "{error}"),
                }
            }
        }
        Err(error) => assert!(error.status().is_client_error(), "{error}"),
    }
});
