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
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::{auth, AppState};

const SIGNATURE: &str = "x-hub-signature-256";

/// The route; `api::router` puts [`authenticate_unless_signed`] in front of it.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(git_hook))
}

/// The hook's answer.
#[derive(Serialize, ToSchema)]
pub struct HookAccepted {
    /// Always `accepted`.
    pub status: &'static str,
    /// `X-GitHub-Event` (`push` when absent).
    pub event: String,
}

/// GitHub-style headers.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct HookHeaders {
    /// `sha256=<hex HMAC-SHA256 of the body>` keyed with the git webhook secret; replaces the
    /// bearer token.
    #[param(rename = "X-Hub-Signature-256")]
    x_hub_signature_256: Option<String>,
    /// The GitHub event name (`push`, `ping`, ...).
    #[param(rename = "X-GitHub-Event")]
    x_github_event: Option<String>,
}

/// A signed request goes to the handler (which checks the signature); any other needs a token.
pub async fn authenticate_unless_signed(
    state: State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if req.headers().contains_key(SIGNATURE) {
        next.run(req).await
    } else {
        auth::authenticate(state, req, next).await
    }
}

/// Ask pull mode to fetch now
///
/// A push notification (GitHub-style, signed with `X-Hub-Signature-256`, or sent with a bearer
/// token): the puller fetches and reconciles. The body is not read beyond the signature check.
#[utoipa::path(post, path = "/api/v1/hooks/git", operation_id = "hooks_git", tag = "system",
    params(HookHeaders),
    request_body(content = Object, description = "Any body (a GitHub push payload); only signed, not read", content_type = "application/json"),
    responses(
        (status = 202, description = "Fetch requested", body = HookAccepted),
        (status = 404, description = "`not_found`: pull mode is off", body = ErrorBody),
    ))]
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
        Json(HookAccepted {
            status: "accepted",
            event,
        }),
    )
        .into_response())
}
