//! The OpenAPI document, generated from the handlers' annotations; `openapi.yaml` at the
//! repository root is this document, and a test fails when the two differ.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::answer::{AnswerInput, AnswerOutput, AnswerRequest, AnswerResponse, AnswerSpan};
use super::error::ErrorBody;
use super::evaluate::EvaluateResponse;
use super::ops::Status;

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
        super::ops::metrics
    ),
    components(schemas(
        AnswerInput,
        AnswerRequest,
        AnswerOutput,
        AnswerResponse,
        AnswerSpan,
        EvaluateResponse,
        ErrorBody,
        Status
    )),
    tags((name = "qa", description = "Question answering"), (name = "ops", description = "Operations"))
)]
pub struct ApiDoc;

/// The document as YAML, the form committed as `openapi.yaml`.
pub fn yaml() -> Result<String, String> {
    ApiDoc::openapi().to_yaml().map_err(|e| e.to_string())
}

/// Adds `/openapi.json` and the Swagger UI at `/docs` (served from the binary, no CDN).
pub fn mount(router: Router) -> Router {
    router.merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
