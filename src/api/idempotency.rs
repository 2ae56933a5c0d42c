//! `Idempotency-Key` on the POSTs that create something (SPEC §4), as Stripe does: the first
//! request with a key runs and its response is stored (table `idempotency_keys`,
//! `store/idempotency.rs`); a later request with the same key and the same method, path and
//! body gets that response again with `Idempotent-Replayed: true`, never a second creation;
//! the same key with another request is 422 `idempotency_key_reused`.
//!
//! - Keys are per token (the token's SHA-256 digest, never the token), and kept 24 h from the
//!   first request; expired ones are pruned (at most every 10 minutes, off the request path)
//!   and never honoured even before that.
//! - A key is 1 to 255 printable ASCII characters (Stripe's limit); anything else is 400
//!   `invalid_idempotency_key`.
//! - Concurrent requests with one key: the first `INSERT … ON CONFLICT DO NOTHING` reserves
//!   the key (one winner across connections and replicas); the others wait for its stored
//!   response (up to [`WAIT`]), then answer it as a replay, or 409
//!   `idempotency_key_in_progress` (with `Retry-After`) if it is still running.
//! - The first request runs in its own task, so a client that disconnects does not stop it
//!   half way: the creation and its stored response happen, and the retry gets them.
//! - What is stored: every answer below 500 except 408, 409, 425 and 429 (those say "try
//!   again": the key is released so the retry runs). A 5xx releases the key too. A
//!   reservation whose request never answered (a crashed process) is taken over after
//!   [`ABANDONED`].
//!
//! Applying it to a route: add the route's path to [`ROUTES`]. The layer sits on every bearer
//! route in `api::router` (inside authentication, so the caller's token is known) and acts
//! only on `POST`s whose matched path is listed; `api::openapi` documents the header, 409
//! and 422 on exactly those operations.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracing::Instrument;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::store::idempotency::{self as keys, Stored};
use crate::store::Store;
use crate::tasks::service::timestamp;

/// The request header.
pub static HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// The header a replayed response carries (`true`).
pub static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The routes whose `POST` honours the header (matched paths).
pub const ROUTES: &[&str] = &[
    "/api/v1/tasks",
    "/api/v1/webhooks",
    "/api/v1/skills",
    "/api/v1/schedules",
];

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// How long a key is kept.
pub const KEEP: time::Duration = time::Duration::hours(24);

/// How long a request waits for a concurrent first request with its key to answer.
pub const WAIT: Duration = Duration::from_secs(30);

/// A reservation older than this without a response belongs to a request that will never
/// answer (its process died): longer than any request may take (the request timeout).
pub const ABANDONED: time::Duration = time::Duration::minutes(10);

/// How often expired keys are pruned.
const PRUNE_EVERY_SECS: i64 = 600;

/// Largest response stored for replay (create answers are small JSON).
const MAX_STORED: usize = 1024 * 1024;

/// Response headers replayed with the body; the rate-limit headers and the request id are
/// the replaying request's own.
const KEPT_HEADERS: [header::HeaderName; 3] =
    [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// The middleware (see the module doc), in front of `next` (the route).
pub async fn layer<F, Fut>(state: &AppState, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    let listed = req.method() == Method::POST
        && req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| ROUTES.contains(&p.as_str()));
    let Some(value) = req.headers().get(&HEADER).filter(|_| listed) else {
        return next(req).await;
    };
    let key = match check_key(value) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let Some(Caller(caller)) = req.extensions().get::<Caller>().cloned() else {
        // Unreachable behind `auth::authenticate`; without a caller there is no key space.
        return next(req).await;
    };
    let token = hex::encode(caller.hash());
    let (parts, body) = req.into_parts();
    let body = match Bytes::from_request(Request::new(body), &()).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is too large",
            )
            .into_response()
        }
        Err(_) => {
            return ApiError::bad_request("invalid_body", "the request body could not be read")
                .into_response()
        }
    };
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let fingerprint = fingerprint(&parts.method, path, &body);
    let request = Request::from_parts(parts, Body::from(body));
    let first = Key {
        store: state.store.clone(),
        token,
        key,
        fingerprint,
    };
    first.run(request, next).await
}

