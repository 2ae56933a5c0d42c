//! The SQL of replica coordination (`crate::cluster`), PostgreSQL only: on SQLite one process
//! is the whole deployment and none of this runs. Tables: `replicas`, `rate_usage` (migration
//! 0009), and the `replica` column of `tasks` (migration 0008).

use sqlx::PgPool;

use super::StoreError;
use crate::events::{self, EventType};
use crate::tasks::TaskStatus;

/// One row of `replicas`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplicaRow {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: String,
    pub last_seen: String,
    pub leader_since: Option<String>,
}

/// Registers this replica, or refreshes its row: `last_seen` and whether it leads.
pub async fn heartbeat(pool: &PgPool, row: &ReplicaRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO replicas (id, address, version, started_at, last_seen, leader_since)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET address = $2, last_seen = $5, leader_since = $6",
    )
    .bind(&row.id)
    .bind(&row.address)
    .bind(&row.version)
    .bind(&row.started_at)
    .bind(&row.last_seen)
    .bind(&row.leader_since)
    .execute(pool)
    .await?;
    Ok(())
}

/// Replicas seen since `since`, oldest first.
pub async fn replicas(pool: &PgPool, since: &str) -> Result<Vec<ReplicaRow>, StoreError> {
    Ok(sqlx::query_as::<_, ReplicaRow>(
        "SELECT id, address, version, started_at, last_seen, leader_since FROM replicas
         WHERE last_seen >= $1 ORDER BY started_at, id",
    )
    .bind(since)
    .fetch_all(pool)
    .await?)
}

