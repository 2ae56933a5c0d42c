//! The contract between the reconciler and the code that makes one kind real.
//!
//! A handler has a fast part and, for kinds that need one, a slow part:
//!
//! - `apply` and `delete` run inside the pass's database transaction. They record and stage
//!   (rows, the token table, the Config); they never touch the network, start processes or
//!   read big files, because every API write and every token revocation waits for them.
//!   Staged runtime changes become visible in `publish` once the transaction has committed
//!   (`discard` drops them when it did not).
//! - `work` is the slow part (a skill download and install, an MCP server's start-up, a
//!   resync that hashes installed files). The reconciler runs it in the keyed
//!   [`scheduler`](super::scheduler) outside any transaction, never twice at once for one
//!   resource; meanwhile the resource is not Ready, reason `Progressing`. A job must stop soon
//!   after its cancel token fires, and must not make a change visible once it has been
//!   cancelled (the resource's spec changed: the newer job runs next). Whatever it writes to
//!   the store it writes in its own short transaction, after the slow part.
//!
//! Adding a kind's behaviour means one new file in `handlers/` and one line in
//! [`super::handlers::all`].

use std::sync::Arc;

use crate::store::Tx;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::scheduler::JobFuture;
use crate::manifest::{Kind, Resource};

/// The reason a resource shows while its slow work runs.
pub const PROGRESSING: &str = "Progressing";

/// A successful apply: the resource is Ready with this reason and message (or, with reason
/// [`PROGRESSING`], not Ready yet: its slow work follows).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub reason: &'static str,
    pub message: String,
}

impl Outcome {
    /// The common case: applied as declared.
    pub fn applied(message: impl Into<String>) -> Outcome {
        Outcome {
            reason: "Applied",
            message: message.into(),
        }
    }

    /// Recorded; the slow part (`Handler::work`) follows.
    pub fn progressing(message: impl Into<String>) -> Outcome {
        Outcome {
            reason: PROGRESSING,
            message: message.into(),
        }
    }

    /// Whether the resource is Ready with this outcome.
    pub fn ready(&self) -> bool {
        self.reason != PROGRESSING
    }
}

/// A failed apply or delete: the resource is not Ready, with this reason and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct ApplyError {
    pub reason: &'static str,
    pub message: String,
}

impl ApplyError {
    /// An error with a reason and message.
    pub fn new(reason: &'static str, message: impl Into<String>) -> ApplyError {
        ApplyError {
            reason,
            message: message.into(),
        }
    }
}

impl From<crate::store::StoreError> for ApplyError {
    fn from(e: crate::store::StoreError) -> Self {
        ApplyError::new("StoreError", e.to_string())
    }
}

/// Why slow work is asked for.
#[derive(Debug, Clone)]
pub enum Job {
    /// The resource was created or changed (its `apply` answered `Progressing`), or its last
    /// work failed and is retried.
    Apply(Arc<Resource>),
    /// A full pass: the resource is applied and unchanged; repair drift if there is any.
    Resync(Arc<Resource>),
    /// The resource named so was deleted.
    Delete(String),
}

/// What slow work ends with: for `Apply`, the outcome to show; for `Resync`, `Some` when
/// something was repaired (or the status must change), `None` when all was well.
pub type WorkResult = Result<Option<Outcome>, ApplyError>;

/// Converges the runtime for one kind.
#[async_trait]
pub trait Handler: Send + Sync {
    /// The kind this handler owns.
    fn kind(&self) -> Kind;

    /// Fast part: records `resource` (created or changed) in the transaction.
    async fn apply(&self, tx: &mut Tx, resource: &Resource) -> Result<Outcome, ApplyError>;

    /// Fast part for several resources of this kind (start-up and resyncs apply thousands):
    /// one result per resource, in order. By default one `apply` each; a kind with many
    /// resources batches its rows.
    async fn apply_many(
        &self,
        tx: &mut Tx,
        resources: &[&Resource],
    ) -> Vec<Result<Outcome, ApplyError>> {
        let mut out = Vec::with_capacity(resources.len());
        for r in resources {
            out.push(self.apply(tx, r).await);
        }
        out
    }

    /// Fast part: removes the rows the resource named `name` put in place.
    async fn delete(&self, tx: &mut Tx, name: &str) -> Result<(), ApplyError>;

    /// True when this kind has a slow part ([`Handler::work`]).
    fn has_work(&self) -> bool {
        false
    }

    /// Slow part, if this kind has one for `job` (see the module doc).
    fn work(
        self: Arc<Self>,
        _job: Job,
        _cancel: CancellationToken,
    ) -> Option<JobFuture<WorkResult>> {
        None
    }

    /// Makes staged changes visible; called after the transaction committed.
    fn publish(&self) {}

    /// Drops staged changes; called when the transaction failed.
    fn discard(&self) {}
}
