//! The route table: which handler answers which path, behind which API-key guard and body
//! limit, and the layers every request passes through.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use super::auth::{self, Guarded};
use super::config::Switch;
use super::evaluation::{routes as jobs, sync};
use super::{answer, error, info, openapi, ops, page, trace, AppState};

/// Every route with its guard and body limit, then the layers that wrap them all (OpenAPI,
/// panics to 500s, request tracing, CORS): the one place that says what the service serves.
pub fn router(state: Arc<AppState>) -> Router {
    let config = &state.config;
    let guard = |route: Guarded| {
        axum::middleware::from_fn_with_state((state.clone(), route), auth::require)
    };
    let (evaluate, evaluations, evaluation) = match config.evaluate {
        Switch::On => (
            post(sync::evaluate),
            post(jobs::start).get(jobs::list),
            get(jobs::status).delete(jobs::cancel),
        ),
        Switch::Off => (
            post(sync::turned_off),
            post(sync::turned_off).get(sync::turned_off),
            get(sync::turned_off).delete(sync::turned_off),
        ),
    };
    let api = page::mount(Router::new())
        .route(
            "/answer",
            post(answer::answer)
                .layer(DefaultBodyLimit::max(config.payload_limit))
                .layer(guard(Guarded::Answer)),
        )
        .route(
            "/evaluate",
            evaluate
                .layer(DefaultBodyLimit::max(config.evaluate_payload_limit))
                .layer(guard(Guarded::Evaluate)),
        )
        .route(
            "/evaluations",
            evaluations
                .layer(DefaultBodyLimit::max(config.evaluate_payload_limit))
                .layer(guard(Guarded::Evaluate)),
        )
        .route(
            "/evaluations/{id}",
            evaluation.layer(guard(Guarded::Evaluate)),
        )
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/info", get(info::info))
        .route("/metrics", get(ops::metrics).layer(guard(Guarded::Metrics)))
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::route_not_found)
        .with_state(state.clone());
    let limits = openapi::ContractLimits {
        max_context_chars: config.max_context_chars,
        max_contexts: config.max_contexts,
        max_client_batch_size: config.max_client_batch_size,
        max_answer_len: state.window.max_seq_len,
        has_null: state.null_threshold.is_some(),
    };
    let router = openapi::mount(api, &limits)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            ops::panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            trace::track,
        ));
    match cors(&state.config.cors_allow_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// The CORS layer for `origins` (none: no CORS headers, browsers keep the same-origin rule).
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allowed = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                trace::REQUEST_ID,
            ])
            .expose_headers([
                trace::REQUEST_ID,
                trace::TOKENIZATION_TIME,
                trace::QUEUE_TIME,
                trace::INFERENCE_TIME,
            ]),
    )
}
