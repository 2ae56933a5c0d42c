//! Authentication, authorisation and rate limiting of every `/api/v1` request.
//!
//! Order: refuse tokens in the query string -> bearer token -> [`TokenTable`] (401 for a
//! missing, unknown, expired or revoked token) -> per-token rate limit (429) -> scope (403).
//! Every authenticated response carries `X-RateLimit-Limit/Remaining/Reset` (SPEC §4; the
//! OpenAPI document declares them required), as GitHub's API sends them on every authenticated
//! call whatever the budget. A token whose own `rate_limit` is `unlimited` is not counted; its
//! headers report [`UNLIMITED`] for the limit and the remainder, and now as the reset (its
//! budget is always full), so a client reading them never backs off. The token is hashed and
//! dropped; only the token's name is ever logged.
//!
//! [`TokenTable`]: crate::auth::TokenTable

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::auth::{token, AuthError, Scope, TokenEntry};

static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// `X-RateLimit-Limit` and `X-RateLimit-Remaining` of an `unlimited` token: the largest value
/// the headers carry for a limited one (`u32`), never reached.
pub const UNLIMITED: u32 = u32::MAX;

/// The caller of a request, for handlers (write-backs name the token in commits and logs).
#[derive(Clone)]
pub struct Caller(pub Arc<TokenEntry>);

impl Caller {
    /// The context of a write-back made by this caller through `call` (e.g. `PATCH /api/v1/config`).
    pub fn write_context(&self, call: impl Into<String>) -> crate::reconcile::WriteContext {
        crate::reconcile::WriteContext {
            call: call.into(),
            token: self.0.name.to_string(),
        }
    }
}

/// The scope a call needs: GETs need `read`; creating and cancelling tasks, starting a
/// schedule's task now, and every call of the OpenAI-compatible `/v1/...`, need `execute`;
/// everything else needs `full`.
pub fn required_scope(method: &Method, path: &str) -> Scope {
    // The OpenAI-compatible door runs tasks: execute, even to list its models.
    if super::openai::is_openai_path(path) {
        return Scope::Execute;
    }
    if method == Method::GET || method == Method::HEAD {
        return Scope::Read;
    }
    // Inside the nested `/api/v1` router the prefix is already stripped.
    let path = path.trim_end_matches('/');
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let is_task_call = path == "/tasks"
        || path
            .strip_prefix("/tasks/")
            .and_then(|rest| rest.strip_suffix("/cancel"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        || path
            .strip_prefix("/schedules/")
            .and_then(|rest| rest.strip_suffix("/run"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'));
    if method == Method::POST && is_task_call {
        Scope::Execute
    } else {
        Scope::Full
    }
}

/// `%XX` and `+` decoded (invalid escapes kept as they are), as a form parser would.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when the query string seems to carry a credential (plain or percent-encoded).
fn query_has_token(query: &str) -> bool {
    query.split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(key), percent_decode(value));
        let value = value.trim();
        let key = key.trim().to_ascii_lowercase();
        matches!(
            key.as_str(),
            "token"
                | "access_token"
                | "api_key"
                | "apikey"
                | "api_token"
                | "auth"
                | "bearer"
                | "key"
        ) || value.starts_with(token::PREFIX)
            || key.starts_with(token::PREFIX)
    })
}

/// The `/api/v1` middleware.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    authenticate_then(&state, req, |req| next.run(req)).await
}

/// [`authenticate`] in front of `inner` (a concrete future, so callers that fold several
/// steps into one layer box nothing more).
pub async fn authenticate_then<F, Fut>(state: &AppState, mut req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    if req.uri().query().is_some_and(query_has_token) {
        return ApiError::bad_request(
            "token_in_query",
            "tokens are not accepted in the URL (URLs end up in logs and browser history); send `Authorization: Bearer <token>`, and revoke the token if the URL was shared",
        )
        .into_response();
    }
    let Some(presented) = bearer(&req) else {
        return ApiError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>`",
        )
        .into_response();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let entry = match state.live.tokens.authenticate(presented, now) {
        Ok(entry) => entry,
        Err(AuthError::Invalid) => {
            return ApiError::unauthorized("invalid or revoked token").into_response()
        }
        Err(e @ AuthError::Expired(_)) => {
            return ApiError::unauthorized(e.to_string()).into_response()
        }
    };

    let decision = state.limiter.check_token(
        entry.hash(),
        entry.rate_limit.as_ref(),
        &state.live.config.load().spec.rate_limit,
    );
    let mut response = if let Some(retry_after) = decision.and_then(|d| d.retry_after) {
        ApiError::rate_limited(retry_after).into_response()
    } else {
        let needed = required_scope(req.method(), req.uri().path());
        if entry.scope.allows(needed) {
            entry.touch(now);
            req.extensions_mut().insert(Caller(entry.clone()));
            inner(req).await
        } else {
            ApiError::forbidden(format!(
                "token '{}' has scope {}; this call needs {}",
                entry.name,
                entry.scope.as_str(),
                needed.as_str()
            ))
            .into_response()
        }
    };
    // An `unlimited` token: a budget that is never used up and always full.
    let (limit, remaining, reset) = match decision {
        Some(d) => (d.limit, d.remaining, d.reset),
        None => (UNLIMITED, UNLIMITED, now.max(0) as u64),
    };
    let headers = response.headers_mut();
    headers.insert(LIMIT.clone(), HeaderValue::from(limit));
    headers.insert(REMAINING.clone(), HeaderValue::from(remaining));
    headers.insert(RESET.clone(), HeaderValue::from(reset));
    response
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_method_and_path() {
        assert_eq!(required_scope(&Method::GET, "/api/v1/config"), Scope::Read);
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/tasks"),
            Scope::Execute
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/tasks/task_1/cancel"),
            Scope::Execute
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/tasks/a/b/cancel"),
            Scope::Full
        );
        assert_eq!(
            required_scope(&Method::PATCH, "/api/v1/config"),
            Scope::Full
        );
        assert_eq!(
            required_scope(&Method::DELETE, "/api/v1/tasks/x"),
            Scope::Full
        );
        assert_eq!(required_scope(&Method::GET, "/v1/models"), Scope::Execute);
        assert_eq!(
            required_scope(&Method::POST, "/v1/chat/completions"),
            Scope::Execute
        );
    }

    #[test]
    fn credentials_in_the_query_are_recognised() {
        assert!(query_has_token("access_token=abc"));
        assert!(query_has_token("limit=1&x=ocl_abc"));
        assert!(query_has_token("TOKEN=1"));
        assert!(query_has_token("x=%6Fcl_abc"));
        assert!(query_has_token("%74oken=1"));
        assert!(query_has_token("x=+ocl_abc"));
        assert!(!query_has_token("limit=20&offset=0&status=completed"));
    }
}
