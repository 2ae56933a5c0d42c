//! The `schedules` and `schedule_runs` tables: each Schedule's applied spec and the runner's
//! cursor, and one row per slot handled. A slot is fired by the one caller whose compare-and-set
//! of the cursor succeeds and whose `INSERT … ON CONFLICT DO NOTHING` of the (schedule, slot)
//! row inserts it — in the same transaction as the task it starts — so each slot fires at most
//! once across restarts and replicas. Portable SQL (`$N`, `ON CONFLICT`), times as text.

use super::tasks::{begin_write, insert_in, NewTask};
use super::{Store, StoreError, Tx};
use crate::tasks::TaskStatus;

/// A schedule as the runner sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScheduleRow {
    pub name: String,
    /// The applied spec, JSON.
    pub spec: String,
    pub since: Option<String>,
    pub cursor: Option<String>,
    pub skipped: i64,
}

/// One handled slot, with its task's state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub slot: String,
    pub trigger: String,
    pub task_id: Option<String>,
    pub outcome: Option<String>,
    pub message: Option<String>,
    pub fired_at: String,
    pub task_status: Option<TaskStatus>,
    pub task_completed_at: Option<String>,
    pub task_duration_ms: Option<i64>,
    pub task_error: Option<String>,
}

/// Records the applied spec of `name` (the Schedule handler's fast part). A changed spec
/// restarts the clock: the runner sets `since` and `cursor` anew, so slots of the old spec
/// (or those passed while suspended) never fire.
pub async fn upsert(tx: &mut Tx, name: &str, spec: &str, now: &str) -> Result<(), StoreError> {
    with_tx!(&mut *tx, conn => { sqlx::query(
        "INSERT INTO schedules (name, spec, since, cursor, skipped, updated_at)
         VALUES ($1, $2, NULL, NULL, 0, $3)
         ON CONFLICT (name) DO UPDATE SET
             since = CASE WHEN schedules.spec = excluded.spec THEN schedules.since ELSE NULL END,
             cursor = CASE WHEN schedules.spec = excluded.spec THEN schedules.cursor ELSE NULL END,
             updated_at = CASE WHEN schedules.spec = excluded.spec THEN schedules.updated_at ELSE excluded.updated_at END,
             spec = excluded.spec",
    )
    .bind(name)
    .bind(spec)
    .bind(now)
    .execute(conn)
    .await?; });
    Ok(())
}

/// Removes a schedule and its run history (its tasks stay).
pub async fn delete(tx: &mut Tx, name: &str) -> Result<(), StoreError> {
    with_tx!(&mut *tx, conn => { sqlx::query("DELETE FROM schedule_runs WHERE schedule = $1")
        .bind(name)
        .execute(conn)
        .await?; });
    with_tx!(&mut *tx, conn => { sqlx::query("DELETE FROM schedules WHERE name = $1")
        .bind(name)
        .execute(conn)
        .await?; });
    Ok(())
}

/// Every schedule, by name.
pub async fn all(store: &Store) -> Result<Vec<ScheduleRow>, StoreError> {
    Ok(
        with_pool!(store, pool => sqlx::query_as("SELECT name, spec, since, cursor, skipped FROM schedules ORDER BY name")
            .fetch_all(pool)
            .await?),
    )
}

