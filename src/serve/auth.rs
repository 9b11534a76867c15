//! Who may use which route: bearer API keys (`Authorization: Bearer KEY`) for `/answer`, a
//! separate set for `/evaluate` if wanted (an evaluation costs minutes of CPU), and `/metrics`
//! behind the API keys on request. Probes (`/health`, `/ready`) and the docs stay open so
//! that orchestrators need no secret. Keys are compared in constant time.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;

/// One API key. Its `Debug` form hides it, so settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl FromStr for ApiKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let key = text.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("an API key is one or more visible ASCII characters".into());
        }
        Ok(Self(key.to_string()))
    }
}

/// The routes that can be guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// `POST /answer`.
    Answer,
    /// `POST /evaluate`.
    Evaluate,
    /// `GET /metrics` (guarded only with `--metrics-auth`).
    Metrics,
}

/// The keys each guarded route accepts; a route with none is open.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    api_keys: Vec<ApiKey>,
    evaluate_keys: Vec<ApiKey>,
    metrics_need_key: bool,
}

impl AccessPolicy {
    /// `/answer` takes `api_keys`; `/evaluate` takes `evaluate_keys` when there are any, else
    /// `api_keys`; `/metrics` takes `api_keys` when `metrics_need_key`.
    pub fn new(api_keys: &[ApiKey], evaluate_keys: &[ApiKey], metrics_need_key: bool) -> Self {
        Self {
            api_keys: api_keys.to_vec(),
            evaluate_keys: evaluate_keys.to_vec(),
            metrics_need_key,
        }
    }

    fn keys(&self, route: Guarded) -> &[ApiKey] {
        match route {
            Guarded::Answer => &self.api_keys,
            Guarded::Evaluate if !self.evaluate_keys.is_empty() => &self.evaluate_keys,
            Guarded::Evaluate => &self.api_keys,
            Guarded::Metrics if self.metrics_need_key => &self.api_keys,
            Guarded::Metrics => &[],
        }
    }

    /// Ok when `route` is open or `headers` carry one of its keys; else 401.
    pub fn authorize(&self, route: Guarded, headers: &HeaderMap) -> Result<(), ApiError> {
        let keys = self.keys(route);
        if keys.is_empty() {
            return Ok(());
        }
        let given = bearer_token(headers).ok_or_else(|| {
            ApiError::Unauthorized("this route needs an API key: Authorization: Bearer KEY".into())
        })?;
        // Every key is compared, so the time taken does not say which one (nearly) matched.
        let matched = keys.iter().fold(false, |found, key| {
            found | same_secret(given, key.0.as_bytes())
        });
        if matched {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(
                "the API key is not valid for this route".into(),
            ))
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at(value.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// Byte equality whose time depends only on the lengths, not on where the bytes differ.
fn same_secret(given: &[u8], key: &[u8]) -> bool {
    if given.len() != key.len() {
        return false;
    }
    let difference = given.iter().zip(key).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

/// Middleware of a guarded route (state: the app and which route it guards).
pub async fn require(
    State((state, route)): State<(Arc<AppState>, Guarded)>,
    request: Request,
    next: Next,
) -> Response {
    match state.access.authorize(route, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn key(text: &str) -> ApiKey {
        text.parse().unwrap()
    }

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn each_route_takes_its_own_keys_and_open_routes_take_anything() {
        let policy = AccessPolicy::new(&[key("a1"), key("a2")], &[key("e1")], false);
        let ok = |route, value: &str| policy.authorize(route, &with_auth(value)).is_ok();
        assert!(ok(Guarded::Answer, "Bearer a2"));
        assert!(ok(Guarded::Answer, "bearer  a1 "));
        assert!(!ok(Guarded::Answer, "Bearer e1"));
        assert!(!ok(Guarded::Answer, "Basic a1"));
        assert!(!ok(Guarded::Answer, "Bearer a"));
        assert!(ok(Guarded::Evaluate, "Bearer e1"));
        assert!(!ok(Guarded::Evaluate, "Bearer a1"));
        assert!(policy
            .authorize(Guarded::Metrics, &HeaderMap::new())
            .is_ok());
        let missing = policy
            .authorize(Guarded::Answer, &HeaderMap::new())
            .unwrap_err();
        assert_eq!(missing.error_type(), "unauthorized");

        let shared = AccessPolicy::new(&[key("a1")], &[], true);
        assert!(shared
            .authorize(Guarded::Evaluate, &with_auth("Bearer a1"))
            .is_ok());
        assert!(shared
            .authorize(Guarded::Metrics, &HeaderMap::new())
            .is_err());
        let open = AccessPolicy::default();
        assert!(open.authorize(Guarded::Answer, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn keys_are_visible_ascii_and_hidden_in_debug_output() {
        assert!("".parse::<ApiKey>().is_err());
        assert!("two words".parse::<ApiKey>().is_err());
        assert_eq!(format!("{:?}", key("s3cret")), "ApiKey(***)");
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
