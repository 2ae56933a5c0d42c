//! The reconciler: desired state (manifests) vs actual state (store and runtime) -> plan ->
//! apply, level-triggered and idempotent, one resource at a time, as in kube-runtime.
//!
//! One task ([`controller`]) owns the desired state and is the only writer of manifests and
//! of the state the API reads; everything else talks to it through a [`Controller`] handle:
//! the watcher sends "these paths may have changed", the API sends writes, the resync timer
//! asks for a full pass. Its requests are handled one at a time and are fast (two writes never
//! interleave; the watcher's echo of our own write finds the file unchanged and does nothing).
//! Slow work (downloads, process start-ups) runs beside it in the keyed [`scheduler`]; its
//! results come back to the loop, which alone publishes them.
//!
//! A pass, step by step: [`read`] the changed files -> [`index`] the names they declare ->
//! [`plan`] those names -> [`apply`] the steps in one short transaction -> [`record`] statuses
//! and the summary into the [`reflector`] and live state -> hand slow work to the scheduler.

pub mod apply;
pub mod controller;
pub mod handler;
pub mod handlers;
pub mod index;
pub mod plan;
pub mod read;
pub mod record;
pub mod reflector;
pub mod revision;
pub mod scheduler;
pub mod status;
pub(crate) mod work;

use std::collections::BTreeSet;
use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

pub use controller::{Report, WriteOutcome};

use crate::manifest::write::{Edit, WriteError};
use crate::manifest::{Digest, Kind};

/// What a reconcile pass looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every file (start-up, resync, watcher overflow).
    Full,
    /// These files, and everything below these directories (relative to the root).
    Paths {
        files: BTreeSet<PathBuf>,
        dirs: BTreeSet<PathBuf>,
    },
}

impl Scope {
    /// One file.
    pub fn file(path: impl Into<PathBuf>) -> Scope {
        Scope::Paths {
            files: BTreeSet::from([path.into()]),
            dirs: BTreeSet::new(),
        }
    }
}

pub(crate) enum Request {
    Reconcile {
        scope: Scope,
        reply: Option<oneshot::Sender<Report>>,
        /// Reply only once the slow work this pass started has ended.
        wait: bool,
    },
    Write {
        edit: Edit,
        expected: Option<Digest>,
        context: WriteContext,
        reply: oneshot::Sender<Result<WriteOutcome, WriteError>>,
    },
    ConfirmPrune {
        reply: oneshot::Sender<Report>,
    },
    /// When this replica leads and has not yet written the shared rows, writes them now.
    TakeOver {
        reply: oneshot::Sender<()>,
    },
    /// Slow work of `key` failed; try it again if the spec is still `generation`.
    Retry {
        key: index::Key,
        generation: Digest,
    },
}

/// The controller has stopped (the server is shutting down).
/// Who asked for a write-back and how: named in its git commit (`git.auto_commit`).
#[derive(Debug, Clone)]
pub struct WriteContext {
    /// The API call, e.g. `PATCH /api/v1/config`.
    pub call: String,
    /// The name of the token that made it.
    pub token: String,
}

impl WriteContext {
    /// The commit message: the call, then a `Claw-Token` trailer.
    pub fn commit_message(&self) -> String {
        format!("{}\n\nClaw-Token: {}\n", self.call, self.token)
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the reconciler has stopped")]
pub struct Stopped;

/// A handle on the reconciler task; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    tx: mpsc::UnboundedSender<Request>,
    /// For a follower's write-back, which waits for the leader's rows.
    store: crate::store::Store,
    live: std::sync::Arc<crate::live::Live>,
}

/// With replicas, how long a write-back on a replica that does not lead waits, at most, for
/// the leader to write the shared row (it fetches the pushed revision, then applies it).
pub const LEADER_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often that wait looks at the row again without the leader's notice (one may be lost).
const LEADER_WRITE_RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

impl Controller {
    /// Asks for a reconcile without waiting for it (the watcher and timers use this).
    pub fn trigger(&self, scope: Scope) {
        let _ = self.tx.send(Request::Reconcile {
            scope,
            reply: None,
            wait: false,
        });
    }

