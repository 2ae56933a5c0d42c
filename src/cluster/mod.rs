//! Replicas: several `claw serve` processes on one PostgreSQL database (SPEC §6), coordinated
//! only through PostgreSQL's own mechanisms. One idea per file:
//!
//! - `replicas.rs`: each replica's row in `replicas` (id, listen address, version, start,
//!   `last_seen`), refreshed by a heartbeat every [`HEARTBEAT`]; the list `GET /status` shows.
//! - `leader.rs`: one leader, elected with a session-level advisory lock
//!   (`pg_try_advisory_lock`) held on a dedicated connection; the others try again every
//!   [`ELECTION_RETRY`], so a dead holder (its session ends with its process) is replaced
//!   within a few seconds. Single duties run only on the leader: the outbox fan-out, retention
//!   pruning, the lease check below.
//! - `leases.rs`: a replica not seen for [`LEASE`] is dead; the leader fails its running
//!   tasks ("the replica running it stopped", with their `task.failed` events).
//! - `notify.rs`: `LISTEN/NOTIFY` — a cancel reaches the replica running the task, a task's
//!   progress reaches the replicas that follow it (SSE), a write-back's new revision makes
//!   every replica fetch at once.
//! - The shared resource rows are the leader's to write ([`Cluster::leadership`] tells the
//!   reconciler when it takes over, `reconcile/apply.rs`).
//! - `ratelimit.rs`: each replica publishes its per-token consumption every
//!   [`RATE_SYNC`] and charges the others' to its own limiter, so a token's budget is
//!   deployment-wide (ARCHITECTURE.md "Replicas").
//!
//! On SQLite there is one process: [`Cluster::single`] is the leader, nothing is published or
//! heard, and none of the loops run.

mod leader;
pub mod leases;
mod notify;
mod ratelimit;
mod replicas;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use leases::fail_previous_process_tasks;
pub use notify::Notice;

use crate::api::ratelimit::RateLimiter;
use crate::live::Live;

/// How often a replica refreshes its `last_seen`.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A replica not seen for this long is dead: its running tasks are failed.
pub const LEASE: Duration = Duration::from_secs(15);
/// How often a replica that does not lead tries to take the lock.
pub const ELECTION_RETRY: Duration = Duration::from_secs(2);
/// How often each replica publishes and reads rate-limit consumption.
pub const RATE_SYNC: Duration = Duration::from_millis(250);

/// Why a replica could not join the deployment.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("this process already goes by replica id {has}, not {wanted}")]
    Id { has: String, wanted: String },
    #[error("cannot join the replicas: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Notices buffered per subscriber; one that falls further behind misses some (logged).
const NOTICE_BUFFER: usize = 4096;

/// This process's place in the deployment.
pub struct Cluster {
    /// The store's replica id once joined (the `replica` its claimed tasks record).
    id: OnceLock<Arc<str>>,
    started_at: String,
    address: OnceLock<String>,
    leader: AtomicBool,
    /// The same, for those who act when it changes (the reconciler's hand-over).
    leads: watch::Sender<bool>,
    /// When this replica took the lead (stored with its heartbeat).
    leader_since: std::sync::Mutex<Option<String>>,
    pg: OnceLock<PgPool>,
    /// Notices from other replicas (and, on SQLite, from this one).
    /// (Made by [`Cluster::join`]: alone there is nothing to hear, and no buffer to hold.)
    notices: OnceLock<broadcast::Sender<Notice>>,
    /// Notices waiting to be sent, in order, by the publisher task.
    outgoing: OnceLock<mpsc::UnboundedSender<Notice>>,
    /// `GET /status`'s `replicas` array, rendered by the heartbeat.
    rendered: ArcSwap<String>,
    /// Some live replica leads, as the last heartbeat read the rows.
    led: AtomicBool,
    /// This replica wrote events the leader should fan out (`notify::outbox_signaller`).
    outbox_written: tokio::sync::Notify,
    /// This replica queued tasks it cannot start at once (`notify::queued_signaller`).
    tasks_queued: tokio::sync::Notify,
}

impl Cluster {
    /// The whole deployment in one process (SQLite, or before PostgreSQL is joined): it leads.
    pub fn single() -> Arc<Cluster> {
        let cluster = Cluster {
            id: OnceLock::new(),
            started_at: now(),
            address: OnceLock::new(),
            leader: AtomicBool::new(true),
            leads: watch::Sender::new(true),
            leader_since: std::sync::Mutex::new(None),
            pg: OnceLock::new(),
            notices: OnceLock::new(),
            outgoing: OnceLock::new(),
            rendered: ArcSwap::from_pointee(String::from("[]")),
            led: AtomicBool::new(true),
            outbox_written: tokio::sync::Notify::new(),
            tasks_queued: tokio::sync::Notify::new(),
        };
        cluster.render_single();
        Arc::new(cluster)
    }

    /// This replica's id (stored with the tasks it claims).
    pub fn id(&self) -> &str {
        self.id.get().map_or("local", |id| id)
    }