/// Removes this replica's row (a clean stop).
pub async fn leave(pool: &PgPool, id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM replicas WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Fails the tasks left `running` by replicas not seen since `dead_before` (their lease ran
/// out), with their `task.failed` events, and forgets those replicas. Returns the failed
/// task ids. One transaction: a task is failed once even if two replicas think they lead.
pub async fn fail_tasks_of_dead_replicas(
    pool: &PgPool,
    dead_before: &str,
    now: &str,
    error: &str,
) -> Result<Vec<String>, StoreError> {
    let mut tx = pool.begin().await?;
    let dead: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM replicas WHERE last_seen < $1 FOR UPDATE SKIP LOCKED")
            .bind(dead_before)
            .fetch_all(&mut *tx)
            .await?;
    let dead: Vec<String> = dead.into_iter().map(|(id,)| id).collect();
    // Tasks claimed by a replica that has no row at all (it stopped before its first
    // heartbeat, or its row was removed) are dead too, once claimed longer than the lease ago.
    let failed = fail_running(&mut tx, &dead, Some(dead_before), now, error).await?;
    if !dead.is_empty() {
        sqlx::query("DELETE FROM replicas WHERE id = ANY($1)")
            .bind(&dead)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(failed)
}

/// Fails the tasks a previous process of this data dir left `running` (it was `replica`): a
/// restart after a crash need not wait for the lease.
pub async fn fail_tasks_of_replica(
    pool: &PgPool,
    replica: &str,
    now: &str,
    error: &str,
) -> Result<Vec<String>, StoreError> {
    let mut tx = pool.begin().await?;
    let failed = fail_running(&mut tx, &[replica.to_owned()], None, now, error).await?;
    sqlx::query("DELETE FROM replicas WHERE id = $1")
        .bind(replica)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(failed)
}

/// Fails the running tasks of `replicas` (and, with `orphaned_before`, those of replicas
/// without a row claimed before then), with their `task.failed` events.
async fn fail_running(
    tx: &mut sqlx::PgConnection,
    replicas: &[String],
    orphaned_before: Option<&str>,
    now: &str,
    error: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<FailedRow> = sqlx::query_as(
        "UPDATE tasks SET status = $3, completed_at = $1, error = $2,
                duration_ms = CASE WHEN started_at IS NULL THEN NULL ELSE
                    CAST(EXTRACT(EPOCH FROM (CAST($1 AS TIMESTAMPTZ) - CAST(started_at AS TIMESTAMPTZ))) * 1000 AS BIGINT) END
         WHERE status = $4 AND replica IS NOT NULL
           AND (replica = ANY($5)
                OR (CAST($6 AS TEXT) IS NOT NULL AND started_at < $6
                    AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = tasks.replica)))
         RETURNING id, prompt, CAST(duration_ms AS TEXT), schedule, schedule_slot",
    )
    .bind(now)
    .bind(error)
    .bind(TaskStatus::Failed.as_str())
    .bind(TaskStatus::Running.as_str())
    .bind(replicas)
    .bind(orphaned_before)
    .fetch_all(&mut *tx)
    .await?;
    for (id, prompt, duration, schedule, slot) in &rows {
        let duration = duration.as_deref().and_then(|d| d.parse().ok());
        let event = events::task_from(
            EventType::TaskFailed,
            id,
            prompt,
            TaskStatus::Failed,
            duration,
            Some(error),
            schedule.as_deref().map(|name| (name, slot.as_deref())),
        );
        sqlx::query("INSERT INTO outbox (id, event, payload, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&event.id)
            .bind(event.event.as_str())
            .bind(&event.payload)
            .bind(&event.created_at)
            .execute(&mut *tx)
            .await?;
    }
    Ok(rows.into_iter().map(|row| row.0).collect())
}

/// A failed task: id, prompt, duration (as text), Schedule and slot that started it.
type FailedRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// One replica's consumption of one token's budget.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RateUsage {
    pub id: i64,
    pub token: String,
    pub rpm: Option<i64>,
    pub burst: Option<i64>,
    pub n: i64,
    pub at: String,
}

/// One token's consumption as published: its digest (hex), its own limit (`rpm`, `burst`;
/// `None`: the Config's) and the requests let through.
pub type Usage = (String, Option<(i64, i64)>, i64);

/// Publishes this replica's consumption since its last publish (one statement).
pub async fn publish_rate_usage(
    pool: &PgPool,
    replica: &str,
    at: &str,
    usage: &[Usage],
) -> Result<(), StoreError> {
    if usage.is_empty() {
        return Ok(());
    }
    let tokens: Vec<&str> = usage.iter().map(|u| u.0.as_str()).collect();
    let rpm: Vec<Option<i64>> = usage.iter().map(|u| u.1.map(|l| l.0)).collect();
    let burst: Vec<Option<i64>> = usage.iter().map(|u| u.1.map(|l| l.1)).collect();
    let n: Vec<i64> = usage.iter().map(|u| u.2).collect();
    sqlx::query(
        "INSERT INTO rate_usage (replica, token, rpm, burst, n, at)
         SELECT $1, t, r, b, n, $2 FROM UNNEST($3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[]) AS u(t, r, b, n)",
    )
    .bind(replica)
    .bind(at)
    .bind(&tokens)
    .bind(&rpm)
    .bind(&burst)
    .bind(&n)
    .execute(pool)
    .await?;
    Ok(())
}

/// The other replicas' consumption published since `since`.
pub async fn rate_usage_of_others(
    pool: &PgPool,
    replica: &str,
    since: &str,
) -> Result<Vec<RateUsage>, StoreError> {
    Ok(sqlx::query_as::<_, RateUsage>(
        "SELECT id, token, rpm, burst, n, at FROM rate_usage WHERE at >= $1 AND replica <> $2",
    )
    .bind(since)
    .bind(replica)
    .fetch_all(pool)
    .await?)
}

/// Drops this replica's published consumption older than `before`.
pub async fn prune_rate_usage(
    pool: &PgPool,
    replica: &str,
    before: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM rate_usage WHERE replica = $1 AND at < $2")
        .bind(replica)
        .bind(before)
        .execute(pool)
        .await?;
    Ok(())
}

/// Sends a notification to every replica listening on `channel`.
pub async fn notify(pool: &PgPool, channel: &str, payload: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await?;
    Ok(())
}

impl super::Store {
    /// The PostgreSQL pool replicas coordinate through; `None` on SQLite (one process).
    pub fn cluster_pool(&self) -> Option<PgPool> {
        match self.db() {
            super::Db::Postgres(pool) => Some(pool.clone()),
            super::Db::Sqlite(_) => None,
        }
    }
}
