//! Leader election: a session-level advisory lock taken with `pg_try_advisory_lock` on a
//! connection of its own, held for as long as that session lives. When the holder's process
//! dies its session ends and PostgreSQL releases the lock; the others try every
//! [`ELECTION_RETRY`], so one of them leads a few seconds later. The holder checks its session
//! on the same interval and steps down at once when the check fails (the lock may be gone).

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use super::{replicas, Cluster, ELECTION_RETRY};

/// The lock's key: "clawlead" in ASCII.
const LOCK_KEY: i64 = 0x636c_6177_6c65_6164;

/// Longest a lock query may take before the session is given up as lost.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The first try, before the replica serves: a lone replica leads from its first request.
pub(super) async fn first(cluster: &Cluster, pool: &PgPool) -> Option<PgConnection> {
    let mut session = None;
    if let Ok(true) = attempt(pool, &mut session, false).await {
        cluster.set_leader(true);
        tracing::info!(
            replica = cluster.id(),
            "this replica leads (outbox fan-out, pruning, leases)"
        );
    }
    session
}

/// Campaigns (and holds the lead) until `stop`; then releases the lock.
pub(super) async fn elect(
    cluster: Arc<Cluster>,
    pool: PgPool,
    mut session: Option<PgConnection>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(ELECTION_RETRY) => {}
        }
        let leads = cluster.is_leader();
        match attempt(&pool, &mut session, leads).await {
            Ok(true) if !leads => {
                cluster.set_leader(true);
                tracing::info!(
                    replica = cluster.id(),
                    "this replica leads (outbox fan-out, pruning, leases)"
                );
                // Shown in the replicas list at once, not at the next beat.
                let _ = replicas::beat(&cluster, &pool).await;
            }
            Ok(true) => {}
            Ok(false) => {}
            Err(e) => {
                if leads {
                    cluster.set_leader(false);
                    tracing::warn!("lost the leader's session, stepping down: {e}");
                } else {
                    tracing::debug!("leader election: {e}");
                }
                // Dropping the session ends it, which releases the lock if it still exists.
                session = None;
            }
        }
    }
    cluster.set_leader(false);
    if let Some(mut conn) = session {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

/// One round: connects when needed, then either checks the held session or tries the lock.
/// `Ok(true)` while this session holds the lock.
async fn attempt(
    pool: &PgPool,
    session: &mut Option<PgConnection>,
    leads: bool,
) -> Result<bool, String> {
    if session.is_none() {
        let options = pool.connect_options();
        let conn = tokio::time::timeout(QUERY_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| "connecting timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        *session = Some(conn);
    }
    let conn = session.as_mut().ok_or("no session")?;
    let query = if leads {
        // Still the same session, so still the holder.
        sqlx::query_scalar::<_, bool>("SELECT TRUE")
    } else {
        sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)").bind(LOCK_KEY)
    };
    tokio::time::timeout(QUERY_TIMEOUT, query.fetch_one(conn))
        .await
        .map_err(|_| "the session did not answer in time".to_owned())?
        .map_err(|e| e.to_string())
}