    /// Reconciles and waits for the result, including the slow work the pass started
    /// (downloads, start-ups): `POST /api/v1/reconcile` and tests use this.
    pub async fn reconcile(&self, scope: Scope) -> Result<Report, Stopped> {
        self.reconcile_with(scope, true).await
    }

    /// Reconciles and waits for the fast part only: tokens, Config and webhooks are in force
    /// when this returns; slow work goes on (start-up and pull mode use this).
    pub async fn reconcile_fast(&self, scope: Scope) -> Result<Report, Stopped> {
        self.reconcile_with(scope, false).await
    }

    async fn reconcile_with(&self, scope: Scope, wait: bool) -> Result<Report, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Reconcile {
                scope,
                reply: Some(reply),
                wait,
            })
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Writes an edit back to the manifests and reconciles it; in force when this returns.
    pub async fn write(
        &self,
        edit: Edit,
        expected: Option<Digest>,
        context: WriteContext,
    ) -> Result<WriteOutcome, WriteError> {
        let (kind, name) = {
            let (kind, name) = edit.target();
            (kind, name.to_owned())
        };
        let (reply, rx) = oneshot::channel();
        let stopped = || WriteError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(Stopped),
        };
        self.tx
            .send(Request::Write {
                edit,
                expected,
                context,
                reply,
            })
            .map_err(|_| stopped())?;
        let outcome = rx.await.map_err(|_| stopped())??;
        let failed = outcome
            .report
            .failed
            .iter()
            .any(|f| f.step.kind == kind && *f.step.name == *name);
        if !failed {
            self.leader_has_written(kind, &name, outcome.digest).await;
        }
        Ok(outcome)
    }

    /// With replicas, on a replica that does not lead while another does: waits (at most
    /// [`LEADER_WRITE_WAIT`]) until the shared `resources` row of `kind`/`name` is what this
    /// write-back left (`digest`; none once deleted). The rows are the leader's to write,
    /// once it has fetched the pushed revision: without the wait, a read of them right after
    /// the write (`POST /schedules/:name/run`, a webhook's `created_at`) would not find it yet.
    async fn leader_has_written(&self, kind: Kind, name: &str, digest: Option<Digest>) {
        let cluster = &self.live.cluster;
        if !cluster.is_clustered() || cluster.is_leader() || !cluster.is_led() {
            return;
        }
        // Subscribed before the first look, so an `applied` notice after it is not missed.
        let Some(mut notices) = cluster.subscribe() else {
            return;
        };
        let want = digest.map(hex::encode);
        let deadline = tokio::time::Instant::now() + LEADER_WRITE_WAIT;
        loop {
            match crate::store::resources::digest_of(&self.store, kind, name).await {
                Ok(found) if found == want => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%kind, name, "cannot read the leader's row after a write-back: {e}");
                    return;
                }
            }
            let applied = async {
                loop {
                    match notices.recv().await {
                        Ok(crate::cluster::Notice::Applied { .. }) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    }
                }
            };
            let waited = tokio::time::timeout(LEADER_WRITE_RECHECK, applied);
            if tokio::time::timeout_at(deadline, waited).await.is_err() {
                tracing::warn!(
                    %kind,
                    name,
                    "the leader has not written the row of a write-back made here within {} s; reads of it may lag",
                    LEADER_WRITE_WAIT.as_secs()
                );
                return;
            }
        }
    }

    /// With replicas, once joined: if this replica leads, returns when the shared rows hold its
    /// picture (start-up waits for it before serving, so the first requests find them).
    pub async fn take_over(&self) -> Result<(), Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::TakeOver { reply })
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Confirms the prune guard once: the next pass may delete what vanished with the manifests.
    pub async fn confirm_prune(&self) -> Result<Report, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::ConfirmPrune { reply })
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}
