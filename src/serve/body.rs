//! Request bodies read our way: the content type checked, the size limit reported as 413,
//! and JSON errors told apart (malformed JSON is 400, JSON of the wrong shape is 422 with the
//! path of the offending field).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The bytes of a JSON body (Content-Type checked, size limit applied), left unparsed so that
/// the handler parses them once, into its own type, off the async workers.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let media = media_type(request.headers());
        if !(media == "application/json" || media.ends_with("+json")) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected Content-Type: application/json, got {}",
                if media.is_empty() { "none" } else { &media }
            )));
        }
        read_bytes(request, state).await.map(JsonBytes)
    }
}

/// Query parameters parsed into `T`; a bad one is a 422 in the JSON error shape (axum's own
/// `Query` answers in plain text).
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(params)| Self(params))
            .map_err(|r| ApiError::Validation(r.body_text()))
    }
}

/// The body's bytes, with axum's limit rejection turned into our 413.
pub async fn read_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|r| ApiError::from_rejection(r.status(), r.body_text()))
}

/// The media type of the Content-Type header, lower-cased, without parameters ("" if none).
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Parses JSON text into `T`, telling syntax errors (400) from shape errors (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::Validation(format!("at {path}: {inner}"))
            }
            _ => ApiError::InvalidJson(inner.to_string()),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
    }

    #[test]
    fn syntax_errors_are_invalid_json_and_shape_errors_are_validation() {
        let err = parse_json::<Shape>(br#"{"name": "#).unwrap_err();
        assert_eq!(err.error_type(), "invalid_json");
        let err = parse_json::<Shape>(br#"{"name": 3}"#).unwrap_err();
        assert_eq!(err.error_type(), "validation");
        assert!(err.to_string().contains("name"), "{err}");
        let err = parse_json::<Shape>(b"{\"name\": \"\xff\"}").unwrap_err();
        assert_eq!(err.error_type(), "invalid_json");
        let err = parse_json::<Shape>(br#"{"name": "a"} x"#).unwrap_err();
        assert_eq!(err.error_type(), "invalid_json");
    }
}
