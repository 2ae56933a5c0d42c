//! The `resources` table: one row per applied resource (kind, name, digest, spec, revision).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Store, StoreError, Tx};
use crate::manifest::{Digest, Kind};

/// What is applied for one resource, as the reconciler keeps it in memory (the applied spec
/// itself stays in the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub digest: Digest,
    /// The manifests revision it was applied at (shared: most resources share one).
    pub revision: Arc<str>,
}

/// Every applied resource, keyed by kind and name.
pub async fn load_all<S: std::hash::BuildHasher + Default>(
    store: &Store,
) -> Result<HashMap<(Kind, Arc<str>), Applied, S>, StoreError> {
    let rows: Vec<(String, String, String, String)> = with_pool!(store, pool => {
        sqlx::query_as("SELECT kind, name, digest, applied_revision FROM resources")
            .fetch_all(pool)
            .await?
    });
    let mut out = HashMap::with_capacity_and_hasher(rows.len(), S::default());
    let mut revisions: HashMap<String, Arc<str>> = HashMap::new();
    for (kind, name, digest_hex, revision) in rows {
        // A kind this build does not know (a newer server wrote it) is left alone.
        let Ok(kind) = kind.parse::<Kind>() else {
            continue;
        };
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(&digest_hex, &mut digest).is_err() {
            continue;
        }
        let revision = revisions
            .entry(revision)
            .or_insert_with_key(|r| Arc::from(r.as_str()))
            .clone();
        out.insert((kind, Arc::from(name)), Applied { digest, revision });
    }
    Ok(out)
}

/// The applied spec (JSON) of one resource.
pub async fn spec_of(store: &Store, kind: Kind, name: &str) -> Result<Option<String>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_scalar("SELECT spec FROM resources WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(pool)
            .await?
    }))
}

/// The applied digest (hex) of one resource, if it is applied.
pub async fn digest_of(
    store: &Store,
    kind: Kind,
    name: &str,
) -> Result<Option<String>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_scalar("SELECT digest FROM resources WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(pool)
            .await?
    }))
}

/// A resource to record as applied.
#[derive(Debug)]
pub struct Row<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub digest: Digest,
    /// The spec as applied, JSON.
    pub spec: String,
}

/// Records that resources were applied at `revision`, many rows per statement.
pub async fn upsert_many(
    tx: &mut Tx,
    rows: &[Row<'_>],
    revision: &str,
    applied_at: &str,
) -> Result<(), StoreError> {
    // Six parameters a row; SQLite allows 32,766 per statement, PostgreSQL 65,535.
    for chunk in rows.chunks(500) {
        with_tx!(&mut *tx, conn => {
        let mut qb = sqlx::QueryBuilder::<Engine>::new(
            "INSERT INTO resources (kind, name, digest, spec, applied_revision, applied_at) ",
        );
        qb.push_values(chunk, |mut b, row| {
            b.push_bind(row.kind.as_str())
                .push_bind(row.name.to_owned())
                .push_bind(hex::encode(row.digest))
                .push_bind(row.spec.clone())
                .push_bind(revision.to_owned())
                .push_bind(applied_at.to_owned());
        });
        qb.push(
            " ON CONFLICT (kind, name) DO UPDATE SET digest = excluded.digest, spec = excluded.spec, \
             applied_revision = excluded.applied_revision, applied_at = excluded.applied_at",
        );
        qb.build().execute(conn).await?;
        });
    }
    Ok(())
}

/// Forgets a deleted resource.
pub async fn delete(tx: &mut Tx, kind: Kind, name: &str) -> Result<(), StoreError> {
    with_tx!(tx, conn => {
        sqlx::query("DELETE FROM resources WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(name)
            .execute(conn)
            .await?;
    });
    Ok(())
}
