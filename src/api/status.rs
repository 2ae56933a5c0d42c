//! `GET /api/v1/status`: health, version, uptime, MCP servers, reconciler state, task counts.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

/// Errors listed in full in the status; the rest are counted (`errors_total`).
const MAX_ERRORS: usize = 100;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/status", get(status))
}

async fn status(State(state): State<AppState>) -> Json<Value> {
    let summary = state.live.summary.load();
    let errors: Vec<Value> = summary
        .errors
        .iter()
        .take(MAX_ERRORS)
        .map(|d| {
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["text"] = d.display_in(std::path::Path::new("")).to_string().into();
            v
        })
        .collect();
    Json(json!({
        "status": if !summary.initialised { "starting" } else if summary.healthy() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.live.started.elapsed().as_secs(),
        "mcp_servers": [],
        "reconciler": {
            "initialised": summary.initialised,
            "last_run_at": summary.last_run_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "last_duration_ms": summary.last_duration_ms,
            "revision": summary.revision,
            "files": summary.files,
            "resources": summary.resources,
            "prune_blocked": summary.prune_blocked,
            "errors_total": summary.errors.len(),
            "errors": errors,
        },
        "tasks": state.tasks.counts().to_json(),
    }))
}
