//! Text rules shared by windowing, decoding and scoring.
//!
//! SQuAD offsets count Unicode scalar values (Python `str` indices) while Rust slices by
//! bytes; every conversion goes through [`CharIndex`] so that no code path can slice inside
//! a UTF-8 sequence. The official SQuAD tools are Python, so their notion of whitespace is
//! mirrored here too, beside ECMAScript's, which the OpenAPI document's patterns use.

use unicode_general_category::{get_general_category, GeneralCategory};

/// Maps character (Unicode scalar) offsets of one string to byte offsets, because SQuAD
/// answers and our API speak characters while Rust strings are sliced by bytes.
#[derive(Debug, Clone)]
pub struct CharIndex {
    byte_at: Vec<usize>,
}

impl CharIndex {
    /// Indexes `text` once so that later lookups are O(1).
    pub fn new(text: &str) -> Self {
        let mut byte_at: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        byte_at.push(text.len());
        Self { byte_at }
    }

    /// Byte offset of character `char_offset`, or `None` past the end of the text.
    pub fn byte(&self, char_offset: usize) -> Option<usize> {
        self.byte_at.get(char_offset).copied()
    }

    /// The substring between two character offsets, or `None` when they are out of range
    /// or reversed: callers decide what a bad span means instead of panicking.
    pub fn slice<'t>(&self, text: &'t str, start: usize, end: usize) -> Option<&'t str> {
        if start > end {
            return None;
        }
        text.get(self.byte(start)?..self.byte(end)?)
    }
}

/// Python's `str.isspace`, which the official SQuAD scripts (`str.split`, `str.lstrip`)
/// use: Unicode White_Space plus the ASCII information separators U+001C..U+001F.
pub fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// White space as ECMAScript's `\s` (and so the `pattern` keyword of JSON Schema) defines it:
/// tab, line feed, vertical tab, form feed, carriage return, no-break space, the BOM, the line
/// and paragraph separators, and every Unicode space separator (Zs). Unlike Unicode's
/// White_Space it excludes U+0085 and includes U+FEFF.
pub fn is_ecmascript_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{a0}' | '\u{feff}' | '\u{2028}' | '\u{2029}'
    ) || get_general_category(c) == GeneralCategory::SpaceSeparator
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_index_slices_multibyte_text_by_characters() {
        let text = "naïve 🚀 café";
        let index = CharIndex::new(text);
        assert_eq!((index.byte(12), index.byte(13)), (Some(text.len()), None));
        assert_eq!(index.slice(text, 6, 7), Some("🚀"));
        assert_eq!(index.slice(text, 8, 12), Some("café"));
        assert_eq!(index.slice(text, 8, 13), None);
        assert_eq!(index.slice(text, 3, 2), None);
    }

    #[test]
    fn ecmascript_whitespace_is_not_unicode_white_space() {
        for c in [' ', '\t', '\u{a0}', '\u{3000}', '\u{feff}', '\u{2029}'] {
            assert!(is_ecmascript_whitespace(c), "{c:?}");
        }
        for c in ['a', '\u{85}', '\u{200b}', '\u{1c}'] {
            assert!(!is_ecmascript_whitespace(c), "{c:?}");
        }
    }

    #[test]
    fn python_whitespace_includes_information_separators() {
        assert!(is_python_whitespace('\u{1f}'));
        assert!(is_python_whitespace('\u{a0}'));
        assert!(!is_python_whitespace('\u{200b}'));
        assert!(!is_python_whitespace('x'));
    }
}
