//! The `resources` table: one row per applied resource (kind, name, digest, spec, revision).

use std::collections::HashMap;

use sqlx::{Row, SqliteConnection};

use super::{Store, StoreError};
use crate::manifest::{Digest, Kind};

/// What the store says is applied for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub digest: Digest,
    /// The spec as applied, JSON.
    pub spec: String,
    pub revision: String,
    pub applied_at: String,
}

/// Every applied resource, keyed by kind and name.
pub async fn load_all(store: &Store) -> Result<HashMap<(Kind, String), Applied>, StoreError> {
    let rows =
        sqlx::query("SELECT kind, name, digest, spec, applied_revision, applied_at FROM resources")
            .fetch_all(store.pool())
            .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get(0)?;
        // A kind this build does not know (a newer server wrote it) is left alone.
        let Ok(kind) = kind.parse::<Kind>() else {
            continue;
        };
        let digest_hex: String = row.try_get(2)?;
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(&digest_hex, &mut digest).is_err() {
            continue;
        }
        out.insert(
            (kind, row.try_get(1)?),
            Applied {
                digest,
                spec: row.try_get(3)?,
                revision: row.try_get(4)?,
                applied_at: row.try_get(5)?,
            },
        );
    }
    Ok(out)
}

/// Records that a resource was applied.
pub async fn upsert(
    conn: &mut SqliteConnection,
    kind: Kind,
    name: &str,
    applied: &Applied,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO resources (kind, name, digest, spec, applied_revision, applied_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (kind, name) DO UPDATE SET digest = ?3, spec = ?4, applied_revision = ?5, applied_at = ?6",
    )
    .bind(kind.as_str())
    .bind(name)
    .bind(hex::encode(applied.digest))
    .bind(&applied.spec)
    .bind(&applied.revision)
    .bind(&applied.applied_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets a deleted resource.
pub async fn delete(conn: &mut SqliteConnection, kind: Kind, name: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM resources WHERE kind = ?1 AND name = ?2")
        .bind(kind.as_str())
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}
