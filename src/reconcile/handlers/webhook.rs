//! The Webhook handler: keeps the `webhook_endpoints` table equal to the Webhook manifests.
//! A secret reference that cannot be resolved makes that webhook not Ready (with the reason)
//! and leaves every other webhook alone; the delivery worker reads the table.

use std::sync::Arc;

use crate::store::Tx;
use async_trait::async_trait;

use crate::live::Live;
use crate::manifest::kinds::{SecretRef, WebhookSpec};
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::handler::{ApplyError, Handler, Outcome};
use crate::store;

/// Converges webhook endpoints.
pub struct WebhookHandler {
    live: Arc<Live>,
    /// For `{ref}` secrets sealed in the database (PostgreSQL) and the key that opens them.
    store: store::Store,
}

impl WebhookHandler {
    /// A handler resolving secrets against `live`'s dirs (and `store`'s sealed secrets).
    pub fn new(live: Arc<Live>, store: store::Store) -> Self {
        WebhookHandler { live, store }
    }
}

#[async_trait]
impl Handler for WebhookHandler {
    fn kind(&self) -> Kind {
        Kind::Webhook
    }

    async fn apply_many(
        &self,
        tx: &mut Tx,
        resources: &[&Resource],
    ) -> Vec<Result<Outcome, ApplyError>> {
        let mut out = Vec::with_capacity(resources.len());
        let mut rows = Vec::with_capacity(resources.len());
        for r in resources {
            let checked = self.check(tx, r).await;
            if let Ok((spec, events)) = &checked {
                rows.push(store::webhooks::NewEndpoint {
                    name: r.name(),
                    url: &spec.url,
                    events: serde_json::to_string(events).unwrap_or_default(),
                    secret_ref: serde_json::to_string(&spec.secret).unwrap_or_default(),
                    enabled: spec.enabled,
                });
            }
            out.push(checked.map(|(spec, events)| outcome(spec, &events)));
        }
        if let Err(e) = store::webhooks::upsert_many(tx, &rows, &now()).await {
            let e = ApplyError::from(e);
            for result in out.iter_mut().filter(|o| o.is_ok()) {
                *result = Err(e.clone());
            }
        }
        out
    }

    async fn apply(&self, tx: &mut Tx, r: &Resource) -> Result<Outcome, ApplyError> {
        let (spec, events) = self.check(tx, r).await?;
        store::webhooks::upsert(
            tx,
            r.name(),
            &spec.url,
            &serde_json::to_string(&events).unwrap_or_default(),
            &serde_json::to_string(&spec.secret).unwrap_or_default(),
            spec.enabled,
            &now(),
        )
        .await?;
        Ok(outcome(spec, &events))
    }

    async fn delete(&self, tx: &mut Tx, name: &str) -> Result<(), ApplyError> {
        store::webhooks::delete(tx, name).await?;
        Ok(())
    }
}

impl WebhookHandler {
    /// The spec of `r` once its secret is proven resolvable, with its event names.
    async fn check<'r>(
        &self,
        tx: &mut Tx,
        r: &'r Resource,
    ) -> Result<(&'r WebhookSpec, Vec<&'r str>), ApplyError> {
        let Spec::Webhook(spec) = &r.spec else {
            return Err(ApplyError::new("WrongKind", "not a Webhook"));
        };
        // Resolved only to prove it can be; the worker resolves it again when it signs. On
        // PostgreSQL a `{ref}` the API stored is sealed in the database (read in this
        // transaction); one that is not there may still be a file.
        let sealed = match &spec.secret {
            SecretRef::Ref(name) if self.store.is_postgres() => {
                store::secrets::open_one(tx, self.store.secret_key(), name).await?
            }
            _ => None,
        };
        let resolved = match sealed {
            Some(opened) => opened.map(drop),
            None => self
                .live
                .secrets()
                .resolve(&spec.secret)
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = resolved {
            return Err(ApplyError::new(
                "SecretUnavailable",
                format!("spec.secret: {e}"),
            ));
        }
        Ok((spec, spec.events.iter().map(|e| e.as_str()).collect()))
    }
}

/// What an applied webhook reports.
fn outcome(spec: &WebhookSpec, events: &[&str]) -> Outcome {
    if spec.enabled {
        Outcome::applied(format!("delivering {} to {}", events.join(", "), spec.url))
    } else {
        Outcome {
            reason: "Disabled",
            message: "enabled: false in the manifest; nothing is delivered".into(),
        }
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
