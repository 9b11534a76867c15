//! The SQuAD loader on arbitrary bytes (JSON or gzip, detected by content): an error or a
//! file, never a panic, and gzip never inflates past its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(file) = bertqa::qa::squad::parse_squad_within(bytes, "fuzz.json", 1 << 20) {
        let examples = file.examples();
        let _ = file.check_answers();
        let _ = file.first_empty_list();
        for example in &examples {
            let _ = example.answer_span();
        }
    }
});
