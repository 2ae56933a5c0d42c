//! The `webhook_endpoints` table: the Webhook manifests in force. The Webhook reconcile
//! handler writes it; the delivery worker reads it.

use super::{Store, StoreError, Tx};
use crate::events::Subscription;

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EndpointRow {
    /// The Webhook resource's name (the API's id).
    pub name: String,
    pub url: String,
    /// JSON array of event names (`"*"` for all).
    pub events: String,
    /// JSON of the secret reference; never the secret.
    pub secret_ref: String,
    pub enabled: bool,
    /// Why the server disabled it (410 Gone), if it did.
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl EndpointRow {
    /// The event names it subscribes to.
    pub fn event_names(&self) -> Vec<String> {
        serde_json::from_str(&self.events).unwrap_or_default()
    }

    /// What it subscribes to.
    pub fn subscription(&self) -> Subscription {
        Subscription::from_json(&self.events)
    }

    /// True when it wants the event called `event` (`"*"` subscribes to all).
    pub fn wants(&self, event: &str) -> bool {
        self.subscription().matches_name(event)
    }

    /// Enabled by its manifest and not disabled by the server.
    pub fn active(&self) -> bool {
        self.enabled && self.disabled_reason.is_none()
    }
}

/// Every endpoint.
pub async fn list(store: &Store) -> Result<Vec<EndpointRow>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_as::<_, EndpointRow>(
            "SELECT name, url, events, secret_ref, enabled, disabled_reason, created_at, updated_at
             FROM webhook_endpoints ORDER BY name",
        )
        .fetch_all(pool)
        .await?
    }))
}

/// One endpoint.
pub async fn get(store: &Store, name: &str) -> Result<Option<EndpointRow>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_as::<_, EndpointRow>(
            "SELECT name, url, events, secret_ref, enabled, disabled_reason, created_at, updated_at
             FROM webhook_endpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await?
    }))
}

/// Inserts or updates an endpoint from its manifest; a manifest change clears a disable by
/// the server (the operator has seen it and acted).
pub async fn upsert(
    tx: &mut Tx,
    name: &str,
    url: &str,
    events: &str,
    secret_ref: &str,
    enabled: bool,
    now: &str,
) -> Result<(), StoreError> {
    with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO webhook_endpoints (name, url, events, secret_ref, enabled, disabled_reason, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $6)
             ON CONFLICT (name) DO UPDATE SET url = $2, events = $3, secret_ref = $4, enabled = $5,
                 disabled_reason = NULL, updated_at = $6",
        )
        .bind(name)
        .bind(url)
        .bind(events)
        .bind(secret_ref)
        .bind(enabled)
        .bind(now)
        .execute(conn)
        .await?;
    });
    Ok(())
}

/// One endpoint row for [`upsert_many`].
pub struct NewEndpoint<'a> {
    pub name: &'a str,
    pub url: &'a str,
    /// JSON array of event names.
    pub events: String,
    /// JSON of the secret reference.
    pub secret_ref: String,
    pub enabled: bool,
}

/// [`upsert`] for many endpoints in one statement per 500 (start-up and resyncs apply
/// thousands; a statement each was a round trip to the database apiece).
pub async fn upsert_many(
    tx: &mut Tx,
    rows: &[NewEndpoint<'_>],
    now: &str,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(500) {
        with_tx!(&mut *tx, conn => {
            let mut qb = sqlx::QueryBuilder::<Engine>::new(
                "INSERT INTO webhook_endpoints (name, url, events, secret_ref, enabled, disabled_reason, created_at, updated_at) ",
            );
            qb.push_values(chunk, |mut b, row| {
                b.push_bind(row.name)
                    .push_bind(row.url)
                    .push_bind(row.events.as_str())
                    .push_bind(row.secret_ref.as_str())
                    .push_bind(row.enabled)
                    .push_bind(None::<String>)
                    .push_bind(now)
                    .push_bind(now);
            });
            qb.push(
                " ON CONFLICT (name) DO UPDATE SET url = excluded.url, events = excluded.events, \
                 secret_ref = excluded.secret_ref, enabled = excluded.enabled, \
                 disabled_reason = NULL, updated_at = excluded.updated_at",
            );
            qb.build().execute(conn).await?;
        });
    }
    Ok(())
}

/// Removes an endpoint (its delivery history stays until retention prunes it).
pub async fn delete(tx: &mut Tx, name: &str) -> Result<(), StoreError> {
    with_tx!(tx, conn => {
        sqlx::query("DELETE FROM webhook_endpoints WHERE name = $1")
            .bind(name)
            .execute(conn)
            .await?;
    });
    Ok(())
}

/// Disables an endpoint on the server's own account (e.g. it answered 410 Gone).
pub async fn disable(store: &Store, name: &str, reason: &str, now: &str) -> Result<(), StoreError> {
    with_pool!(store, pool => {
        sqlx::query(
            "UPDATE webhook_endpoints SET disabled_reason = $2, updated_at = $3 WHERE name = $1",
        )
        .bind(name)
        .bind(reason)
        .bind(now)
        .execute(pool)
        .await?;
    });
    Ok(())
}
