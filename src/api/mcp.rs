//! MCP servers: `GET /mcp-servers`, `GET /mcp-servers/:name`, `GET /mcp-servers/:name/tools`.
//!
//! Read-only views joining the declared McpServer resources (and their resource status) with
//! the supervisor's live state. Servers are declared and changed through their manifests
//! (or the generic resources API), like every other kind.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::resources::{query, Page};
use super::AppState;
use crate::manifest::kinds::McpTransport;
use crate::manifest::{Kind, Resource, Spec};
use crate::mcp::ServerStatus;
use crate::reconcile::status::ResourceStatus;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/mcp-servers", get(list))
        .route("/api/v1/mcp-servers/{name}", get(show))
        .route("/api/v1/mcp-servers/{name}/tools", get(tools))
}

/// The status object of one server, as `/status` and this module show it. A declared server
/// the supervisor does not run (not applied yet, or its secrets cannot be resolved) is
/// `failed` when its resource says why, `starting` otherwise.
pub fn server_json(status: &ServerStatus) -> Value {
    json!({
        "name": status.name,
        "transport": status.transport,
        "status": status.status,
        "tools": status.tools,
        "last_error": status.last_error,
        "since": status.since,
        "restarts": status.restarts,
    })
}

fn item(state: &AppState, r: &Resource, status: Option<&ResourceStatus>) -> Value {
    let Spec::McpServer(spec) = &r.spec else {
        return Value::Null;
    };
    let transport = match &spec.transport {
        McpTransport::Stdio(_) => "stdio",
        McpTransport::Http(_) => "http",
    };
    let mut out = match state.live.mcp.status(r.name()) {
        Some(s) => server_json(&s),
        None => json!({
            "name": r.name(),
            "transport": transport,
            "status": if status.is_some_and(|s| !s.ready) { "failed" } else { "starting" },
            "tools": 0,
            "last_error": status.filter(|s| !s.ready).map(|s| s.message.clone()),
            "since": Value::Null,
            "restarts": 0,
        }),
    };
    out["description"] = json!(spec.description);
    out["enabled"] = json!(spec.enabled);
    out["resource"] = json!(
        status.map(|s| json!({ "ready": s.ready, "reason": s.reason, "message": s.message }))
    );
    out["file"] = json!(r.origin.file.display().to_string());
    out
}

async fn list(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let page = query(page)?.checked()?;
    let (shown, total) = super::resources::declared_page(&state, Kind::McpServer, &page).await?;
    let items = shown
        .iter()
        .map(|(r, s)| item(&state, r, s.as_ref()))
        .collect();
    Ok(super::resources::list_body(items, total, &page))
}

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (r, status) = super::resources::find_declared(&state, Kind::McpServer, &name).await?;
    Ok(Json(item(&state, &r, status.as_ref())))
}

async fn tools(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (r, status) = super::resources::find_declared(&state, Kind::McpServer, &name).await?;
    let server = item(&state, &r, status.as_ref());
    let tools = state.live.mcp.tools(&name).unwrap_or_default();
    Ok(Json(json!({
        "server": name,
        "status": server["status"],
        "items": *tools,
        "total": tools.len(),
    })))
}
