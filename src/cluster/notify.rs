//! `LISTEN/NOTIFY` between replicas. Every replica listens on [`CHANNEL`] (JSON [`Notice`]s);
//! the leader alone on [`OUTBOX_CHANNEL`], which a replica that does not lead raises after it
//! wrote events (at most once every [`OUTBOX_SIGNAL_EVERY`], [`outbox_signaller`]), so the
//! leader fans them out at once. Notices are sent in order by one publisher task per replica,
//! batched into one statement; a notification's payload is limited to 8000 bytes, so task
//! output is cut into pieces below it.
//!
//! Every notifying commit wakes every listening session of the database, whatever its
//! channel (PostgreSQL 15): hence few notifications — none for the leader's own events (it
//! signals its worker in memory), one per window for a follower's, instead of one per
//! event-writing transaction from a trigger (migration 0009, dropped by 0011).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use crate::live::Live;
use crate::store::StoreError;
use crate::tasks::TaskStatus;

/// The channel of [`Notice`]s.
pub const CHANNEL: &str = "claw_cluster";
/// The channel a replica that does not lead raises after it wrote events.
pub const OUTBOX_CHANNEL: &str = "claw_outbox";

/// How often, at most, a replica that does not lead raises [`OUTBOX_CHANNEL`]: events written
/// meanwhile wait for the leader's fan-out that long at most (under load the leader's own
/// events make it fan out sooner).
pub const OUTBOX_SIGNAL_EVERY: Duration = Duration::from_millis(25);

/// How often, at most, a replica announces tasks it queued and cannot start at once
/// ([`Notice::Queued`]): every notice wakes every replica, and under load most replicas are
/// busy, so one notice stands for all the tasks queued in the window. A replica with free
/// slots starts them that much later at most; a busy one claims the next task as its own
/// finish anyway.
pub const QUEUED_SIGNAL_EVERY: Duration = Duration::from_millis(25);

/// Largest output text in one notice (the payload limit is 8000 bytes, JSON escaping
/// included; the worst case escapes a byte as six).
const OUTPUT_PIECE: usize = 1200;

/// What one replica tells the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// Stop `task` where it runs.
    Cancel {
        from: String,
        task: String,
        reason: String,
    },
    /// Output of a running task, for SSE subscribers elsewhere.
    Output {
        from: String,
        task: String,
        text: String,
    },
    /// A task's status changed.
    Status {
        from: String,
        task: String,
        status: TaskStatus,
        error: Option<String>,
        duration_ms: Option<i64>,
    },
    /// A task was queued that its replica cannot start at once: replicas with free capacity
    /// look at the queue.
    Queued { from: String },
    /// Replica `from` follows `task` (an SSE stream, a cancel awaiting the end): the replica
    /// that runs it (or claims it later) sends `from` a [`Notice::Replay`], then publishes the
    /// task's `output` and `status` until it ends. Unwatched tasks publish neither.
    Watch { from: String, task: String },
    /// For replica `to`'s followers of `task`: its status and the output so far (`part` 0,
    /// then the rest of a long output in further parts); the `output` and `status` notices
    /// that follow continue from there.
    Replay {
        from: String,
        to: String,
        task: String,
        status: TaskStatus,
        text: String,
        #[serde(default)]
        part: u32,
    },
    /// A write-back pushed a new manifest revision: fetch now.
    Revision { from: String },
    /// The leader committed a pass that wrote shared resource rows: a replica whose own
    /// write-back waits for them looks again.
    Applied { from: String },
}

