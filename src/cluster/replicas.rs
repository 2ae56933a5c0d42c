//! Each replica's row in `replicas`, refreshed every [`HEARTBEAT`]; the list of the live ones
//! is rendered for `GET /status` after each beat, so the endpoint costs no query.

use std::sync::Arc;
use std::time::SystemTime;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{now, stamp, Cluster, HEARTBEAT, LEASE};
use crate::store::cluster::{self as rows, ReplicaRow};
use crate::store::StoreError;

/// One heartbeat: this replica's row, then the rendered list.
pub(super) async fn beat(cluster: &Cluster, pool: &PgPool) -> Result<(), StoreError> {
    let leader_since = cluster
        .leader_since
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    rows::heartbeat(
        pool,
        &ReplicaRow {
            id: cluster.id().to_owned(),
            address: cluster.address().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: cluster.started_at.clone(),
            last_seen: now(),
            leader_since,
        },
    )
    .await?;
    let since = stamp(SystemTime::now() - LEASE);
    let replicas = rows::replicas(pool, &since).await?;
    let led = replicas.iter().any(|r| r.leader_since.is_some());
    cluster.led.store(led, std::sync::atomic::Ordering::Release);
    cluster.rendered.store(Arc::new(render(&replicas)));
    Ok(())
}

/// The `replicas` array: `leader` is true for the live replica that took the lead last (a
/// holder that died still has `leader_since` set until its row goes).
fn render(replicas: &[ReplicaRow]) -> String {
    let leader = replicas
        .iter()
        .filter_map(|r| r.leader_since.as_deref().map(|since| (since, &r.id)))
        .max()
        .map(|(_, id)| id.as_str());
    let list: Vec<serde_json::Value> = replicas
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "address": r.address,
                "version": r.version,
                "leader": Some(r.id.as_str()) == leader,
                "last_seen": r.last_seen,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// Beats until `stop`, then removes this replica's row.
pub(super) async fn heartbeat(cluster: Arc<Cluster>, pool: PgPool, stop: CancellationToken) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        match beat(&cluster, &pool).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("replica heartbeat recorded again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("cannot record this replica's heartbeat (after {} s without one its tasks are failed by the leader): {e}", LEASE.as_secs());
            }
            Err(_) => {}
        }
    }
    if let Err(e) = rows::leave(&pool, cluster.id()).await {
        tracing::warn!("cannot remove this replica's row: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, leader_since: Option<&str>) -> ReplicaRow {
        ReplicaRow {
            id: id.into(),
            address: "127.0.0.1:1".into(),
            version: "0.1.0".into(),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            last_seen: "2026-01-01T00:00:01.000Z".into(),
            leader_since: leader_since.map(str::to_owned),
        }
    }

    #[test]
    fn exactly_one_leader_the_latest_to_take_the_lead() {
        let list = render(&[
            row("a", Some("2026-01-01T00:00:00.000Z")),
            row("b", None),
            row("c", Some("2026-01-01T00:00:05.000Z")),
        ]);
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        let leaders: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["leader"] == true)
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(leaders, ["c"]);
        assert_eq!(list[1]["version"], "0.1.0");
    }
}
