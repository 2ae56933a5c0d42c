//! The `tokens` table: tokens in force (SHA-256 digests only) and their last use.

use super::{Store, StoreError, Tx};
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
    type Columns = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Columns> = with_pool!(store, pool => {
        sqlx::query_as(
            "SELECT name, scope, sha256, created_at, expires_at, last_used_at FROM tokens ORDER BY name",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(name, scope, sha256, created_at, expires_at, last_used_at)| TokenRow {
                name,
                scope,
                sha256,
                created_at,
                expires_at,
                last_used_at,
            },
        )
        .collect())
}

/// Every token as a record for the in-memory table (used at start-up, before reconciling).
pub async fn load_records(store: &Store) -> Result<Vec<TokenRecord>, StoreError> {
    // Each token's own rate limit lives in its applied spec (the `resources` table).
    let specs: Vec<(String, String)> = with_pool!(store, pool => {
        sqlx::query_as("SELECT name, spec FROM resources WHERE kind = 'Token'")
            .fetch_all(pool)
            .await?
    });
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
            name: std::sync::Arc::from(row.name),
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

/// Runs one statement that may fail on a unique violation (a digest declared twice) without
/// spoiling the transaction: PostgreSQL aborts a whole transaction at its first error, so the
/// statement runs under a savepoint there (SQLite undoes just the failed statement).
macro_rules! may_violate {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            Tx::Sqlite(t) => {
                #[allow(dead_code)]
                type Engine = sqlx::Sqlite;
                let $conn: &mut sqlx::SqliteConnection = &mut *t;
                ($body).map(|_| ())
            }
            Tx::Postgres(t) => {
                #[allow(dead_code)]
                type Engine = sqlx::Postgres;
                let c: &mut sqlx::PgConnection = &mut *t;
                sqlx::query("SAVEPOINT claw_upsert")
                    .execute(&mut *c)
                    .await?;
                let result = {
                    let $conn = &mut *c;
                    ($body).map(|_| ())
                };
                let end = match result {
                    Ok(_) => "RELEASE SAVEPOINT claw_upsert",
                    Err(_) => "ROLLBACK TO SAVEPOINT claw_upsert",
                };
                sqlx::query(end).execute(&mut *c).await?;
                result
            }
        }
    };
}

/// Inserts or updates a token, keeping its last use.
pub async fn upsert(tx: &mut Tx, name: &str, spec: &TokenSpec) -> Result<(), StoreError> {
    may_violate!(tx, conn => {
        sqlx::query(
            "INSERT INTO tokens (name, sha256, scope, created_at, expires_at, description)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET sha256 = $2, scope = $3, created_at = $4, expires_at = $5, description = $6",
        )
        .bind(name)
        .bind(&spec.sha256)
        .bind(spec.scope.as_str())
        .bind(spec.created_at.as_ref().and_then(rfc3339))
        .bind(spec.expires_at.as_ref().and_then(rfc3339))
        .bind(spec.description.as_deref())
        .execute(conn)
        .await
    })?;
    Ok(())
}

/// Inserts or updates many tokens, 500 to a statement (start-up applies thousands; one
/// statement each would cost a round trip to SQLite's worker thread each). A unique violation
/// (a digest declared twice) fails the whole chunk, and only that statement: the caller then
/// applies that chunk's tokens one by one to find the culprit.
pub async fn upsert_many(tx: &mut Tx, rows: &[(&str, &TokenSpec)]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    may_violate!(tx, conn => {
    let mut qb = sqlx::QueryBuilder::<Engine>::new(
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
    qb.build().execute(conn).await
    })?;
    Ok(())
}

/// Removes a revoked token.
pub async fn delete(tx: &mut Tx, name: &str) -> Result<(), StoreError> {
    with_tx!(tx, conn => {
        sqlx::query("DELETE FROM tokens WHERE name = $1")
            .bind(name)
            .execute(conn)
            .await?;
    });
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
    let mut tx = store.begin().await?;
    for (name, at) in uses {
        let Ok(at) = time::OffsetDateTime::from_unix_timestamp(*at) else {
            continue;
        };
        with_tx!(&mut tx, conn => {
            sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE name = $1")
                .bind(name.as_ref())
                .bind(rfc3339(&at))
                .execute(conn)
                .await?;
        });
    }
    tx.commit().await?;
    Ok(())
}
