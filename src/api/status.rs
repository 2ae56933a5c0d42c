//! `GET /api/v1/status`: health, version, uptime, MCP servers, reconciler state, task counts,
//! replicas.
//!
//! A hot endpoint (dashboards poll it): the reconciler section is rendered once per reconcile
//! pass, so a request only formats a few numbers around it.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::collections::BTreeMap;

use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::mcp::ServerStatus;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

// The handler writes its body by hand (see the module doc); these types describe it for the
// OpenAPI document, and the status tests and the conformance run check the two agree.

/// `GET /status`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Status {
    /// `starting` until the first reconcile ends, then `ok`, or `degraded` while any
    /// manifest, rule or apply error is in force.
    #[schema(pattern = "^(starting|ok|degraded)$")]
    status: String,
    #[schema(example = "0.1.0")]
    version: String,
    uptime_seconds: u64,
    mcp_servers: Vec<ServerStatus>,
    reconciler: Reconciler,
    /// Tasks per status.
    tasks: BTreeMap<String, u64>,
    /// The replicas serving this deployment (one on SQLite), oldest first.
    replicas: Vec<Replica>,
}

/// One `claw serve` process of the deployment.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Replica {
    /// Its id (the `replica` of the tasks it runs).
    id: String,
    /// The address it listens on.
    address: String,
    #[schema(example = "0.1.0")]
    version: String,
    /// True for exactly one: the replica holding the single duties (outbox fan-out, pruning,
    /// leases).
    leader: bool,
    /// RFC 3339: its last heartbeat.
    last_seen: String,
}

/// The reconciler's state.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Reconciler {
    /// True once the first full reconcile has finished.
    initialised: Option<bool>,
    /// RFC 3339.
    last_run_at: Option<String>,
    last_duration_ms: Option<u64>,
    /// Manifests revision last reconciled (git commit, `-dirty` when edited, or `sha256:` digest).
    revision: Option<String>,
    /// Manifest files.
    files: Option<u64>,
    /// Per kind: `{total, ready}`.
    resources: Option<BTreeMap<String, KindCount>>,
    /// Deletes held back by the prune guard.
    prune_blocked: Option<u64>,
    errors_total: Option<u64>,
    /// The first 100 problems, each with its file, line, column, JSON pointer and message.
    errors: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
}

/// Resources of one kind.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KindCount {
    total: u64,
    ready: u64,
}

/// System status
///
/// Health, version, uptime, MCP servers, reconciler state, task counts and replicas.
#[utoipa::path(get, path = "/api/v1/status", operation_id = "status", tag = "system",
    responses((status = 200, description = "The server's status", body = Status)))]
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
        "{{\"status\":\"{health}\",\"version\":\"{}\",\"uptime_seconds\":{},\"mcp_servers\":{mcp},\"reconciler\":{reconciler},\"tasks\":{},\"replicas\":{}}}",
        env!("CARGO_PKG_VERSION"),
        state.live.started.elapsed().as_secs(),
        crate::tasks::service::render_counts(state.tasks.deployment_counts().await),
        state.live.cluster.rendered(),
    );
    ([(header::CONTENT_TYPE, "application/json")], body)
}
