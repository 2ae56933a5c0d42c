//! `GET /api/v1/status`: health, version, uptime, MCP servers, reconciler state, task counts.
//!
//! A hot endpoint (dashboards poll it): the reconciler section is rendered once per reconcile
//! pass, so a request only formats a few numbers around it.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/status", get(status))
}

async fn status(State(state): State<AppState>) -> impl IntoResponse {
    let summary = state.live.summary.load();
    let health = if !summary.initialised {
        "starting"
    } else if summary.healthy() {
        "ok"
    } else {
        "degraded"
    };
    let reconciler = if summary.rendered.is_empty() {
        "{}"
    } else {
        summary.rendered.as_str()
    };
    // Live per-server state, re-rendered only when a server changed.
    let mcp = state.live.mcp.rendered(|statuses| {
        serde_json::Value::Array(statuses.iter().map(super::mcp::server_json).collect()).to_string()
    });
    let body = format!(
        "{{\"status\":\"{health}\",\"version\":\"{}\",\"uptime_seconds\":{},\"mcp_servers\":{mcp},\"reconciler\":{reconciler},\"tasks\":{}}}",
        env!("CARGO_PKG_VERSION"),
        state.live.started.elapsed().as_secs(),
        state.tasks.counts().render(),
    );
    ([(header::CONTENT_TYPE, "application/json")], body)
}