/// A key of a token, with the fingerprint of the request that presents it.
struct Key {
    store: Store,
    token: String,
    key: String,
    fingerprint: String,
}

impl Key {
    /// Reserves the key and runs the request, or answers from the first request's response.
    async fn run<F, Fut>(self, request: Request, next: F) -> Response
    where
        F: FnOnce(Request) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Response> + Send + 'static,
    {
        let deadline = Instant::now() + WAIT;
        let mut pause = Duration::from_millis(10);
        loop {
            // Also bounds the rounds where the row vanished or expired between two reads.
            if Instant::now() > deadline {
                return in_progress();
            }
            let now = OffsetDateTime::now_utc();
            prune_if_due(&self.store, now);
            let created_at = timestamp(now);
            match keys::reserve(
                &self.store,
                &self.token,
                &self.key,
                &self.fingerprint,
                &created_at,
            )
            .await
            {
                Ok(true) => return self.first(created_at, request, next).await,
                Ok(false) => {}
                Err(e) => return ApiError::internal(e).into_response(),
            }
            let row = match keys::get(&self.store, &self.token, &self.key).await {
                // Released between the insert and this read: reserve again.
                Ok(None) => continue,
                Ok(Some(row)) => row,
                Err(e) => return ApiError::internal(e).into_response(),
            };
            let expired = row.created_at < timestamp(now - KEEP);
            let abandoned = row.status.is_none() && row.created_at < timestamp(now - ABANDONED);
            if expired || abandoned {
                if let Err(e) =
                    keys::release(&self.store, &self.token, &self.key, &row.created_at).await
                {
                    return ApiError::internal(e).into_response();
                }
                continue;
            }
            if row.fingerprint != self.fingerprint {
                return ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    format!(
                        "the Idempotency-Key was first used at {} with another request (method, path or body); a key names one request for 24 h: use a new key for a new request",
                        row.created_at
                    ),
                )
                .into_response();
            }
            if let Some(status) = row.status {
                return replay(status, row.headers.as_deref(), row.body.unwrap_or_default());
            }
            if Instant::now() + pause > deadline {
                return in_progress();
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Runs the request that reserved the key (in its own task: a client that goes away does
    /// not cut it short) and stores or releases its response.
    async fn first<F, Fut>(self, created_at: String, request: Request, next: F) -> Response
    where
        F: FnOnce(Request) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Response> + Send + 'static,
    {
        let store = self.store.clone();
        let (token, key) = (self.token.clone(), self.key.clone());
        // In the request's span, so what the handler logs still names the request.
        let work = tokio::spawn(
            async move {
                let response = next(request).await;
                self.finish(&created_at, response).await
            }
            .instrument(tracing::Span::current()),
        );
        match work.await {
            Ok(response) => response,
            Err(e) => {
                // The handler panicked; nothing was stored, and the key must not stay held.
                let created = keys::get(&store, &token, &key).await.ok().flatten();
                if let Some(row) = created.filter(|r| r.status.is_none()) {
                    let _ = keys::release(&store, &token, &key, &row.created_at).await;
                }
                ApiError::internal(format!("a request with an Idempotency-Key failed: {e}"))
                    .into_response()
            }
        }
    }

    async fn finish(&self, created_at: &str, response: Response) -> Response {
        let status = response.status();
        let keep = !(status.is_server_error() || matches!(status.as_u16(), 408 | 409 | 425 | 429));
        if !keep {
            self.release(created_at).await;
            return response;
        }
        let (parts, body) = response.into_parts();
        let body = match axum::body::to_bytes(body, MAX_STORED).await {
            Ok(body) => body,
            Err(e) => {
                self.release(created_at).await;
                return ApiError::internal(format!("cannot read a response to store it: {e}"))
                    .into_response();
            }
        };
        match std::str::from_utf8(&body) {
            Ok(text) => {
                let mut headers = Map::new();
                for name in KEPT_HEADERS {
                    if let Some(v) = parts.headers.get(&name).and_then(|v| v.to_str().ok()) {
                        headers.insert(name.as_str().to_owned(), v.into());
                    }
                }
                let headers = Value::Object(headers).to_string();
                let stored = Stored {
                    status: i64::from(parts.status.as_u16()),
                    headers: &headers,
                    body: text,
                };
                if let Err(e) =
                    keys::complete(&self.store, &self.token, &self.key, created_at, &stored).await
                {
                    // The creation happened; answer it. The key stays reserved until it is
                    // abandoned, so a retry waits and then runs again.
                    tracing::error!("cannot store the response of an Idempotency-Key: {e}");
                }
            }
            Err(_) => self.release(created_at).await,
        }
        Response::from_parts(parts, Body::from(body))
    }

    async fn release(&self, created_at: &str) {
        if let Err(e) = keys::release(&self.store, &self.token, &self.key, created_at).await {
            tracing::error!("cannot release an Idempotency-Key: {e}");
        }
    }
}

/// 409 `idempotency_key_in_progress`, retry after a second.
fn in_progress() -> Response {
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_in_progress",
        "a request with this Idempotency-Key is still being processed; retry after a moment with the same key to get its response",
    );
    e.retry_after = Some(1);
    e.into_response()
}

/// The key as given, if it is 1 to [`MAX_KEY_LEN`] printable ASCII characters.
fn check_key(value: &HeaderValue) -> Result<String, ApiError> {
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_LEN
        || !bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
    {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!(
                "the Idempotency-Key header must be 1 to {MAX_KEY_LEN} printable ASCII characters (a UUID is a good key)"
            ),
        ));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// SHA-256 (hex) of the request a key names.
fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(path.as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hex::encode(hash.finalize())
}

/// The stored first response, marked as a replay.
fn replay(status: i64, headers: Option<&str>, body: String) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    out.remove(header::CONTENT_TYPE);
    let headers: Map<String, Value> = headers
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    for (name, value) in headers {
        let (Ok(name), Some(Ok(value))) = (
            HeaderName::try_from(name),
            value.as_str().map(HeaderValue::from_str),
        ) else {
            continue;
        };
        out.insert(name, value);
    }
    out.insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    response
}

/// Deletes expired keys, at most every [`PRUNE_EVERY_SECS`] per process, in the background.
fn prune_if_due(store: &Store, now: OffsetDateTime) {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let secs = now.unix_timestamp();
    let last = LAST.load(Ordering::Relaxed);
    if secs - last < PRUNE_EVERY_SECS
        || LAST
            .compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let store = store.clone();
    let before = timestamp(now - KEEP);
    tokio::spawn(async move {
        match keys::prune(&store, &before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "expired idempotency keys pruned"),
            Err(e) => tracing::warn!("cannot prune expired idempotency keys: {e}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_up_to_255_bytes() {
        assert!(check_key(&HeaderValue::from_static("a")).is_ok());
        assert!(check_key(&HeaderValue::from_static("retry-7f3c 2026")).is_ok());
        assert!(check_key(&HeaderValue::from_str(&"k".repeat(255)).unwrap()).is_ok());
        assert!(check_key(&HeaderValue::from_str(&"k".repeat(256)).unwrap()).is_err());
        assert!(check_key(&HeaderValue::from_static("")).is_err());
        assert!(check_key(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()).is_err());
        assert!(check_key(&HeaderValue::from_bytes(b"a\tb").unwrap()).is_err());
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let a = fingerprint(&Method::POST, "/api/v1/tasks", b"{}");
        assert_eq!(a, fingerprint(&Method::POST, "/api/v1/tasks", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/api/v1/skills", b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, "/api/v1/tasks", b"{ }"));
        assert_ne!(a, fingerprint(&Method::PUT, "/api/v1/tasks", b"{}"));
    }
}
