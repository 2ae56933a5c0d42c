//! `GET /api/v1/whoami`: the calling token's name, scope and expiry, so that a client (the
//! dashboard) offers only what the token may do. Any valid token may ask (read scope).

use axum::{Extension, Json};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}

/// The calling token.
#[derive(Serialize, ToSchema)]
pub struct Whoami {
    /// The Token's name.
    pub name: String,
    /// `read`, `execute` or `full`.
    pub scope: &'static str,
    /// RFC 3339; null when it never expires.
    pub expires_at: Option<String>,
}

/// The calling token
///
/// Its name, scope and expiry.
#[utoipa::path(get, path = "/api/v1/whoami", operation_id = "whoami", tag = "system",
    responses((status = 200, description = "The token", body = Whoami)))]
async fn whoami(Extension(Caller(caller)): Extension<Caller>) -> Json<Whoami> {
    let expires_at = caller
        .expires_at
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    Json(Whoami {
        name: caller.name.to_string(),
        scope: caller.scope.as_str(),
        expires_at,
    })
}
