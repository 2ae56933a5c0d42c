//! The `idempotency_keys` table: `Idempotency-Key`s of creating POSTs (`api/idempotency.rs`).
//!
//! A key is reserved by inserting its row (`INSERT … ON CONFLICT DO NOTHING`: of concurrent
//! requests with one key, across connections and replicas, exactly one inserts), and the first
//! response is stored into that row once the handler has answered. Times are passed in (fixed
//! width RFC 3339 text), so the SQL is the same on SQLite and PostgreSQL.

use super::{Store, StoreError};

/// A key's row as the API reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRow {
    /// SHA-256 (hex) of the method, path and body of the request that reserved the key.
    pub fingerprint: String,
    /// When the key was reserved.
    pub created_at: String,
    /// The stored response's status; `None` while the first request runs.
    pub status: Option<i64>,
    /// JSON object of the replayed headers.
    pub headers: Option<String>,
    pub body: Option<String>,
}

/// The response stored for replay.
pub struct Stored<'a> {
    pub status: i64,
    pub headers: &'a str,
    pub body: &'a str,
}

/// Reserves `key` for `token`: true when this call inserted the row (the caller runs the
/// request), false when a row exists (read it with [`get`]).
pub async fn reserve(
    store: &Store,
    token: &str,
    key: &str,
    fingerprint: &str,
    now: &str,
) -> Result<bool, StoreError> {
    let done = with_pool!(store, pool => sqlx::query(
        "INSERT INTO idempotency_keys (token_sha256, idem_key, fingerprint, created_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (token_sha256, idem_key) DO NOTHING",
    )
    .bind(token)
    .bind(key)
    .bind(fingerprint)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected());
    Ok(done == 1)
}

/// The row of `key`, if any (expired or not: the caller judges `created_at`).
pub async fn get(store: &Store, token: &str, key: &str) -> Result<Option<KeyRow>, StoreError> {
    Ok(with_pool!(store, pool => sqlx::query_as::<_, KeyRow>(
        "SELECT fingerprint, created_at, status, headers, body FROM idempotency_keys
         WHERE token_sha256 = $1 AND idem_key = $2",
    )
    .bind(token)
    .bind(key)
    .fetch_optional(pool)
    .await?))
}

/// Stores the first response of the reservation made at `created_at`.
pub async fn complete(
    store: &Store,
    token: &str,
    key: &str,
    created_at: &str,
    response: &Stored<'_>,
) -> Result<(), StoreError> {
    with_pool!(store, pool => sqlx::query(
        "UPDATE idempotency_keys SET status = $4, headers = $5, body = $6
         WHERE token_sha256 = $1 AND idem_key = $2 AND created_at = $3 AND status IS NULL",
    )
    .bind(token)
    .bind(key)
    .bind(created_at)
    .bind(response.status)
    .bind(response.headers)
    .bind(response.body)
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Removes the row of `key` made at `created_at` (a released reservation, or an expired or
/// abandoned one about to be taken over); another row for the key is left alone.
pub async fn release(
    store: &Store,
    token: &str,
    key: &str,
    created_at: &str,
) -> Result<(), StoreError> {
    with_pool!(store, pool => sqlx::query(
        "DELETE FROM idempotency_keys
         WHERE token_sha256 = $1 AND idem_key = $2 AND created_at = $3",
    )
    .bind(token)
    .bind(key)
    .bind(created_at)
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Deletes every key reserved before `before`; answers how many.
pub async fn prune(store: &Store, before: &str) -> Result<u64, StoreError> {
    let done = with_pool!(store, pool => sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(done)
}
