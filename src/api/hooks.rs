//! `POST /api/v1/hooks/git`: asks the pull-mode puller to fetch now.
//!
//! GitHub-style push notifications (and `ping`) are accepted when `X-Hub-Signature-256`
//! verifies against the configured secret; they carry no bearer token, so this route sits
//! outside the authenticated router and [`authenticate_unless_signed`] sends every request
//! without a signature through the normal authentication (POST: a full-scope token). The
//! notification's content is not trusted: it only rings the doorbell; the puller fetches.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::error::ApiError;
use super::{auth, AppState};

const SIGNATURE: &str = "x-hub-signature-256";

/// The route, with its own authentication.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/hooks/git", post(git_hook))
        .route_layer(middleware::from_fn_with_state(
            state,
            authenticate_unless_signed,
        ))
}

/// A signed request goes to the handler (which checks the signature); any other needs a token.
async fn authenticate_unless_signed(state: State<AppState>, req: Request, next: Next) -> Response {
    if req.headers().contains_key(SIGNATURE) {
        next.run(req).await
    } else {
        auth::authenticate(state, req, next).await
    }
}

async fn git_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(trigger) = &state.git_trigger else {
        return Err(ApiError::not_found(
            "pull mode is off: start `claw serve --git-url URL` to use the git hook",
        ));
    };
    if let Some(signature) = headers.get(SIGNATURE) {
        if !trigger.has_secret() {
            return Err(ApiError::unauthorized(
                "X-Hub-Signature-256 given but no git webhook secret is configured \
                 (--git-webhook-secret-file or CLAW_GIT_WEBHOOK_SECRET)",
            ));
        }
        let valid = signature
            .to_str()
            .is_ok_and(|value| trigger.verify(value, &body));
        if !valid {
            return Err(ApiError::unauthorized(
                "X-Hub-Signature-256 does not match the body and the configured git webhook secret",
            ));
        }
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("push")
        .to_owned();
    // A ping (sent when the hook is created) is answered the same way: a fetch is cheap.
    trigger.fire();
    tracing::info!(%event, "git hook: fetch requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "status": "accepted", "event": event })),
    )
        .into_response())
}
