//! Live state: what the reconciler has put in force, read lock-free by the API (the MCP
//! supervisor's per-server state sits behind short locks of its own).
//!
//! The reconciler (and only it) publishes here; request handlers only load. Each field is
//! swapped as a whole, so a reader sees one consistent version of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::auth::TokenTable;
use crate::manifest::kinds::ConfigSpec;
use crate::manifest::Digest;
use crate::mcp::Supervisor;
use crate::reconcile::status::Summary;

/// The Config in force.
#[derive(Debug, Clone, Default)]
pub struct ActiveConfig {
    pub spec: ConfigSpec,
    /// Digest of the applied Config resource (the API's ETag); `None` for built-in defaults.
    pub digest: Option<Digest>,
}

/// State shared between the reconciler (writer) and the API (reader).
pub struct Live {
    pub config: ArcSwap<ActiveConfig>,
    pub tokens: TokenTable,
    pub summary: ArcSwap<Summary>,
    pub started: Instant,
    /// The manifests root (relative `fromFile` secrets resolve against it).
    pub manifests: PathBuf,
    /// The data dir (stored secrets, task workspaces).
    pub data: PathBuf,
    /// Counts finished reconcile passes; subscribe to wait for convergence without polling.
    pub passes: tokio::sync::watch::Sender<u64>,
    /// Signalled after events are written to the outbox, so delivery starts without polling.
    pub outbox: tokio::sync::Notify,
    /// Signalled when a Schedule is applied or deleted, so the schedule runner looks again.
    pub schedules: tokio::sync::Notify,
    /// Reconcile requests handled, including those that found nothing changed.
    pub reconcile_requests: std::sync::atomic::AtomicU64,
    /// Counters and latencies for `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The MCP servers in force: the McpServer handler drives it, the API and tasks read it.
    pub mcp: Arc<Supervisor>,
    /// Pull mode: why the last fetch failed (`None` once one succeeds); every pass lists it
    /// among the status errors.
    pub pull_error: arc_swap::ArcSwapOption<String>,
    /// Declared resources and their statuses, as the reconciler last recorded them.
    pub resources: crate::reconcile::reflector::Reflector,
    /// This process among the replicas (on SQLite: alone, and the leader).
    pub cluster: Arc<crate::cluster::Cluster>,
}

impl Live {
    /// Fresh live state with built-in defaults and no tokens.
    pub fn new(manifests: PathBuf, data: PathBuf) -> Arc<Live> {
        Arc::new(Live {
            config: ArcSwap::from_pointee(ActiveConfig::default()),
            tokens: TokenTable::default(),
            summary: ArcSwap::from_pointee(Summary::default()),
            started: Instant::now(),
            manifests,
            data,
            passes: tokio::sync::watch::Sender::new(0),
            outbox: tokio::sync::Notify::new(),
            schedules: tokio::sync::Notify::new(),
            reconcile_requests: std::sync::atomic::AtomicU64::new(0),
            metrics: crate::metrics::Metrics::default(),
            mcp: Arc::new(Supervisor::default()),
            pull_error: arc_swap::ArcSwapOption::empty(),
            resources: Default::default(),
            cluster: crate::cluster::Cluster::single(),
        })
    }

    /// Where secret references are resolved.
    pub fn secrets(&self) -> crate::manifest::secret::SecretContext {
        crate::manifest::secret::SecretContext {
            base_dir: self.manifests.clone(),
            data_dir: self.data.clone(),
        }
    }

    /// Waits until a finished pass leaves `done` true (checked at once, then after each pass).
    pub async fn wait_for(&self, mut done: impl FnMut(&Live) -> bool) {
        let mut passes = self.passes.subscribe();
        while !done(self) {
            if passes.changed().await.is_err() {
                return;
            }
        }
    }
}
