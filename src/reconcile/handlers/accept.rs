//! Kinds whose runtime behaviour has not been built yet: validated, recorded, reported Ready.

use crate::store::Tx;
use async_trait::async_trait;

use crate::manifest::{Kind, Resource};
use crate::reconcile::handler::{ApplyError, Handler, Outcome};

/// Accepts every valid resource of its kind without acting on it.
pub struct AcceptHandler(pub Kind);

#[async_trait]
impl Handler for AcceptHandler {
    fn kind(&self) -> Kind {
        self.0
    }

    async fn apply(&self, _: &mut Tx, _: &Resource) -> Result<Outcome, ApplyError> {
        Ok(Outcome {
            reason: "Accepted",
            message: format!(
                "validated and recorded; this server version does not act on {} resources yet",
                self.0
            ),
        })
    }

    async fn delete(&self, _: &mut Tx, _: &str) -> Result<(), ApplyError> {
        Ok(())
    }
}