/// One schedule.
pub async fn get(store: &Store, name: &str) -> Result<Option<ScheduleRow>, StoreError> {
    Ok(
        with_pool!(store, pool => sqlx::query_as("SELECT name, spec, since, cursor, skipped FROM schedules WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?),
    )
}

/// Starts the clock of a spec the runner sees for the first time (only if `spec` is still the
/// applied one and nobody started it meanwhile).
pub async fn start_clock(
    store: &Store,
    name: &str,
    spec: &str,
    since: &str,
    cursor: &str,
) -> Result<bool, StoreError> {
    let done: u64 = with_pool!(store, pool => sqlx::query(
        "UPDATE schedules SET since = $3, cursor = $4
         WHERE name = $1 AND spec = $2 AND cursor IS NULL",
    )
    .bind(name)
    .bind(spec)
    .bind(since)
    .bind(cursor)
    .execute(pool)
    .await?
    .rows_affected());
    Ok(done == 1)
}

/// A run to record with a cursor move.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub slot: &'a str,
    pub trigger: &'a str,
    /// The task to start; `None` records the slot as not run, with `outcome` and `message`.
    pub task: Option<NewTask<'a>>,
    /// `skipped` (concurrency forbid) or `failed` (the task could not be made); `None` with
    /// a task (its status is the outcome).
    pub outcome: Option<&'a str>,
    pub message: Option<&'a str>,
    pub fired_at: &'a str,
}

/// Moves `name`'s cursor from `from` to `to` (compare-and-set: only if it is still `from` and
/// the spec is still `spec`), adds `skipped`, and records `run` if given — starting its task
/// only if this call inserted the (schedule, slot) row. Answers whether the cursor moved and
/// whether the run was recorded; nothing is written when the cursor had moved already.
pub async fn advance(
    store: &Store,
    name: &str,
    spec: &str,
    from: &str,
    to: &str,
    skipped: i64,
    run: Option<&NewRun<'_>>,
) -> Result<(bool, bool), StoreError> {
    let mut tx = begin_write(store).await?;
    let moved = with_tx!(&mut tx, conn => sqlx::query(
        "UPDATE schedules SET cursor = $4, skipped = skipped + $5
         WHERE name = $1 AND spec = $2 AND cursor = $3",
    )
    .bind(name)
    .bind(spec)
    .bind(from)
    .bind(to)
    .bind(skipped)
    .execute(conn)
    .await?
    .rows_affected())
        == 1;
    if !moved {
        drop(tx); // rolls back
        return Ok((false, false));
    }
    let recorded = match run {
        Some(run) => record_in(&mut tx, name, run).await?,
        None => false,
    };
    tx.commit().await?;
    Ok((true, recorded))
}

/// Records a run that moves no cursor (a manual run) with its task.
pub async fn record(store: &Store, name: &str, run: &NewRun<'_>) -> Result<bool, StoreError> {
    let mut tx = begin_write(store).await?;
    let recorded = record_in(&mut tx, name, run).await?;
    tx.commit().await?;
    Ok(recorded)
}

async fn record_in(tx: &mut Tx, name: &str, run: &NewRun<'_>) -> Result<bool, StoreError> {
    let inserted = with_tx!(&mut *tx, conn => sqlx::query(
        "INSERT INTO schedule_runs (schedule, slot, trigger, task_id, outcome, message, fired_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (schedule, slot) DO NOTHING",
    )
    .bind(name)
    .bind(run.slot)
    .bind(run.trigger)
    .bind(run.task.as_ref().map(|t| t.id))
    .bind(run.outcome)
    .bind(run.message)
    .bind(run.fired_at)
    .execute(conn)
    .await?
    .rows_affected())
        == 1;
    if inserted {
        if let Some(task) = &run.task {
            let slot = (run.trigger == "slot").then_some(run.slot);
            insert_in(tx, task, Some((name, slot))).await?;
        }
    }
    Ok(inserted)
}

/// The newest `limit` runs of `name`, newest first, with their tasks' state.
pub async fn runs(store: &Store, name: &str, limit: i64) -> Result<Vec<RunRow>, StoreError> {
    Ok(with_pool!(store, pool => sqlx::query_as(
        "SELECT r.slot, r.trigger, r.task_id, r.outcome, r.message, r.fired_at,
                t.status AS task_status, t.completed_at AS task_completed_at,
                t.duration_ms AS task_duration_ms, t.error AS task_error
         FROM schedule_runs r LEFT JOIN tasks t ON t.id = r.task_id
         WHERE r.schedule = $1
         ORDER BY r.fired_at DESC, r.slot DESC
         LIMIT $2",
    )
    .bind(name)
    .bind(limit)
    .fetch_all(pool)
    .await?))
}

/// Ids of `name`'s tasks that are queued or running.
pub async fn active_tasks(store: &Store, name: &str) -> Result<Vec<String>, StoreError> {
    Ok(with_pool!(store, pool => sqlx::query_scalar(
        "SELECT id FROM tasks WHERE schedule = $1 AND status IN ($2, $3) ORDER BY seq",
    )
    .bind(name)
    .bind(TaskStatus::Queued)
    .bind(TaskStatus::Running)
    .fetch_all(pool)
    .await?))
}

/// Keeps the newest `keep` runs of `name`. Older slots are behind the cursor, which only moves
/// forward, so forgetting their rows cannot fire them again.
pub async fn prune(store: &Store, name: &str, keep: i64) -> Result<(), StoreError> {
    with_pool!(store, pool => { sqlx::query(
        "DELETE FROM schedule_runs WHERE schedule = $1 AND slot NOT IN (
             SELECT slot FROM schedule_runs WHERE schedule = $1
             ORDER BY fired_at DESC, slot DESC LIMIT $2)",
    )
    .bind(name)
    .bind(keep)
    .execute(pool)
    .await?; });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task<'a>(id: &'a str) -> NewTask<'a> {
        NewTask {
            id,
            prompt: "p",
            options: "{}",
            model: "m",
            max_tokens: 1,
            working_directory: None,
            timeout_seconds: 1,
            created_by: "schedule:s",
            created_at: "2026-01-01T00:00:00.000Z",
        }
    }

    fn run<'a>(slot: &'a str, id: &'a str) -> NewRun<'a> {
        NewRun {
            slot,
            trigger: "slot",
            task: Some(task(id)),
            outcome: None,
            message: None,
            fired_at: slot,
        }
    }

    #[tokio::test]
    async fn a_slot_fires_once_whoever_fires_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let mut tx = store.begin_write().await.unwrap();
        upsert(&mut tx, "s", "{}", "t").await.unwrap();
        tx.commit().await.unwrap();
        let (t0, t1) = ("2026-01-01T00:00:00.000Z", "2026-01-01T00:01:00.000Z");
        assert!(start_clock(&store, "s", "{}", t0, t0).await.unwrap());
        assert!(!start_clock(&store, "s", "{}", t0, t0).await.unwrap());
        // Two runners that read the same cursor: one moves it and fires.
        let r = run(t1, "task_a");
        let first = advance(&store, "s", "{}", t0, t1, 0, Some(&r)).await;
        assert_eq!(first.unwrap(), (true, true));
        let r = run(t1, "task_b");
        let second = advance(&store, "s", "{}", t0, t1, 0, Some(&r)).await;
        assert_eq!(second.unwrap(), (false, false));
        // One whose cursor view is different still cannot fire the recorded slot again.
        let t2 = "2026-01-01T00:02:00.000Z";
        let r = run(t1, "task_c");
        let third = advance(&store, "s", "{}", t1, t2, 0, Some(&r)).await;
        assert_eq!(third.unwrap(), (true, false));
        let ids: Vec<String> = with_pool!(&store, pool => {
            sqlx::query_scalar("SELECT id FROM tasks ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap()
        });
        assert_eq!(ids, ["task_a"]);
        let runs = runs(&store, "s", 10).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].task_status, Some(TaskStatus::Queued));
        // A changed spec stops the old clock: the runner starts it anew.
        let mut tx = store.begin_write().await.unwrap();
        upsert(&mut tx, "s", "{\"x\":1}", "t").await.unwrap();
        tx.commit().await.unwrap();
        let row = get(&store, "s").await.unwrap().unwrap();
        assert_eq!((row.since, row.cursor), (None, None));
        store.close().await;
    }
}
