//! The OpenAPI document, generated from the handlers' annotations and completed with the
//! limits this server enforces (so a client, or schemathesis, can trust every bound in it);
//! `openapi.yaml` at the repository root is the document of the default settings, and a test
//! fails when the two differ.

use axum::Router;
use utoipa::openapi::schema::{AllOf, Object, OneOf, Schema, SchemaType};
use utoipa::openapi::RefOr;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::answer::{AnswerInput, AnswerOutput, AnswerRequest, AnswerResponse, AnswerSpan};
use super::error::ErrorBody;
use super::evaluation::jobs::JobState;
use super::evaluation::routes::EvaluationStatus;
use super::evaluation::run::{EvaluateResponse, EvaluationResult};
use super::info::{Architecture, GraphInfo, Limits, ServiceInfo};
use super::ops::Status;
use crate::qa::squad::report::{EvaluationReport, GroupScore, QuestionResult};
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
        super::evaluation::sync::evaluate,
        super::evaluation::routes::start,
        super::evaluation::routes::list,
        super::evaluation::routes::status,
        super::evaluation::routes::cancel,
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
        EvaluationStatus,
        EvaluationResult,
        JobState,
        EvaluationReport,
        QuestionResult,
        GroupScore,
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
    tags((name = "qa", description = "Question answering"), (name = "evaluations", description = "Evaluation jobs: start, watch, read, cancel"), (name = "ops", description = "Operations"))
)]
pub struct ApiDoc;

/// The bounds of `/answer` that depend on the server's settings and model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractLimits {
    /// `--max-context-chars`.
    pub max_context_chars: usize,
    /// `--max-contexts`.
    pub max_contexts: usize,
    /// `--max-client-batch-size`.
    pub max_client_batch_size: usize,
    /// The window length (the longest `max_answer_len`).
    pub max_answer_len: usize,
    /// Whether the model has a trained null answer (`handle_impossible_answer: true`).
    pub has_null: bool,
}

impl Default for ContractLimits {
    /// The default settings with the default model (what `openapi.yaml` states): that model
    /// was trained with unanswerable windows, so it has a null answer to ask for.
    fn default() -> Self {
        Self {
            max_context_chars: super::config::DEFAULT_MAX_CONTEXT_CHARS,
            max_contexts: super::config::DEFAULT_MAX_CONTEXTS,
            max_client_batch_size: super::config::DEFAULT_MAX_CLIENT_BATCH_SIZE,
            max_answer_len: crate::qa::features::WindowConfig::default().max_seq_len,
            has_null: true,
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
        bound_request(request, limits);
    }
    if let Some(request) = schemas.remove("AnswerRequest") {
        schemas.insert(
            "AnswerRequest".into(),
            exactly_one_of(request, &["context", "contexts"]),
        );
    }
    if let Some(RefOr::T(Schema::OneOf(passage))) = schemas.get_mut("PassageInput") {
        for shape in &mut passage.items {
            if let RefOr::T(Schema::Object(text)) = shape {
                bound_text(text, limits.max_context_chars);
            }
        }
    }
    if let Some(RefOr::T(Schema::Object(passage))) = schemas.get_mut("IdentifiedPassage") {
        if let Some(RefOr::T(Schema::Object(text))) = passage.properties.get_mut("text") {
            text.max_length = Some(limits.max_context_chars);
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

/// The per-field bounds of an `/answer` question.
fn bound_request(request: &mut Object, limits: &ContractLimits) {
    for (name, schema) in request.properties.iter_mut() {
        match (name.as_str(), schema) {
            ("context", RefOr::T(Schema::Object(context))) => {
                context.max_length = Some(limits.max_context_chars);
            }
            ("contexts", RefOr::T(Schema::Array(list))) => {
                list.max_items = Some(limits.max_contexts);
            }
            ("max_answer_len", RefOr::T(Schema::Object(length))) => {
                length.maximum = Some(utoipa::Number::UInt(limits.max_answer_len));
            }
            // A v1.1 model has no null answer: only `false` (or leaving it out) is accepted.
            ("handle_impossible_answer", RefOr::T(Schema::Object(flag))) if !limits.has_null => {
                flag.enum_values = Some(vec![false.into(), serde_json::Value::Null]);
            }
            _ => {}
        }
    }
}

/// A passage string's bounds: some text that is not white space, at most `max_chars`.
fn bound_text(text: &mut Object, max_chars: usize) {
    text.min_length = Some(1);
    text.max_length = Some(max_chars);
    text.pattern = Some("\\S".into());
}

/// `schema` with the rule that exactly one of `names` is present (JSON Schema cannot say it
/// in an object's own keywords: `allOf` the object and a `oneOf` of `required`).
fn exactly_one_of(schema: RefOr<Schema>, names: &[&str]) -> RefOr<Schema> {
    let mut choice = OneOf::new();
    for name in names {
        let mut required = Object::with_type(SchemaType::AnyValue);
        required.required = vec![(*name).to_string()];
        choice.items.push(RefOr::T(Schema::Object(required)));
    }
    let description = match &schema {
        RefOr::T(Schema::Object(object)) => object.description.clone(),
        _ => None,
    };
    let mut all = AllOf::new();
    all.items = vec![schema, RefOr::T(Schema::OneOf(choice))];
    all.description = description;
    RefOr::T(Schema::AllOf(all))
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
