//! The OpenAPI document, generated from the handlers' annotations and completed with the
//! limits this server enforces (so a client, or schemathesis, can trust every bound in it);
//! `openapi.yaml` at the repository root is the document of the default settings, and a test
//! fails when the two differ.

use axum::Router;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::answer::{AnswerInput, AnswerOutput, AnswerRequest, AnswerResponse, AnswerSpan};
use super::error::ErrorBody;
use super::evaluate::EvaluateResponse;
use super::info::{Architecture, GraphInfo, Limits, ServiceInfo};
use super::ops::Status;
use crate::qa::squad::{Answer, Article, Paragraph, QuestionAnswers, SquadFile};

/// The bertqa HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "bertqa",
        description = "Extractive question answering with BERT (SQuAD), served by ONNX Runtime."
    ),
    paths(
        super::answer::answer,
        super::evaluate::evaluate,
        super::ops::health,
        super::ops::ready,
        super::ops::metrics,
        super::info::info
    ),
    components(schemas(
        AnswerInput,
        AnswerRequest,
        AnswerOutput,
        AnswerResponse,
        AnswerSpan,
        EvaluateResponse,
        ErrorBody,
        SquadFile,
        Article,
        Paragraph,
        QuestionAnswers,
        Answer,
        Status,
        ServiceInfo,
        Architecture,
        GraphInfo,
        Limits
    )),
    tags((name = "qa", description = "Question answering"), (name = "ops", description = "Operations"))
)]
pub struct ApiDoc;

/// The bounds of `/answer` that depend on the server's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractLimits {
    /// `--max-context-chars`.
    pub max_context_chars: usize,
    /// `--max-client-batch-size`.
    pub max_client_batch_size: usize,
    /// The window length (the longest `max_answer_len`).
    pub max_answer_len: usize,
}

impl Default for ContractLimits {
    /// The default settings with the default window (what `openapi.yaml` states).
    fn default() -> Self {
        Self {
            max_context_chars: super::config::DEFAULT_MAX_CONTEXT_CHARS,
            max_client_batch_size: super::config::DEFAULT_MAX_CLIENT_BATCH_SIZE,
            max_answer_len: crate::qa::features::WindowConfig::default().max_seq_len,
        }
    }
}

/// The document, with `limits` written into the schemas.
pub fn document(limits: &ContractLimits) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let Some(schemas) = doc.components.as_mut().map(|c| &mut c.schemas) else {
        return doc;
    };
    if let Some(RefOr::T(Schema::Object(request))) = schemas.get_mut("AnswerRequest") {
        if let Some(RefOr::T(Schema::Object(context))) = request.properties.get_mut("context") {
            context.max_length = Some(limits.max_context_chars);
        }
        if let Some(RefOr::T(Schema::Object(length))) = request.properties.get_mut("max_answer_len")
        {
            length.maximum = Some(utoipa::Number::UInt(limits.max_answer_len));
        }
    }
    if let Some(RefOr::T(Schema::OneOf(input))) = schemas.get_mut("AnswerInput") {
        for shape in &mut input.items {
            if let RefOr::T(Schema::Array(list)) = shape {
                list.min_items = Some(1);
                list.max_items = Some(limits.max_client_batch_size);
            }
        }
    }
    doc
}

/// The document of the default settings as YAML, the form committed as `openapi.yaml`.
pub fn yaml() -> Result<String, String> {
    document(&ContractLimits::default())
        .to_yaml()
        .map_err(|e| e.to_string())
}

/// Adds `/openapi.json` (stating `limits`) and the Swagger UI at `/docs` (served from the
/// binary, no CDN).
pub fn mount(router: Router, limits: &ContractLimits) -> Router {
    router.merge(SwaggerUi::new("/docs").url("/openapi.json", document(limits)))
}
