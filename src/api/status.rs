//! `GET /api/v1/status`: health, version, uptime, MCP servers, reconciler state, task counts,
//! replicas.
//!
//! A hot endpoint (dashboards poll it): the reconciler section is rendered once per reconcile
//! pass, and the whole body is kept ([`BodyCache`]) until something in it changes.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::body::Bytes;

use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::mcp::ServerStatus;
use crate::reconcile::status::Summary;

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
    let live = &state.live;
    let summary = live.summary.load_full();
    // Live per-server state, re-rendered only when a server changed.
    let mcp = live.mcp.rendered(|statuses| {
        serde_json::Value::Array(statuses.iter().map(super::mcp::server_json).collect()).to_string()
    });
    let inputs = Inputs {
        uptime_seconds: live.started.elapsed().as_secs(),
        tasks: state.tasks.deployment_counts().await.map(|(_, n)| n),
        summary,
        mcp,
        replicas: live.cluster.rendered(),
    };
    let body = state.status_body.get(inputs);
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// What a status body is made of; two equal ones make the same bytes.
struct Inputs {
    uptime_seconds: u64,
    tasks: [i64; 5],
    summary: Arc<Summary>,
    mcp: Arc<str>,
    replicas: Arc<String>,
}

impl Inputs {
    /// The same body: the same second of uptime, the same counts, and the very same rendered
    /// parts (each is replaced, never changed in place, when what it shows changes).
    fn same(&self, other: &Inputs) -> bool {
        self.uptime_seconds == other.uptime_seconds
            && self.tasks == other.tasks
            && Arc::ptr_eq(&self.summary, &other.summary)
            && Arc::ptr_eq(&self.mcp, &other.mcp)
            && Arc::ptr_eq(&self.replicas, &other.replicas)
    }

    fn render(&self) -> Bytes {
        let summary = &self.summary;
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
        let tasks = crate::tasks::service::render_counts(
            crate::tasks::TaskStatus::ALL.into_iter().zip(self.tasks),
        );
        Bytes::from(format!(
            "{{\"status\":\"{health}\",\"version\":\"{}\",\"uptime_seconds\":{},\"mcp_servers\":{},\"reconciler\":{reconciler},\"tasks\":{tasks},\"replicas\":{}}}",
            env!("CARGO_PKG_VERSION"),
            self.uptime_seconds,
            self.mcp,
            self.replicas,
        ))
    }
}

/// The last status body served and what it was made of. Dashboards poll `GET /status`, often
/// many times a second: while nothing it shows has changed (and within one second of uptime),
/// a request answers with the same bytes — no formatting, no allocation.
#[derive(Default)]
pub struct BodyCache(ArcSwapOption<(Inputs, Bytes)>);

impl BodyCache {
    fn get(&self, inputs: Inputs) -> Bytes {
        if let Some(cached) = self.0.load().as_ref() {
            if cached.0.same(&inputs) {
                return cached.1.clone();
            }
        }
        let body = inputs.render();
        self.0.store(Some(Arc::new((inputs, body.clone()))));
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(uptime_seconds: u64, queued: i64, summary: &Arc<Summary>) -> Inputs {
        Inputs {
            uptime_seconds,
            tasks: [queued, 0, 0, 0, 0],
            summary: summary.clone(),
            mcp: Arc::from("[]"),
            replicas: Arc::new("[]".to_owned()),
        }
    }

    #[test]
    fn the_body_is_reused_only_while_nothing_in_it_changed() {
        let cache = BodyCache::default();
        let summary = Arc::new(Summary::default());
        let first = cache.get(inputs(1, 0, &summary));
        let body: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(body["uptime_seconds"], 1);
        assert_eq!(body["tasks"]["queued"], 0);
        assert_eq!(body["status"], "starting");

        // Same inputs (the rendered parts are the very same): the same bytes, not a copy.
        let mut same = inputs(1, 0, &summary);
        let cached = cache.0.load_full().unwrap();
        same.mcp = cached.0.mcp.clone();
        same.replicas = cached.0.replicas.clone();
        assert_eq!(cache.get(same).as_ptr(), first.as_ptr());

        // A count, the uptime's second or a new summary: a new body.
        let counted = cache.get(inputs(1, 3, &summary));
        let body: serde_json::Value = serde_json::from_slice(&counted).unwrap();
        assert_eq!(body["tasks"]["queued"], 3);
        let later = cache.get(inputs(2, 3, &summary));
        let body: serde_json::Value = serde_json::from_slice(&later).unwrap();
        assert_eq!(body["uptime_seconds"], 2);
        let replaced = Arc::new(Summary {
            initialised: true,
            ..Summary::default()
        });
        let body: serde_json::Value =
            serde_json::from_slice(&cache.get(inputs(2, 3, &replaced))).unwrap();
        assert_eq!(body["status"], "ok");
    }
}
