//! The Config handler: puts the `default` Config in force for every reader (rate limits and
//! everything else read it per use, so a change applies to the very next request).

use std::sync::{Arc, Mutex};

use crate::store::Tx;
use async_trait::async_trait;

use crate::live::{ActiveConfig, Live};
use crate::manifest::kinds::ConfigSpec;
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::handler::{ApplyError, Handler, Outcome};

/// Publishes the Config.
pub struct ConfigHandler {
    live: Arc<Live>,
    staged: Mutex<Option<ActiveConfig>>,
}

impl ConfigHandler {
    /// A handler publishing into `live`.
    pub fn new(live: Arc<Live>) -> Self {
        ConfigHandler {
            live,
            staged: Mutex::new(None),
        }
    }

    /// The Config as of this pass: the one staged in the running transaction if any (handlers
    /// of later kinds see a Config changed in the same pass), else the one in force.
    pub fn current(&self) -> ConfigSpec {
        match &*self.staged.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(active) => active.spec.clone(),
            None => self.live.config.load().spec.clone(),
        }
    }
}

#[async_trait]
impl Handler for ConfigHandler {
    fn kind(&self) -> Kind {
        Kind::Config
    }

    async fn apply(&self, _: &mut Tx, r: &Resource) -> Result<Outcome, ApplyError> {
        let Spec::Config(spec) = &r.spec else {
            return Err(ApplyError::new("WrongKind", "not a Config"));
        };
        *self.staged.lock().unwrap_or_else(|e| e.into_inner()) = Some(ActiveConfig {
            spec: ConfigSpec::clone(spec),
            digest: Some(r.digest),
        });
        Ok(Outcome::applied("config in force"))
    }

    async fn delete(&self, _: &mut Tx, _: &str) -> Result<(), ApplyError> {
        // The planner never deletes the Config: without one, the last applied stays in force.
        Ok(())
    }

    fn publish(&self) {
        if let Some(active) = self.staged.lock().unwrap_or_else(|e| e.into_inner()).take() {
            self.live.config.store(Arc::new(active));
        }
    }

    fn discard(&self) {
        self.staged.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}
