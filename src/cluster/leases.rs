//! Leases: a replica is alive while its heartbeat is younger than [`LEASE`]. The leader looks
//! every [`CHECK`] for replicas past it and fails the tasks they left `running` (with their
//! `task.failed` events and a final status for SSE subscribers on every replica). A task is
//! therefore failed at most `LEASE + CHECK` (+ a leader takeover) after its replica died.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{now, stamp, Cluster, Notice, LEASE};
use crate::live::Live;
use crate::store::cluster as rows;
use crate::tasks::TaskStatus;

/// How often the leader checks the leases.
pub const CHECK: Duration = Duration::from_secs(3);

/// The error of a task whose replica died.
pub const REPLICA_STOPPED: &str = "the replica running it stopped";

pub(super) async fn check(
    cluster: Arc<Cluster>,
    pool: PgPool,
    live: Arc<Live>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        if !cluster.is_leader() {
            continue;
        }
        let dead_before = stamp(SystemTime::now() - LEASE);
        match rows::fail_tasks_of_dead_replicas(&pool, &dead_before, &now(), REPLICA_STOPPED).await
        {
            Ok(failed) if failed.is_empty() => {}
            Ok(failed) => {
                tracing::warn!(
                    count = failed.len(),
                    "failed the tasks of a replica that stopped (its lease ran out)"
                );
                live.outbox.notify_one();
                for task in failed {
                    cluster.publish(Notice::Status {
                        from: cluster.id().to_owned(),
                        task,
                        status: TaskStatus::Failed,
                        error: Some(REPLICA_STOPPED.to_owned()),
                        duration_ms: None,
                    });
                }
            }
            Err(e) => tracing::warn!("cannot check the replicas' leases: {e}"),
        }
    }
}

/// The file in the data dir naming the replica id of the last process that used it.
const PREVIOUS_ID_FILE: &str = "replica-id";

/// At start on PostgreSQL: the tasks the previous process of this data dir left `running`
/// are failed now (it is gone: this process has its data dir), not after the lease; then this
/// process's id is recorded for the next. Replicas each have their own data dir.
pub async fn fail_previous_process_tasks(
    pool: &PgPool,
    data_dir: &std::path::Path,
    replica: &str,
    error: &str,
) -> Result<Vec<String>, crate::store::StoreError> {
    let path = data_dir.join(PREVIOUS_ID_FILE);
    let failed = match std::fs::read_to_string(&path) {
        Ok(previous) if !previous.trim().is_empty() && previous.trim() != replica => {
            rows::fail_tasks_of_replica(pool, previous.trim(), &now(), error).await?
        }
        _ => Vec::new(),
    };
    if let Err(e) = std::fs::write(&path, replica) {
        tracing::warn!(
            "cannot record this replica's id in {} (a restart will wait for the lease to fail tasks left running): {e}",
            path.display()
        );
    }
    Ok(failed)
}
