//! Reading SQuAD files (`.json` or gzip, detected by content) with errors that say where.

use std::path::Path;

use flate2::read::GzDecoder;
use std::io::Read;
use thiserror::Error;

use super::schema::SquadFile;

/// Why a SQuAD file could not be read; each variant names the file and what to fix.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("cannot read {source_name}: {error}")]
    Io {
        /// The file that failed.
        source_name: String,
        /// The underlying I/O error.
        error: std::io::Error,
    },
    /// The bytes look like gzip but do not decompress (truncated or corrupt).
    #[error("{source_name} is not a valid gzip stream: {error}")]
    Gzip {
        /// The file that failed.
        source_name: String,
        /// The decoder's error.
        error: std::io::Error,
    },
    /// The gzip stream inflates beyond the caller's limit (a decompression bomb, or a file far
    /// larger than any SQuAD set).
    #[error("{source_name} decompresses to more than {limit} bytes")]
    TooLarge {
        /// The file that failed.
        source_name: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The JSON is malformed or is not in the SQuAD layout.
    #[error("{source_name} is not a SQuAD file: at {json_path} (line {line}, column {column}): {message}")]
    Json {
        /// The file that failed.
        source_name: String,
        /// Where in the document, e.g. `data[3].paragraphs[0].qas[2].answers`.
        json_path: String,
        /// Line of the error in the (decompressed) JSON text.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What was wrong.
        message: String,
        /// True when the text is not JSON at all (syntax, truncation), false when it is JSON
        /// of another shape: the service answers 400 for the first and 422 for the second.
        malformed: bool,
    },
}

/// Loads a SQuAD file from any path, plain or gzip-compressed.
pub fn load_squad(path: &Path) -> Result<SquadFile, LoadError> {
    let source_name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| LoadError::Io {
        source_name: source_name.clone(),
        error,
    })?;
    parse_squad(&bytes, &source_name)
}

/// Parses SQuAD bytes (plain JSON or gzip); `source_name` only labels errors. The CLI uses
/// this through [`load_squad`].
pub fn parse_squad(bytes: &[u8], source_name: &str) -> Result<SquadFile, LoadError> {
    parse_squad_within(bytes, source_name, usize::MAX)
}

/// [`parse_squad`] for untrusted bodies: gzip input may inflate to at most `max_inflated`
/// bytes, so a small compressed upload cannot exhaust the server's memory.
pub fn parse_squad_within(
    bytes: &[u8],
    source_name: &str,
    max_inflated: usize,
) -> Result<SquadFile, LoadError> {
    let json = maybe_gunzip(bytes, source_name, max_inflated)?;
    let mut deserializer = serde_json::Deserializer::from_slice(&json);
    let parsed: SquadFile = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        LoadError::Json {
            source_name: source_name.to_string(),
            json_path: path,
            line: inner.line(),
            column: inner.column(),
            message: inner.to_string(),
            malformed: inner.classify() != serde_json::error::Category::Data,
        }
    })?;
    deserializer.end().map_err(|e| LoadError::Json {
        source_name: source_name.to_string(),
        json_path: ".".into(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
        malformed: true,
    })?;
    Ok(parsed)
}

/// Decompresses gzip input (recognised by its magic bytes, whatever the file is called) to at
/// most `limit` bytes.
pub fn maybe_gunzip<'b>(
    bytes: &'b [u8],
    source_name: &str,
    limit: usize,
) -> Result<std::borrow::Cow<'b, [u8]>, LoadError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(6).min(limit));
    GzDecoder::new(bytes)
        .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|error| LoadError::Gzip {
            source_name: source_name.to_string(),
            error,
        })?;
    if out.len() > limit {
        return Err(LoadError::TooLarge {
            source_name: source_name.to_string(),
            limit,
        });
    }
    Ok(std::borrow::Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    const TINY: &str = r#"{"version":"1.1","data":[{"title":"T","paragraphs":[{"context":"abc","qas":[{"id":"1","question":"q","answers":[{"text":"b","answer_start":1}]}]}]}]}"#;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn plain_and_gzip_inputs_parse_the_same() {
        let plain = parse_squad(TINY.as_bytes(), "tiny").unwrap();
        let zipped = parse_squad(&gzip(TINY.as_bytes()), "tiny.gz").unwrap();
        assert_eq!(plain, zipped);
        assert_eq!(plain.question_count(), 1);
    }

    #[test]
    fn malformed_json_names_the_path_line_and_column() {
        let bad = TINY.replace(r#""answer_start":1"#, r#""answer_start":"one""#);
        let err = parse_squad(bad.as_bytes(), "bad.json").unwrap_err();
        let LoadError::Json {
            json_path,
            line,
            column,
            malformed,
            ..
        } = &err
        else {
            panic!("expected a JSON error, got {err}");
        };
        assert!(!malformed, "valid JSON of the wrong shape");
        assert_eq!(
            json_path,
            "data[0].paragraphs[0].qas[0].answers[0].answer_start"
        );
        assert_eq!(*line, 1);
        assert!(*column > 100, "column {column}");
        assert!(err.to_string().contains("bad.json"));
    }

    #[test]
    fn truncated_gzip_is_a_gzip_error() {
        let zipped = gzip(TINY.as_bytes());
        let err = parse_squad(&zipped[..zipped.len() / 2], "cut.gz").unwrap_err();
        assert!(matches!(err, LoadError::Gzip { .. }), "{err}");
    }

    #[test]
    fn gzip_inflating_past_the_limit_is_refused() {
        let zipped = gzip(TINY.as_bytes());
        let err = parse_squad_within(&zipped, "big.gz", TINY.len() - 1).unwrap_err();
        assert!(matches!(err, LoadError::TooLarge { .. }), "{err}");
        assert!(parse_squad_within(&zipped, "ok.gz", TINY.len()).is_ok());
    }

    #[test]
    fn trailing_garbage_and_missing_file_are_errors() {
        for (text, name) in [(format!("{TINY} x"), "t"), (TINY[..40].to_string(), "cut")] {
            let err = parse_squad(text.as_bytes(), name).unwrap_err();
            assert!(
                matches!(
                    err,
                    LoadError::Json {
                        malformed: true,
                        ..
                    }
                ),
                "{name}: {err}"
            );
        }
        let err = load_squad(Path::new("/nonexistent/dev.json")).unwrap_err();
        assert!(matches!(err, LoadError::Io { .. }), "{err}");
    }
}
