//! A SQuAD file as `/evaluate` and `/evaluations` receive it: a JSON or gzip body or a form
//! upload, parsed off the async workers within the inflation limit, and checked to have
//! questions, so both routes refuse the same bad files with the same errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use serde::Deserialize;
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::IntoParams;

use super::super::body::{media_type, read_bytes};
use super::super::error::ApiError;
use super::super::{off_runtime, AppState};
use crate::qa::squad::{parse_squad_within, Example, LoadError, SquadFile};

/// Query options of `/evaluate` and `POST /evaluations`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EvaluateQuery {
    /// Only the first N questions of the file.
    #[param(minimum = 1, nullable = false)]
    #[serde(default, deserialize_with = "crate::qa::numbers::optional_query_whole")]
    pub limit: Option<usize>,
    /// Include every prediction (id -> answer) in the response.
    #[serde(default)]
    pub predictions: bool,
}

/// A parsed SQuAD file and its questions, ready to evaluate.
pub struct Upload {
    /// The file (the official scores are computed on it).
    pub dataset: SquadFile,
    /// Its questions, in file order.
    pub examples: Arc<Vec<Example>>,
}

/// Reads and parses the request's SQuAD file (its first `limit` questions).
pub async fn receive(
    state: &Arc<AppState>,
    request: Request,
    limit: Option<usize>,
) -> Result<Upload, ApiError> {
    let bytes = squad_bytes(request, state).await?;
    let inflate_limit = state.config.evaluate_payload_limit.saturating_mul(4);
    off_runtime(move || {
        let parsed = parse_squad_within(&bytes, "the request body", inflate_limit);
        let dataset = parsed.map_err(load_error)?;
        if let Some(path) = dataset.first_empty_list() {
            return Err(ApiError::Validation(format!("{path} is empty")));
        }
        let dataset = match limit {
            Some(n) => dataset.truncated(n),
            None => dataset,
        };
        let examples = Arc::new(dataset.examples());
        if examples.is_empty() {
            return Err(ApiError::Validation("the file has no questions".into()));
        }
        Ok(Upload { dataset, examples })
    })
    .await?
}

/// The SQuAD bytes of the request: a JSON or gzip body, or the first file of a form.
async fn squad_bytes(request: Request, state: &Arc<AppState>) -> Result<Bytes, ApiError> {
    let media = media_type(request.headers());
    let gzip_encoded = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    match media.as_str() {
        "multipart/form-data" => {
            let mut form = Multipart::from_request(request, state)
                .await
                .map_err(|r| ApiError::from_rejection(r.status(), r.body_text()))?;
            let field = form
                .next_field()
                .await
                .map_err(|e| ApiError::from_rejection(e.status(), e.body_text()))?
                .ok_or_else(|| ApiError::BadRequest("the form has no file".into()))?;
            field
                .bytes()
                .await
                .map_err(|e| ApiError::from_rejection(e.status(), e.body_text()))
        }
        "application/json" | "application/gzip" | "application/x-gzip" => {
            read_bytes(request, state).await
        }
        _ if gzip_encoded => read_bytes(request, state).await,
        other => Err(ApiError::UnsupportedMediaType(format!(
            "send a SQuAD file as application/json, application/gzip or multipart/form-data, not {}",
            if other.is_empty() { "no Content-Type" } else { other }
        ))),
    }
}

fn load_error(error: LoadError) -> ApiError {
    match error {
        LoadError::TooLarge { .. } => ApiError::PayloadTooLarge(error.to_string()),
        LoadError::Json {
            malformed: true, ..
        } => ApiError::InvalidJson(error.to_string()),
        LoadError::Json { .. } => ApiError::Validation(error.to_string()),
        LoadError::Gzip { .. } | LoadError::Io { .. } => ApiError::BadRequest(error.to_string()),
    }
}

/// The rejections an uploaded SQuAD file can meet, the same for `/evaluate` and
/// `POST /evaluations` (each adds its own success and 429): one list, so the two documented
/// contracts cannot drift apart.
pub struct UploadRejections;

/// (status, description) of each rejection in [`UploadRejections`]; every body is an
/// `ErrorBody`.
const UPLOAD_REJECTIONS: [(u16, &str); 7] = [
    (400, "Malformed JSON, gzip or form"),
    (
        401,
        "No API key or a wrong one (with --api-key or --evaluate-api-key)",
    ),
    (404, "Turned off on this server (--evaluate off)"),
    (413, "Body too large"),
    (415, "Unsupported Content-Type"),
    (422, "Not a SQuAD file, or bad query parameters"),
    (503, "Shutting down"),
];

impl utoipa::IntoResponses for UploadRejections {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        UPLOAD_REJECTIONS
            .iter()
            .map(|(status, description)| {
                let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
                let response = ResponseBuilder::new()
                    .description(*description)
                    .content("application/json", body)
                    .build();
                (status.to_string(), RefOr::T(response))
            })
            .collect()
    }
}