/// The wire form: a sequence number makes every payload unique (PostgreSQL folds identical
/// notifications of one transaction into one).
#[derive(Serialize, Deserialize)]
struct Wire {
    seq: u64,
    #[serde(flatten)]
    notice: Notice,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Starts listening (the LISTEN is in place when this returns), then forwards what arrives
/// to [`Cluster::subscribe`]rs until `stop`.
pub(super) async fn listen(
    cluster: Arc<Cluster>,
    pool: PgPool,
    live: Arc<Live>,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, StoreError> {
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    let mut leadership = cluster.leadership();
    let mut hears_outbox = false;
    Ok(tokio::spawn(async move {
        loop {
            // The outbox channel while this replica leads (a new leader looks at the outbox
            // once: events may have come while nobody fanned out).
            let leads = *leadership.borrow_and_update();
            if leads != hears_outbox {
                let changed = if leads {
                    listener.listen(OUTBOX_CHANNEL).await
                } else {
                    listener.unlisten(OUTBOX_CHANNEL).await
                };
                match changed {
                    Ok(()) => {
                        hears_outbox = leads;
                        if leads {
                            live.outbox.notify_one();
                        }
                    }
                    Err(e) => {
                        tracing::warn!("cluster notices: cannot (un)listen to the outbox: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let received = tokio::select! {
                _ = stop.cancelled() => break,
                _ = leadership.changed() => continue,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(n)) if n.channel() == OUTBOX_CHANNEL => {
                    // Only the leader fans out (a follower hears this only while it unlistens).
                    if cluster.is_leader() {
                        live.outbox.notify_one();
                    }
                }
                Ok(Some(n)) => match serde_json::from_str::<Wire>(n.payload()) {
                    Ok(wire) => {
                        if let Some(notices) = cluster.notices.get() {
                            let _ = notices.send(wire.notice);
                        }
                    }
                    Err(e) => tracing::warn!("unreadable cluster notice: {e}"),
                },
                Ok(None) => {
                    // The connection was lost and is re-established by the next call;
                    // notices sent meanwhile are lost (a running cancel waits with a bound,
                    // the pull interval and the lease check catch up).
                    tracing::warn!("cluster notices: connection lost, reconnecting");
                }
                Err(e) => {
                    tracing::warn!("cluster notices: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }))
}

/// Raises [`OUTBOX_CHANNEL`] when this replica wrote events ([`Cluster::outbox_written`]), at
/// most once every [`OUTBOX_SIGNAL_EVERY`] (a signal meanwhile is kept for the next), until
/// `stop`. The leader's worker is signalled in memory, so it never raises it.
pub(super) async fn outbox_signaller(cluster: Arc<Cluster>, pool: PgPool, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = cluster.outbox_written.notified() => {}
        }
        if !cluster.is_leader() {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                .bind(OUTBOX_CHANNEL)
                .execute(&pool)
                .await
            {
                // The leader's rescan finds the events within a second.
                tracing::debug!("cannot tell the leader of new events: {e}");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(OUTBOX_SIGNAL_EVERY) => {}
        }
    }
}

/// Publishes a [`Notice::Queued`] when this replica queued tasks it cannot start at once, at
/// most once every [`QUEUED_SIGNAL_EVERY`] (tasks queued meanwhile ride on the next).
pub(super) async fn queued_signaller(cluster: Arc<Cluster>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = cluster.tasks_queued.notified() => {}
        }
        cluster.publish(Notice::Queued {
            from: cluster.id().to_owned(),
        });
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(QUEUED_SIGNAL_EVERY) => {}
        }
    }
}

/// Sends queued notices in order, each batch in one statement, until `stop`.
pub(super) async fn publisher(
    cluster: Arc<Cluster>,
    pool: PgPool,
    mut queue: mpsc::UnboundedReceiver<Notice>,
    stop: CancellationToken,
) {
    let _ = &cluster;
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            next = queue.recv() => match next {
                Some(n) => n,
                None => break,
            },
        };
        batch.clear();
        push(&mut batch, first);
        while batch.len() < 256 {
            match queue.try_recv() {
                Ok(n) => push(&mut batch, n),
                Err(_) => break,
            }
        }
        let mut attempt = 0;
        while let Err(e) = send(&pool, &batch).await {
            attempt += 1;
            if attempt >= 3 {
                tracing::warn!(count = batch.len(), "cannot send cluster notices: {e}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
    }
}

/// Appends `notice` in wire form, cut into pieces when it is long output.
fn push(batch: &mut Vec<String>, notice: Notice) {
    let mut one = |notice: Notice| {
        let wire = Wire {
            seq: SEQ.fetch_add(1, Ordering::Relaxed),
            notice,
        };
        if let Ok(json) = serde_json::to_string(&wire) {
            batch.push(json);
        }
    };
    match notice {
        Notice::Output { from, task, text } if text.len() > OUTPUT_PIECE => {
            for piece in pieces(&text) {
                one(Notice::Output {
                    from: from.clone(),
                    task: task.clone(),
                    text: piece.to_owned(),
                });
            }
        }
        Notice::Replay {
            from,
            to,
            task,
            status,
            text,
            ..
        } if text.len() > OUTPUT_PIECE => {
            for (part, piece) in pieces(&text).enumerate() {
                one(Notice::Replay {
                    from: from.clone(),
                    to: to.clone(),
                    task: task.clone(),
                    status,
                    text: piece.to_owned(),
                    part: u32::try_from(part).unwrap_or(u32::MAX),
                });
            }
        }
        notice => one(notice),
    }
}

/// `text` in pieces of at most [`OUTPUT_PIECE`] bytes, cut on character boundaries.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(OUTPUT_PIECE);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, after) = rest.split_at(end);
        rest = after;
        Some(piece)
    })
}

async fn send(pool: &PgPool, batch: &[String]) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT pg_notify($1, p) FROM UNNEST($2::TEXT[]) WITH ORDINALITY AS u(p, i) ORDER BY i",
    )
    .bind(CHANNEL)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_output_is_cut_on_char_boundaries_below_the_payload_limit() {
        let text = "é".repeat(5000);
        let mut batch = Vec::new();
        push(
            &mut batch,
            Notice::Output {
                from: "r".into(),
                task: "t".into(),
                text: text.clone(),
            },
        );
        assert!(batch.len() > 1);
        let mut joined = String::new();
        for json in &batch {
            assert!(json.len() < 8000, "{}", json.len());
            let wire: Wire = serde_json::from_str(json).unwrap();
            match wire.notice {
                Notice::Output { text, .. } => joined.push_str(&text),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn a_long_replay_comes_in_numbered_parts() {
        let text = "x".repeat(3000);
        let mut batch = Vec::new();
        push(
            &mut batch,
            Notice::Replay {
                from: "a".into(),
                to: "b".into(),
                task: "t".into(),
                status: TaskStatus::Running,
                text: text.clone(),
                part: 0,
            },
        );
        let mut joined = String::new();
        for (i, json) in batch.iter().enumerate() {
            let wire: Wire = serde_json::from_str(json).unwrap();
            match wire.notice {
                Notice::Replay { text, part, to, .. } => {
                    assert_eq!((part as usize, to.as_str()), (i, "b"));
                    joined.push_str(&text);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((batch.len(), joined), (3, text));
    }
}
