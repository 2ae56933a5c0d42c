//! The reconciler: desired state (manifests) vs actual state (store and runtime) -> plan ->
//! apply, level-triggered and idempotent.
//!
//! One task ([`controller`]) owns the desired state and is the only writer of manifests and
//! live state; everything else talks to it through a [`Controller`] handle: the watcher sends
//! "these paths may have changed", the API sends writes, the resync timer asks for a full pass.
//! Requests are handled one at a time, so two writes never interleave and the watcher's echo
//! of our own write finds the file unchanged and does nothing.

pub mod controller;
pub mod handler;
pub mod handlers;
pub mod plan;
pub mod status;
pub mod watcher;

use std::collections::BTreeSet;
use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

pub use controller::{Report, WriteOutcome};

use crate::manifest::write::{Edit, WriteError};
use crate::manifest::{Digest, Kind, Resource};
use status::ResourceStatus;

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
    Statuses {
        reply: oneshot::Sender<Vec<ResourceStatus>>,
    },
    Resources {
        kind: Kind,
        reply: oneshot::Sender<Vec<(Resource, Option<ResourceStatus>)>>,
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
}

impl Controller {
    /// Asks for a reconcile without waiting for it (the watcher and timers use this).
    pub fn trigger(&self, scope: Scope) {
        let _ = self.tx.send(Request::Reconcile { scope, reply: None });
    }

    /// Reconciles and waits for the result.
    pub async fn reconcile(&self, scope: Scope) -> Result<Report, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Reconcile {
                scope,
                reply: Some(reply),
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
        rx.await.map_err(|_| stopped())?
    }

    /// Confirms the prune guard once: the next pass may delete what vanished with the manifests.
    pub async fn confirm_prune(&self) -> Result<Report, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::ConfirmPrune { reply })
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// The declared resources of one kind (in force), with their statuses, by name.
    pub async fn resources(
        &self,
        kind: Kind,
    ) -> Result<Vec<(Resource, Option<ResourceStatus>)>, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Resources { kind, reply })
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// The status of every declared resource.
    pub async fn statuses(&self) -> Result<Vec<ResourceStatus>, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Statuses { reply })
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}