    /// True while this process holds the single duties.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Whether this process leads, and every change of it.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leads.subscribe()
    }

    /// On PostgreSQL, before anything else runs: other replicas may share the database, so
    /// this process does not lead until [`Cluster::join`] has taken the lock (its first
    /// reconcile writes no shared rows; the hand-over writes them once it leads).
    pub fn expect_peers(&self) {
        self.set_leader(false);
    }

    /// True when some replica leads (this one, or a live one in the rows the last heartbeat
    /// read): the shared rows are being written.
    pub fn is_led(&self) -> bool {
        self.is_leader() || self.led.load(Ordering::Acquire)
    }

    /// True when other replicas may share the database.
    pub fn is_clustered(&self) -> bool {
        self.pg.get().is_some()
    }

    /// The listen address others know this replica by (set once, when listening).
    pub fn set_address(&self, address: String) {
        let _ = self.address.set(address);
        if !self.is_clustered() {
            self.render_single();
        }
    }

    fn set_leader(&self, leads: bool) {
        let mut since = self.leader_since.lock().unwrap_or_else(|e| e.into_inner());
        *since = leads.then(now);
        self.leader.store(leads, Ordering::Release);
        self.leads
            .send_if_modified(|was| std::mem::replace(was, leads) != leads);
    }

    fn address(&self) -> &str {
        self.address.get().map_or("", String::as_str)
    }

    /// The `replicas` array of `GET /status` (JSON).
    pub fn rendered(&self) -> Arc<String> {
        self.rendered.load_full()
    }

    fn render_single(&self) {
        let one = serde_json::json!([{
            "id": self.id(),
            "address": self.address(),
            "version": env!("CARGO_PKG_VERSION"),
            "leader": true,
            "last_seen": now(),
        }]);
        self.rendered.store(Arc::new(one.to_string()));
    }

    /// Receives the notices of every replica (its own included); `None` alone.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Notice>> {
        self.notices.get().map(broadcast::Sender::subscribe)
    }

    /// Sends `notice` to every replica (this one included). Never blocks: notices are sent in
    /// order by a background task. Alone (SQLite) there is no one to tell: nothing happens.
    pub fn publish(&self, notice: Notice) {
        if let Some(outgoing) = self.outgoing.get() {
            let _ = outgoing.send(notice);
        }
    }

    /// On a replica that does not lead: it wrote events, which the leader fans out; the
    /// leader hears of it within [`notify::OUTBOX_SIGNAL_EVERY`]. Nothing happens alone.
    pub fn outbox_written(&self) {
        if self.is_clustered() && !self.is_leader() {
            self.outbox_written.notify_one();
        }
    }

    /// This replica queued a task it cannot start at once: the others hear it (a
    /// [`Notice::Queued`]) within [`notify::QUEUED_SIGNAL_EVERY`], once for all the tasks
    /// queued meanwhile. Nothing happens alone.
    pub fn tasks_queued(&self) {
        if self.is_clustered() {
            self.tasks_queued.notify_one();
        }
    }

    /// Joins the deployment on `pool`: registers this replica (first heartbeat done before
    /// this returns, so its claims are never orphans), then runs the heartbeat, the election,
    /// the lease check, the listener, the publisher and the rate-limit sync until `stop`.
    pub async fn join(
        self: &Arc<Self>,
        id: &str,
        pool: PgPool,
        live: Arc<Live>,
        limiter: Arc<RateLimiter>,
        stop: CancellationToken,
    ) -> Result<Vec<JoinHandle<()>>, JoinError> {
        if self.id.set(Arc::from(id)).is_err() {
            return Err(JoinError::Id {
                has: self.id().to_owned(),
                wanted: id.to_owned(),
            });
        }
        self.set_leader(false);
        if self.pg.set(pool.clone()).is_err() {
            return Ok(Vec::new()); // already joined
        }
        let session = leader::first(self, &pool).await;
        replicas::beat(self, &pool).await?;
        let _ = self.notices.set(broadcast::channel(NOTICE_BUFFER).0);
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.outgoing.set(tx);
        let listener =
            notify::listen(self.clone(), pool.clone(), live.clone(), stop.clone()).await?;
        Ok(vec![
            listener,
            tokio::spawn(notify::publisher(
                self.clone(),
                pool.clone(),
                rx,
                stop.clone(),
            )),
            tokio::spawn(notify::outbox_signaller(
                self.clone(),
                pool.clone(),
                stop.clone(),
            )),
            tokio::spawn(notify::queued_signaller(self.clone(), stop.clone())),
            tokio::spawn(replicas::heartbeat(
                self.clone(),
                pool.clone(),
                stop.clone(),
            )),
            tokio::spawn(leader::elect(
                self.clone(),
                pool.clone(),
                session,
                stop.clone(),
            )),
            tokio::spawn(leases::check(
                self.clone(),
                pool.clone(),
                live,
                stop.clone(),
            )),
            tokio::spawn(ratelimit::sync(self.clone(), pool, limiter, stop)),
        ])
    }
}

/// Now, in the stored timestamp form.
fn now() -> String {
    stamp(std::time::SystemTime::now())
}

/// `t` in the stored timestamp form.
fn stamp(t: std::time::SystemTime) -> String {
    crate::tasks::service::timestamp(time::OffsetDateTime::from(t))
}
