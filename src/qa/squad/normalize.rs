//! `normalize_answer` of the official SQuAD scripts, with the Python behaviour that changes
//! numbers reproduced: Unicode lower-casing, ASCII-only punctuation, articles removed only as
//! whole words under Python's Unicode `\w`, and `str.split()` whitespace.

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

use crate::qa::text::is_python_whitespace;

/// Lower-cases, drops ASCII punctuation and the words a/an/the, and collapses whitespace,
/// exactly like the official `normalize_answer`.
pub fn normalize_answer(s: &str) -> String {
    let lowered = s.to_lowercase();
    let no_punct: String = lowered
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let no_articles = remove_articles(&no_punct);
    no_articles
        .split(is_python_whitespace)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `re` `\w` for `str` patterns: alphanumeric in the Unicode sense, or `_`.
fn is_word_char(c: char) -> bool {
    c == '_'
        || matches!(
            get_general_category(c),
            Gc::UppercaseLetter
                | Gc::LowercaseLetter
                | Gc::TitlecaseLetter
                | Gc::ModifierLetter
                | Gc::OtherLetter
                | Gc::DecimalNumber
                | Gc::LetterNumber
                | Gc::OtherNumber
        )
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)`: a match is exactly a maximal run of word
/// characters equal to one of the articles.
fn remove_articles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run_start: Option<usize> = None;
    let flush = |out: &mut String, run: &str| {
        if matches!(run, "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(run);
        }
    };
    for (i, c) in text.char_indices() {
        if is_word_char(c) {
            run_start.get_or_insert(i);
        } else {
            if let Some(start) = run_start.take() {
                flush(&mut out, &text[start..i]);
            }
            out.push(c);
        }
    }
    if let Some(start) = run_start {
        flush(&mut out, &text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_follows_the_official_script() {
        assert_eq!(normalize_answer("The  Denver Broncos!"), "denver broncos");
        assert_eq!(
            normalize_answer("a man, an apple and THE end"),
            "man apple and end"
        );
        assert_eq!(normalize_answer("theatre an-ti"), "theatre anti");
        assert_eq!(normalize_answer("café_the"), "caféthe");
        // Outputs of CPython 3.11 on the same strings:
        assert_eq!(
            normalize_answer("ΣΑΣ the\u{301} a\u{b2} the²"),
            "σας \u{301} a\u{b2} the²"
        );
        assert_eq!(normalize_answer("«the» “a”"), "« » “ ”");
        assert_eq!(normalize_answer("the\u{1f}end"), "end");
        assert_eq!(normalize_answer("\u{130}STANBUL"), "i\u{307}stanbul");
    }
}
