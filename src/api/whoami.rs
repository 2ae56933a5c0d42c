//! `GET /api/v1/whoami`: the calling token's name, scope and expiry, so that a client (the
//! dashboard) offers only what the token may do. Any valid token may ask (read scope).

use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::auth::Caller;
use super::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/whoami", get(whoami))
}

async fn whoami(Extension(Caller(caller)): Extension<Caller>) -> Json<Value> {
    let expires_at = caller
        .expires_at
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    Json(json!({
        "name": &*caller.name,
        "scope": caller.scope.as_str(),
        "expires_at": expires_at,
    }))
}
