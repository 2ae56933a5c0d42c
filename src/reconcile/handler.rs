//! The contract between the reconciler and the code that makes one kind real.
//!
//! A handler converges the runtime for its kind: `apply` and `delete` run inside the
//! reconcile's database transaction and stage runtime changes; `publish` makes them visible
//! once the transaction has committed, `discard` drops them when it did not. Adding a kind's
//! behaviour means one new file in `handlers/` and one line in [`super::handlers::all`].

use async_trait::async_trait;
use sqlx::SqliteConnection;

use crate::manifest::{Kind, Resource};

/// A successful apply: the resource is Ready, with this reason and message.
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

/// Converges the runtime for one kind.
#[async_trait]
pub trait Handler: Send + Sync {
    /// The kind this handler owns.
    fn kind(&self) -> Kind;

    /// Makes the runtime match `resource` (created or changed).
    async fn apply(
        &self,
        tx: &mut SqliteConnection,
        resource: &Resource,
    ) -> Result<Outcome, ApplyError>;

    /// Removes what the resource named `name` put in place.
    async fn delete(&self, tx: &mut SqliteConnection, name: &str) -> Result<(), ApplyError>;

    /// Checks a resource that is applied and unchanged (called on full passes only) and repairs
    /// drift in the runtime, e.g. an installed skill's files edited by hand. `Ok(None)`: nothing
    /// to repair; `Ok(Some)`: repaired, the status shows the outcome until the next full pass.
    async fn resync(
        &self,
        _tx: &mut SqliteConnection,
        _resource: &Resource,
    ) -> Result<Option<Outcome>, ApplyError> {
        Ok(None)
    }

    /// Makes staged changes visible; called after the transaction committed.
    fn publish(&self) {}

    /// Drops staged changes; called when the transaction failed.
    fn discard(&self) {}
}
