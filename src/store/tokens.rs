//! The `tokens` table: tokens in force (SHA-256 digests only) and their last use.

use sqlx::{Row, SqliteConnection};

use super::{Store, StoreError};
use crate::auth::{Scope, TokenHash, TokenRecord};
use crate::manifest::kinds::{TokenRateLimit, TokenSpec};

/// A row of the table, as `claw token list` shows it.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub name: String,
    pub scope: String,
    pub sha256: String,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// Every token row.
pub async fn list(store: &Store) -> Result<Vec<TokenRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, scope, sha256, created_at, expires_at, last_used_at FROM tokens ORDER BY name",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenRow {
                name: r.try_get(0)?,
                scope: r.try_get(1)?,
                sha256: r.try_get(2)?,
                created_at: r.try_get(3)?,
                expires_at: r.try_get(4)?,
                last_used_at: r.try_get(5)?,
            })
        })
        .collect()
}

/// Every token as a record for the in-memory table (used at start-up, before reconciling).
pub async fn load_records(store: &Store) -> Result<Vec<TokenRecord>, StoreError> {
    // Each token's own rate limit lives in its applied spec (the `resources` table).
    let specs: Vec<(String, String)> =
        sqlx::query_as("SELECT name, spec FROM resources WHERE kind = 'Token'")
            .fetch_all(store.pool())
            .await?;
    let mut limits: std::collections::HashMap<String, TokenRateLimit> = specs
        .into_iter()
        .filter_map(|(name, spec)| {
            let spec: serde_json::Value = serde_json::from_str(&spec).ok()?;
            let limit = serde_json::from_value(spec.get("rate_limit")?.clone()).ok()?;
            Some((name, limit))
        })
        .collect();
    let mut out = Vec::new();
    for row in list(store).await? {
        let mut hash: TokenHash = [0; 32];
        let Ok(scope) = row.scope.parse::<Scope>() else {
            continue;
        };
        if hex::decode_to_slice(&row.sha256, &mut hash).is_err() {
            continue;
        }
        out.push(TokenRecord {
            rate_limit: limits.remove(row.name.as_str()),
            name: row.name,
            scope,
            hash,
            expires_at: row.expires_at.as_deref().and_then(parse_unix),
            last_used: row.last_used_at.as_deref().and_then(parse_unix),
        });
    }
    Ok(out)
}

fn parse_unix(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn rfc3339(t: &time::OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Inserts or updates a token, keeping its last use.
pub async fn upsert(
    conn: &mut SqliteConnection,
    name: &str,
    spec: &TokenSpec,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tokens (name, sha256, scope, created_at, expires_at, description)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO UPDATE SET sha256 = ?2, scope = ?3, created_at = ?4, expires_at = ?5, description = ?6",
    )
    .bind(name)
    .bind(&spec.sha256)
    .bind(spec.scope.as_str())
    .bind(spec.created_at.as_ref().and_then(rfc3339))
    .bind(spec.expires_at.as_ref().and_then(rfc3339))
    .bind(spec.description.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts or updates many tokens, 500 to a statement (start-up applies thousands; one
/// statement each would cost a round trip to SQLite's worker thread each). A unique violation
/// (a digest declared twice) fails the whole chunk, and only that statement: the caller then
/// applies that chunk's tokens one by one to find the culprit.
pub async fn upsert_many(
    conn: &mut SqliteConnection,
    rows: &[(&str, &TokenSpec)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO tokens (name, sha256, scope, created_at, expires_at, description) ",
    );
    qb.push_values(rows, |mut b, (name, spec)| {
        b.push_bind(name.to_string())
            .push_bind(spec.sha256.clone())
            .push_bind(spec.scope.as_str())
            .push_bind(spec.created_at.as_ref().and_then(rfc3339))
            .push_bind(spec.expires_at.as_ref().and_then(rfc3339))
            .push_bind(spec.description.clone());
    });
    qb.push(
        " ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, scope = excluded.scope, \
         created_at = excluded.created_at, expires_at = excluded.expires_at, \
         description = excluded.description",
    );
    qb.build().execute(conn).await?;
    Ok(())
}

/// Removes a revoked token.
pub async fn delete(conn: &mut SqliteConnection, name: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM tokens WHERE name = ?1")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// Persists last-use times collected in memory (batched, off the request path).
pub async fn record_last_used(
    store: &Store,
    uses: &[(std::sync::Arc<str>, i64)],
) -> Result<(), StoreError> {
    if uses.is_empty() {
        return Ok(());
    }
    let mut tx = store.pool().begin().await?;
    for (name, at) in uses {
        let Ok(at) = time::OffsetDateTime::from_unix_timestamp(*at) else {
            continue;
        };
        sqlx::query("UPDATE tokens SET last_used_at = ?2 WHERE name = ?1")
            .bind(name.as_ref())
            .bind(rfc3339(&at))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
