//! MCP servers: `GET /mcp-servers`, `GET /mcp-servers/:name`, `GET /mcp-servers/:name/tools`.
//!
//! Read-only views joining the declared McpServer resources (and their resource status) with
//! the supervisor's live state. Servers are declared and changed through their manifests
//! (or the generic resources API), like every other kind.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::resources::{query, List, Page};
use super::webhooks::Condition;
use super::AppState;
use crate::manifest::kinds::McpTransport;
use crate::manifest::{Kind, Resource, Spec};
use crate::mcp::supervisor::{Phase, Tool};
use crate::mcp::ServerStatus;
use crate::reconcile::status::ResourceStatus;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(tools))
}

/// A declared MCP server with its live state.
#[derive(Serialize, ToSchema)]
pub struct McpServer {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    pub status: Phase,
    /// Tools listed at the last successful connection.
    pub tools: usize,
    pub last_error: Option<String>,
    /// When `status` last changed (RFC 3339; null before the first start).
    pub since: Option<String>,
    pub restarts: u64,
    pub description: Option<String>,
    pub enabled: bool,
    /// The resource's condition (null before its first reconcile).
    pub resource: Option<Condition>,
    /// The manifest file that declares it, relative to the manifests dir.
    pub file: String,
}

/// A server's tools.
#[derive(Serialize, ToSchema)]
pub struct McpTools {
    /// The server's name.
    pub server: String,
    pub status: Phase,
    pub items: Vec<Tool>,
    pub total: usize,
}

/// Server names in paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct ServerName {
    /// The McpServer's name.
    name: String,
}

/// The status object of one server, as `/status` shows it.
pub fn server_json(status: &ServerStatus) -> Value {
    serde_json::to_value(status).unwrap_or_default()
}

/// A declared server the supervisor does not run (not applied yet, or its secrets cannot be
/// resolved) is `failed` when its resource says why, `starting` otherwise.
fn item(
    state: &AppState,
    r: &Resource,
    status: Option<&ResourceStatus>,
) -> Result<McpServer, ApiError> {
    let Spec::McpServer(spec) = &r.spec else {
        return Err(ApiError::internal(format!(
            "resource {} is not an McpServer",
            r.name()
        )));
    };
    let transport = match &spec.transport {
        McpTransport::Stdio(_) => "stdio",
        McpTransport::Http(_) => "http",
    };
    let live = state
        .live
        .mcp
        .status(r.name())
        .unwrap_or_else(|| ServerStatus {
            name: r.name().to_owned(),
            transport,
            status: if status.is_some_and(|s| !s.ready) {
                Phase::Failed
            } else {
                Phase::Starting
            },
            tools: 0,
            last_error: status.filter(|s| !s.ready).map(|s| s.message.to_string()),
            since: String::new(),
            restarts: 0,
        });
    Ok(McpServer {
        name: live.name,
        transport: live.transport,
        status: live.status,
        tools: live.tools,
        last_error: live.last_error,
        since: Some(live.since).filter(|s| !s.is_empty()),
        restarts: live.restarts,
        description: spec.description.clone(),
        enabled: spec.enabled,
        resource: status.map(Condition::from),
        file: r.origin.file.display().to_string(),
    })
}

/// List MCP servers
///
/// Declared McpServers with their live state (status, tools, last error).
#[utoipa::path(get, path = "/api/v1/mcp-servers", operation_id = "mcp_servers_list", tag = "mcp",
    params(Page),
    responses(
        (status = 200, description = "One page of MCP servers", body = List<McpServer>,
            links(
                ("GetFirst" = (operation_id = "mcp_servers_get", parameters(("name" = "$response.body#/items/0/name")))),
                ("FirstTools" = (operation_id = "mcp_servers_tools", parameters(("name" = "$response.body#/items/0/name")))),
            )),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<List<McpServer>>, ApiError> {
    let page = query(page)?.checked()?;
    let (shown, total) = super::resources::declared_page(&state, Kind::McpServer, &page).await?;
    let items = shown
        .iter()
        .map(|(r, s)| item(&state, r, s.as_ref()))
        .collect::<Result<_, _>>()?;
    Ok(super::resources::list_body(items, total, &page))
}

/// Get an MCP server
#[utoipa::path(get, path = "/api/v1/mcp-servers/{name}", operation_id = "mcp_servers_get", tag = "mcp",
    params(ServerName),
    responses(
        (status = 200, description = "The server", body = McpServer),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<McpServer>, ApiError> {
    let (r, status) = super::resources::find_declared(&state, Kind::McpServer, &name).await?;
    Ok(Json(item(&state, &r, status.as_ref())?))
}

/// List an MCP server's tools
///
/// As listed at the last successful connection (offered to tasks as `<server>__<tool>`).
#[utoipa::path(get, path = "/api/v1/mcp-servers/{name}/tools", operation_id = "mcp_servers_tools", tag = "mcp",
    params(ServerName),
    responses(
        (status = 200, description = "The tools", body = McpTools),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn tools(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<McpTools>, ApiError> {
    let (r, status) = super::resources::find_declared(&state, Kind::McpServer, &name).await?;
    let server = item(&state, &r, status.as_ref())?;
    let tools = state.live.mcp.tools(&name).unwrap_or_default();
    Ok(Json(McpTools {
        server: name,
        status: server.status,
        total: tools.len(),
        items: tools.to_vec(),
    }))
}
