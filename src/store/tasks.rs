//! The `tasks` table: the durable queue and the record of every task (status, timestamps,
//! output, changed files, usage). Status changes that raise events write them to the outbox
//! in the same transaction. The `status` column holds [`TaskStatus`] names as TEXT.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::{outbox, Db, Store, StoreError, Tx};
use crate::events::Event;
use crate::tasks::TaskStatus;

text_column!(TaskStatus);

/// Columns of a task, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub seq: i64,
    pub id: String,
    pub status: TaskStatus,
    pub prompt: String,
    /// The request's `options`, JSON.
    pub options: String,
    pub model: String,
    pub max_tokens: i64,
    pub working_directory: Option<String>,
    pub timeout_seconds: i64,
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub output: Option<String>,
    /// Changed files, JSON array of `{path, change}`.
    pub files: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// The Schedule that started the task, if one did.
    pub schedule: Option<String>,
    /// The slot it started the task for (fixed-width RFC 3339); `None` for a manual run.
    pub schedule_slot: Option<String>,
}

macro_rules! qualified_columns {
    () => {
        "tasks.seq, tasks.id, tasks.status, tasks.prompt, tasks.options, tasks.model, tasks.max_tokens, \
         tasks.working_directory, tasks.timeout_seconds, tasks.created_by, tasks.created_at, tasks.started_at, \
         tasks.completed_at, tasks.duration_ms, tasks.error, tasks.output, tasks.files, tasks.input_tokens, \
         tasks.output_tokens, tasks.schedule, tasks.schedule_slot"
    };
}

macro_rules! columns {
    () => {
        "seq, id, status, prompt, options, model, max_tokens, working_directory, timeout_seconds, \
         created_by, created_at, started_at, completed_at, duration_ms, error, output, files, input_tokens, output_tokens, \
         schedule, schedule_slot"
    };
}

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub id: &'a str,
    pub prompt: &'a str,
    pub options: &'a str,
    pub model: &'a str,
    pub max_tokens: i64,
    pub working_directory: Option<&'a str>,
    pub timeout_seconds: i64,
    pub created_by: &'a str,
    pub created_at: &'a str,
}

/// A write transaction that holds the write lock from its `BEGIN`. Writes to `tasks` fire the
/// triggers that keep the FTS5 search indexes, and FTS5 reads its shadow tables before the
/// statement asks for the write lock; a deferred transaction would then have to upgrade a read
/// to a write, which SQLite refuses at once with "database is locked" when another connection
/// is writing (the busy timeout does not apply), and a finished task would stay `running`.
pub(super) async fn begin_write(store: &Store) -> Result<Tx, StoreError> {
    store.begin_write().await
}

/// The insert of [`NewTask`] `$t` with `$status` for engine `$engine`, started by `$schedule`
/// (the Schedule and slot, if one did); it returns the task's `seq`.
macro_rules! insert_query {
    ($engine:ty, $t:expr, $status:expr, $schedule:expr) => {{
        let (t, schedule): (&NewTask<'_>, Option<(&str, Option<&str>)>) = ($t, $schedule);
        sqlx::query_scalar::<$engine, i64>(
            "INSERT INTO tasks (id, status, prompt, options, model, max_tokens, working_directory, timeout_seconds, created_by, created_at, schedule, schedule_slot)
             VALUES ($1, $10, $2, $3, $4, $5, $6, $7, $8, $9, $11, $12) RETURNING seq",
        )
        .bind(t.id)
        .bind(t.prompt)
        .bind(t.options)
        .bind(t.model)
        .bind(t.max_tokens)
        .bind(t.working_directory)
        .bind(t.timeout_seconds)
        .bind(t.created_by)
        .bind(t.created_at)
        .bind($status)
        .bind(schedule.map(|s| s.0))
        .bind(schedule.and_then(|s| s.1))
    }};
}

/// Enqueues a task; its `seq`. On PostgreSQL the insert is one statement committed on its
/// own (a transaction around it would add two round trips per task); SQLite takes the write
/// lock from its `BEGIN` (see [`begin_write`]).
pub async fn insert(store: &Store, t: &NewTask<'_>) -> Result<i64, StoreError> {
    if let Db::Postgres(pool) = store.db() {
        return Ok(insert_query!(sqlx::Postgres, t, TaskStatus::Queued, None)
            .fetch_one(pool)
            .await?);
    }
    let mut tx = begin_write(store).await?;
    let seq = insert_in(&mut tx, t, None).await?;
    tx.commit().await?;
    Ok(seq)
}

/// Enqueues a task inside the caller's write transaction (begun with [`begin_write`]);
/// `schedule` names the Schedule and slot that started it. Returns the task's `seq`.
pub(super) async fn insert_in(
    tx: &mut Tx,
    t: &NewTask<'_>,
    schedule: Option<(&str, Option<&str>)>,
) -> Result<i64, StoreError> {
    Ok(with_tx!(&mut *tx, conn => {
        insert_query!(Engine, t, TaskStatus::Queued, schedule)
            .fetch_one(conn)
            .await?
    }))
}

/// One task by id.
pub async fn get(store: &Store, id: &str) -> Result<Option<TaskRow>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_as::<_, TaskRow>(concat!("SELECT ", columns!(), " FROM tasks WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?
    }))
}

/// What `GET /tasks` filters by.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Any of these statuses (empty: all).
    pub statuses: Vec<TaskStatus>,
    /// RFC 3339 UTC in the stored format (see `timestamp`), exclusive bounds.
    pub created_after: Option<String>,
    pub created_before: Option<String>,
    /// Substring of the prompt, case-insensitive.
    pub q: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The FTS5 phrase for `q` when the trigram index can answer it (three characters or more):
/// a quoted phrase matches any substring, case-insensitively; inside quotes only `"` is
/// special (doubled).
fn phrase(q: &str) -> Option<String> {
    (q.chars().count() >= 3).then(|| format!("\"{}\"", q.replace('"', "\"\"")))
}

/// The prompt search indexes (migration 0004), one per status group, with the statuses each
/// holds: a search filtered by status reads only the indexes of those statuses.
const SEARCH_INDEXES: [(&str, &[TaskStatus]); 4] = [
    (
        "tasks_fts_active",
        &[TaskStatus::Queued, TaskStatus::Running],
    ),
    ("tasks_fts_completed", &[TaskStatus::Completed]),
    ("tasks_fts_failed", &[TaskStatus::Failed]),
    ("tasks_fts_cancelled", &[TaskStatus::Cancelled]),
];

fn push_statuses<DB>(qb: &mut QueryBuilder<DB>, statuses: &[TaskStatus])
where
    DB: sqlx::Database,
    TaskStatus: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    qb.push(" AND tasks.status IN (");
    let mut sep = qb.separated(", ");
    for s in statuses {
        sep.push_bind(*s);
    }
    qb.push(")");
}

fn push_dates<DB>(qb: &mut QueryBuilder<DB>, f: &Filter)
where
    DB: sqlx::Database,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    if let Some(after) = &f.created_after {
        qb.push(" AND tasks.created_at > ").push_bind(after.clone());
    }
    if let Some(before) = &f.created_before {
        qb.push(" AND tasks.created_at < ")
            .push_bind(before.clone());
    }
}

/// `WHERE` for a list without a search index: every filter checked on the row.
fn push_where(qb: &mut QueryBuilder<Sqlite>, f: &Filter) {
    qb.push(" WHERE 1 = 1");
    if let Some(q) = &f.q {
        qb.push(" AND instr(lower(tasks.prompt), lower(")
            .push_bind(q.clone())
            .push(")) > 0");
    }
    if !f.statuses.is_empty() {
        push_statuses(qb, &f.statuses);
    }
    push_dates(qb, f);
}

/// One search index's part of a search: `FROM` and `WHERE`, reading the task rows only when a
/// filter needs them (dates, or one status of a group that holds two).
fn push_search_arm(
    qb: &mut QueryBuilder<Sqlite>,
    index: &str,
    check_status: bool,
    f: &Filter,
    phrase: &str,
) {
    qb.push(" FROM ").push(index);
    let dates = f.created_after.is_some() || f.created_before.is_some();
    if check_status || dates {
        qb.push(" CROSS JOIN tasks ON tasks.seq = ")
            .push(index)
            .push(".rowid");
    }
    qb.push(" WHERE ")
        .push(index)
        .push(" MATCH ")
        .push_bind(phrase.to_owned());
    if check_status {
        push_statuses(qb, &f.statuses);
    }
    push_dates(qb, f);
}

/// The `ILIKE` pattern for `q`: any substring, with `%`, `_` and the escape character (a
/// backslash) taken literally.
fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// PostgreSQL's `WHERE`: the prompt search is `ILIKE` (case-insensitive substring, answered
/// by the `pg_trgm` GIN index from three characters on), the other filters on the row.
fn push_where_pg(qb: &mut QueryBuilder<Postgres>, f: &Filter) {
    qb.push(" WHERE TRUE");
    if let Some(q) = &f.q {
        qb.push(" AND tasks.prompt ILIKE ")
            .push_bind(like_pattern(q))
            // An E'' literal: one backslash whatever `standard_conforming_strings` says.
            .push(" ESCAPE E'\\\\'");
    }
    if !f.statuses.is_empty() {
        push_statuses(qb, &f.statuses);
    }
    push_dates(qb, f);
}

/// How many list totals a store keeps: distinct filters asked again (a dashboard's searches),
/// not every filter ever asked.
const LIST_TOTALS_KEPT: usize = 256;

/// Totals of recent SQLite task lists by filter, each with the `tasks_generation` (migration
/// 0011) it was counted at. A filter asked again while the generation has not moved reuses
/// its total: exact, because every change a filter can see moves the generation, and the
/// generation and the count are read in one statement. Counting costs a walk over every match
/// (a common search term matches tens of thousands of tasks); the page does not.
#[derive(Debug, Default)]
pub(crate) struct ListTotals(Mutex<HashMap<String, (i64, i64)>>);

impl ListTotals {
    fn get(&self, key: &str) -> Option<(i64, i64)> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    fn put(&self, key: String, generation: i64, total: i64) {
        let mut totals = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if totals.len() >= LIST_TOTALS_KEPT && !totals.contains_key(&key) {
            // Totals of an older generation can never be reused.
            totals.retain(|_, (g, _)| *g == generation);
            if totals.len() >= LIST_TOTALS_KEPT {
                totals.clear();
            }
        }
        totals.insert(key, (generation, total));
    }
}

/// What a list's total depends on: every filter but the page.
fn total_key(f: &Filter) -> String {
    format!(
        "{:?}",
        (&f.q, &f.statuses, &f.created_after, &f.created_before)
    )
}

/// A page of tasks, newest first, and how many match in all. The count and the page run at
/// once, on two pooled connections. On SQLite a search is answered by the trigram indexes of
/// the statuses asked for, each yielding its matches newest first; the page merges them; the
/// count is skipped when the filter's total is kept from a request made since the tasks last
/// changed ([`ListTotals`]). On PostgreSQL by the trigram GIN index on `prompt`: the same
/// matches, the same order.
pub async fn list(store: &Store, f: &Filter) -> Result<(Vec<TaskRow>, i64), StoreError> {
    let pool = match store.db() {
        Db::Sqlite(pool) => pool,
        Db::Postgres(pool) => {
            let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM tasks");
            push_where_pg(&mut count, f);
            let mut page = QueryBuilder::<Postgres>::new(concat!(
                "SELECT ",
                qualified_columns!(),
                " FROM tasks"
            ));
            push_where_pg(&mut page, f);
            page.push(" ORDER BY tasks.seq DESC LIMIT ")
                .push_bind(f.limit)
                .push(" OFFSET ")
                .push_bind(f.offset);
            let total = count.build_query_scalar::<i64>().fetch_one(pool);
            let rows = page.build_query_as::<TaskRow>().fetch_all(pool);
            let (total, rows) = tokio::try_join!(total, rows)?;
            return Ok((rows, total));
        }
    };
    let key = total_key(f);
    let kept = store.list_totals.get(&key);
    // The generation, and the count only when the kept total is not of that generation
    // (SQLite evaluates a subquery in a CASE branch only when the branch is taken).
    let mut count = QueryBuilder::<Sqlite>::new("SELECT n, CASE WHEN ");
    match kept {
        Some((generation, _)) => count.push("n = ").push_bind(generation),
        None => count.push("0"),
    };
    count.push(" THEN NULL ELSE (");
    let mut page = match f.q.as_deref().and_then(phrase) {
        Some(phrase) => {
            let arms: Vec<(&str, bool)> = SEARCH_INDEXES
                .iter()
                .filter_map(|(index, held)| {
                    if f.statuses.is_empty() {
                        return Some((*index, false));
                    }
                    let wanted = held.iter().filter(|s| f.statuses.contains(s));
                    match wanted.count() {
                        0 => None,
                        n => Some((*index, n < held.len())),
                    }
                })
                .collect();
            if arms.is_empty() {
                return Ok((Vec::new(), 0));
            }
            count.push("SELECT 0");
            for (index, check_status) in &arms {
                count.push(" + (SELECT COUNT(*)");
                push_search_arm(&mut count, index, *check_status, f, &phrase);
                count.push(")");
            }
            let mut page =
                QueryBuilder::<Sqlite>::new(concat!("SELECT ", qualified_columns!(), " FROM ("));
            for (i, (index, check_status)) in arms.iter().enumerate() {
                if i > 0 {
                    page.push(" UNION ALL");
                }
                page.push(" SELECT ").push(index).push(".rowid AS seq");
                push_search_arm(&mut page, index, *check_status, f, &phrase);
            }
            page.push(" ORDER BY 1 DESC LIMIT ")
                .push_bind(f.limit)
                .push(" OFFSET ")
                .push_bind(f.offset)
                .push(") AS m CROSS JOIN tasks ON tasks.seq = m.seq ORDER BY m.seq DESC");
            page
        }
        None => {
            count.push("SELECT COUNT(*) FROM tasks");
            push_where(&mut count, f);
            let mut page = QueryBuilder::<Sqlite>::new(concat!(
                "SELECT ",
                qualified_columns!(),
                " FROM tasks"
            ));
            push_where(&mut page, f);
            page.push(" ORDER BY tasks.seq DESC LIMIT ")
                .push_bind(f.limit)
                .push(" OFFSET ")
                .push_bind(f.offset);
            page
        }
    };
    count.push(") END FROM tasks_generation");
    let total = count.build_query_as::<(i64, Option<i64>)>().fetch_one(pool);
    let rows = page.build_query_as::<TaskRow>().fetch_all(pool);
    let ((generation, counted), rows) = tokio::try_join!(total, rows)?;
    let total = match (counted, kept) {
        (Some(total), _) => {
            store.list_totals.put(key, generation, total);
            total
        }
        (None, Some((_, total))) => total,
        (None, None) => unreachable!("counted unless a kept total's generation matched"),
    };
    Ok((rows, total))
}

/// Takes up to `n` of the oldest queued tasks for this replica and marks them running (with
/// the replica's id in `replica`), each with its `task.started` event; oldest first. On
/// PostgreSQL a queued task is claimed by exactly one replica: the rows are locked as they are
/// picked and rows another replica is picking are skipped (`FOR UPDATE SKIP LOCKED`).
pub async fn claim(
    store: &Store,
    now: &str,
    n: i64,
    event: impl Fn(&TaskRow) -> Event,
) -> Result<Vec<TaskRow>, StoreError> {
    macro_rules! claim {
        ($lock:literal) => {
            concat!(
                "UPDATE tasks SET status = $2, started_at = $1, replica = $5
                 WHERE seq IN (SELECT seq FROM tasks WHERE status = $3 ORDER BY seq LIMIT $4",
                $lock,
                ") RETURNING ",
                columns!()
            )
        };
    }
    let sql = match store.db() {
        Db::Sqlite(_) => claim!(""),
        Db::Postgres(_) => claim!(" FOR UPDATE SKIP LOCKED"),
    };
    let mut tx = begin_write(store).await?;
    let mut rows = with_tx!(&mut tx, conn => {
        sqlx::query_as::<_, TaskRow>(sql)
            .bind(now)
            .bind(TaskStatus::Running)
            .bind(TaskStatus::Queued)
            .bind(n)
            .bind(store.replica_id())
            .fetch_all(conn)
            .await?
    });
    rows.sort_by_key(|r| r.seq);
    for row in &rows {
        outbox::insert(&mut tx, &event(row)).await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// Takes the oldest queued task and marks it running, with its `task.started` event.
pub async fn claim_next(
    store: &Store,
    now: &str,
    event: impl Fn(&TaskRow) -> Event,
) -> Result<Option<TaskRow>, StoreError> {
    Ok(claim(store, now, 1, event).await?.pop())
}

/// How a task ended.
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    pub status: TaskStatus,
    pub completed_at: &'a str,
    pub duration_ms: i64,
    pub error: Option<&'a str>,
    pub output: &'a str,
    pub files: &'a str,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// Records the end of a running task with its event; false if it was not running.
pub async fn finish(
    store: &Store,
    id: &str,
    f: &Finish<'_>,
    event: Option<&Event>,
) -> Result<bool, StoreError> {
    macro_rules! update {
        () => {
            "UPDATE tasks SET status = $2, completed_at = $3, duration_ms = $4, error = $5, output = $6, files = $7,
                    input_tokens = $8, output_tokens = $9
             WHERE id = $1 AND status = $10"
        };
    }
    macro_rules! finish_query {
        ($sql:expr) => {
            sqlx::query($sql)
                .bind(id)
                .bind(f.status)
                .bind(f.completed_at)
                .bind(f.duration_ms)
                .bind(f.error)
                .bind(f.output)
                .bind(f.files)
                .bind(f.input_tokens)
                .bind(f.output_tokens)
                .bind(TaskStatus::Running)
        };
    }
    // PostgreSQL: one statement, the event written by the update's own CTE (a transaction
    // around two statements costs three more round trips per task); it inserts the event only
    // when the update found the task running, so its count says whether it did.
    if let Db::Postgres(pool) = store.db() {
        let done = match event {
            Some(event) => finish_query!(concat!(
                "WITH done AS (",
                update!(),
                " RETURNING 1)
                 INSERT INTO outbox (id, event, payload, created_at) SELECT $11, $12, $13, $14 FROM done"
            ))
            .bind(&event.id)
            .bind(event.event.as_str())
            .bind(&event.payload)
            .bind(&event.created_at)
            .execute(pool)
            .await?,
            None => finish_query!(update!()).execute(pool).await?,
        };
        return Ok(done.rows_affected() == 1);
    }
    let mut tx = begin_write(store).await?;
    let done = with_tx!(&mut tx, conn => {
        finish_query!(update!()).execute(conn).await?.rows_affected()
    }) == 1;
    if done {
        if let Some(event) = event {
            outbox::insert(&mut tx, event).await?;
        }
    }
    tx.commit().await?;
    Ok(done)
}

/// Cancels a task that has not started; false if it is not queued (any more).
pub async fn cancel_queued(
    store: &Store,
    id: &str,
    now: &str,
    error: &str,
    event: &Event,
) -> Result<bool, StoreError> {
    let mut tx = begin_write(store).await?;
    let done = with_tx!(&mut tx, conn => {
        sqlx::query(
            "UPDATE tasks SET status = $4, completed_at = $2, duration_ms = 0, error = $3
             WHERE id = $1 AND status = $5",
        )
        .bind(id)
        .bind(now)
        .bind(error)
        .bind(TaskStatus::Cancelled)
        .bind(TaskStatus::Queued)
        .execute(conn)
        .await?
        .rows_affected()
    }) == 1;
    if done {
        outbox::insert(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(done)
}

/// Marks every task left `running` by a previous process as failed, with a `task.failed`
/// event each; returns their ids.
pub async fn fail_orphans(
    store: &Store,
    now: &str,
    error: &str,
    event: impl Fn(&TaskRow) -> Event,
) -> Result<Vec<String>, StoreError> {
    let mut tx = begin_write(store).await?;
    let running: Vec<(String, Option<String>)> = with_tx!(&mut tx, conn => {
        sqlx::query_as("SELECT id, started_at FROM tasks WHERE status = $1 ORDER BY seq")
            .bind(TaskStatus::Running)
            .fetch_all(conn)
            .await?
    });
    let end = parse_time(now);
    let mut rows = Vec::with_capacity(running.len());
    for (id, started_at) in running {
        let duration_ms = match (started_at.as_deref().and_then(parse_time), end) {
            (Some(start), Some(end)) => Some(((end - start).whole_milliseconds()) as i64),
            _ => None,
        };
        let row = with_tx!(&mut tx, conn => {
            sqlx::query_as::<_, TaskRow>(concat!(
                "UPDATE tasks SET status = $3, completed_at = $1, error = $2, duration_ms = $5
                 WHERE id = $6 AND status = $4 RETURNING ",
                columns!()
            ))
            .bind(now)
            .bind(error)
            .bind(TaskStatus::Failed)
            .bind(TaskStatus::Running)
            .bind(duration_ms)
            .bind(&id)
            .fetch_optional(conn)
            .await?
        });
        if let Some(row) = row {
            outbox::insert(&mut tx, &event(&row)).await?;
            rows.push(row);
        }
    }
    tx.commit().await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Number of tasks per status.
pub async fn counts(store: &Store) -> Result<Vec<(TaskStatus, i64)>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_as("SELECT status, COUNT(*) FROM tasks GROUP BY status")
            .fetch_all(pool)
            .await?
    }))
}

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Adds tasks with `status` (one each; tests and benchmarks add many at once).
pub async fn insert_many(
    tx: &mut Tx,
    rows: &[NewTask<'_>],
    status: TaskStatus,
) -> Result<(), StoreError> {
    for t in rows {
        with_tx!(&mut *tx, conn => {
            insert_query!(Engine, t, status, None).fetch_one(conn).await?;
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_sql;

    /// A store of each engine holding tasks `task_0`, `task_1`, … with these prompts.
    async fn store_with(prompts: &[&str]) -> Vec<(test_sql::Guard, Store)> {
        let stores = test_sql::stores().await;
        for (_, store) in &stores {
            for (i, p) in prompts.iter().enumerate() {
                let id = format!("task_{i}");
                insert(store, &new_task(&id, p)).await.unwrap();
            }
        }
        stores
    }

    async fn total(store: &Store, q: &str) -> i64 {
        let f = Filter {
            q: Some(q.to_owned()),
            limit: 10,
            ..Filter::default()
        };
        list(store, &f).await.unwrap().1
    }

    #[tokio::test]
    async fn q_matches_any_substring_case_insensitively_with_special_characters_literal() {
        for (_dir, store) in store_with(&[
            "Alpha again \"quoted\" 100%_x",
            "beta report",
            "Ünïcode prompt",
        ])
        .await
        {
            assert_eq!(total(&store, "quoted").await, 1);
            assert_eq!(total(&store, "\"quoted\"").await, 1);
            assert_eq!(total(&store, "100%_").await, 1);
            assert_eq!(total(&store, "ALPHA").await, 1);
            assert_eq!(total(&store, "report").await, 1);
            assert_eq!(total(&store, "ep").await, 1);
            assert_eq!(total(&store, "%_").await, 1);
            assert_eq!(total(&store, "nïc").await, 1);
            assert_eq!(total(&store, "absent").await, 0);
        }
    }

    async fn search(store: &Store, q: &str, statuses: &[&str]) -> Vec<String> {
        let f = Filter {
            q: Some(q.to_owned()),
            statuses: statuses.iter().map(|s| s.parse().unwrap()).collect(),
            limit: 10,
            ..Filter::default()
        };
        let (rows, total) = list(store, &f).await.unwrap();
        assert_eq!(rows.len() as i64, total, "{q} {statuses:?}");
        rows.into_iter().map(|r| r.id).collect()
    }

    async fn set_status(store: &Store, id: &str, status: &str) {
        let sql = format!("UPDATE tasks SET status = '{status}' WHERE id = '{id}'");
        test_sql::exec(store, &sql).await;
    }

    fn new_task<'a>(id: &'a str, prompt: &'a str) -> NewTask<'a> {
        NewTask {
            id,
            prompt,
            options: "{}",
            model: "m",
            max_tokens: 1,
            working_directory: None,
            timeout_seconds: 1,
            created_by: "t",
            created_at: "2026-01-01T00:00:00.000Z",
        }
    }

    #[tokio::test]
    async fn a_filter_asked_again_has_the_total_of_the_tasks_as_they_are_now() {
        for (_dir, store) in store_with(&["deploy api", "deploy web", "audit"]).await {
            let all = |store| async move {
                let f = Filter {
                    limit: 10,
                    ..Filter::default()
                };
                list(store, &f).await.unwrap().1
            };
            for _ in 0..2 {
                assert_eq!(total(&store, "deploy").await, 2);
                assert_eq!(search(&store, "deploy", &["queued"]).await.len(), 2);
                assert_eq!(all(&store).await, 3);
            }
            insert(&store, &new_task("task_3", "deploy db"))
                .await
                .unwrap();
            assert_eq!(total(&store, "deploy").await, 3);
            assert_eq!(all(&store).await, 4);
            set_status(&store, "task_0", "failed").await;
            assert_eq!(
                search(&store, "deploy", &["queued"]).await,
                ["task_3", "task_1"]
            );
            assert_eq!(search(&store, "deploy", &["failed"]).await, ["task_0"]);
            test_sql::exec(&store, "DELETE FROM tasks WHERE id = 'task_1'").await;
            assert_eq!(total(&store, "deploy").await, 2);
            assert_eq!(search(&store, "deploy", &["queued"]).await, ["task_3"]);
            assert_eq!(all(&store).await, 3);
        }
    }

    #[tokio::test]
    async fn sqlite_reuses_a_filters_total_until_any_task_changes() {
        let (_dir, store) = store_with(&["deploy api", "deploy web", "audit"])
            .await
            .swap_remove(0);
        assert!(matches!(store.db(), Db::Sqlite(_)));
        assert_eq!(total(&store, "deploy").await, 2);
        // Emptying the search index behind the store's back changes no task: the kept total
        // is answered, though the page (read from the index) is now empty.
        test_sql::exec(
            &store,
            "INSERT INTO tasks_fts_active (tasks_fts_active) VALUES ('delete-all')",
        )
        .await;
        assert_eq!(total(&store, "deploy").await, 2);
        // Any change to a task, even one the filter does not match, counts again.
        set_status(&store, "task_2", "running").await;
        assert_eq!(total(&store, "deploy").await, 0);
    }

    #[test]
    fn every_status_has_exactly_one_search_index() {
        for status in TaskStatus::ALL {
            let holding = SEARCH_INDEXES
                .iter()
                .filter(|(_, held)| held.contains(&status))
                .count();
            assert_eq!(holding, 1, "{status}");
        }
    }

    #[tokio::test]
    async fn statuses_are_stored_as_their_names() {
        for (_dir, store) in store_with(&["one"]).await {
            for status in TaskStatus::ALL {
                set_status(&store, "task_0", status.as_str()).await;
                assert_eq!(get(&store, "task_0").await.unwrap().unwrap().status, status);
                assert_eq!(counts(&store).await.unwrap(), [(status, 1)]);
            }
            let stored =
                test_sql::text(&store, "SELECT status FROM tasks WHERE id = 'task_0'").await;
            assert_eq!(stored, "cancelled");
            set_status(&store, "task_0", "lost").await;
            let e = get(&store, "task_0").await.unwrap_err().to_string();
            assert!(e.contains("status \"lost\" is not one of"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_search_finds_a_task_under_its_current_status_only() {
        for (_dir, store) in store_with(&["deploy api", "deploy web", "audit"]).await {
            assert_eq!(
                search(&store, "deploy", &["queued"]).await,
                ["task_1", "task_0"]
            );
            set_status(&store, "task_0", "running").await;
            assert_eq!(search(&store, "deploy", &["queued"]).await, ["task_1"]);
            assert_eq!(search(&store, "deploy", &["running"]).await, ["task_0"]);
            assert_eq!(
                search(&store, "deploy", &["queued", "running"]).await,
                ["task_1", "task_0"]
            );
            set_status(&store, "task_0", "completed").await;
            set_status(&store, "task_1", "cancelled").await;
            assert!(search(&store, "deploy", &["running", "queued"])
                .await
                .is_empty());
            assert_eq!(search(&store, "deploy", &["completed"]).await, ["task_0"]);
            assert_eq!(search(&store, "deploy", &["cancelled"]).await, ["task_1"]);
            assert!(search(&store, "deploy", &["failed"]).await.is_empty());
            assert_eq!(
                search(&store, "DEPLOY", &["failed", "cancelled", "completed"]).await,
                ["task_1", "task_0"]
            );
            assert_eq!(search(&store, "deploy", &[]).await, ["task_1", "task_0"]);
            // A removed task leaves its index.
            test_sql::exec(&store, "DELETE FROM tasks WHERE id = 'task_0'").await;
            assert_eq!(search(&store, "deploy", &[]).await, ["task_1"]);
            assert_eq!(search(&store, "audit", &[]).await, ["task_2"]);
        }
    }

    #[tokio::test]
    async fn upgrading_a_database_indexes_its_tasks_by_status() {
        let dir = tempfile::tempdir().unwrap();
        // The schema before migration 0004, with tasks in it.
        {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.path().join(crate::store::DB_FILE))
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            let mut migrator = sqlx::migrate!("./migrations/sqlite");
            migrator.migrations = migrator
                .migrations
                .iter()
                .filter(|m| m.version < 4)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            migrator.run(&pool).await.unwrap();
            for (i, status) in ["completed", "queued", "failed"].iter().enumerate() {
                sqlx::query(
                    "INSERT INTO tasks (id, status, prompt, options, model, max_tokens, timeout_seconds, created_by, created_at)
                     VALUES ($1, $2, 'deploy it', '{}', 'm', 1, 1, 't', '2026-01-01T00:00:00.000Z')",
                )
                .bind(format!("task_{i}"))
                .bind(status)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let store = Store::open(dir.path()).await.unwrap();
        assert_eq!(
            search(&store, "deploy", &[]).await,
            ["task_2", "task_1", "task_0"]
        );
        assert_eq!(search(&store, "deploy", &["queued"]).await, ["task_1"]);
        assert_eq!(
            search(&store, "deploy", &["completed", "failed"]).await,
            ["task_2", "task_0"]
        );
    }

    #[tokio::test]
    async fn a_search_with_other_filters_pages_newest_first() {
        for (_dir, store) in
            store_with(&["deploy one", "other", "deploy two", "deploy three"]).await
        {
            let f = Filter {
                q: Some("deploy".into()),
                statuses: vec![TaskStatus::Queued],
                created_after: Some("2025-01-01T00:00:00.000Z".into()),
                limit: 2,
                offset: 0,
                ..Filter::default()
            };
            let (rows, total) = list(&store, &f).await.unwrap();
            assert_eq!(total, 3);
            let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids, vec!["task_3", "task_2"]);
            let f = Filter { offset: 2, ..f };
            assert_eq!(list(&store, &f).await.unwrap().0[0].id, "task_0");
            let none = Filter {
                statuses: vec![TaskStatus::Failed],
                q: Some("deploy".into()),
                limit: 5,
                ..Filter::default()
            };
            assert_eq!(list(&store, &none).await.unwrap().1, 0);
        }
    }

    /// The same searches give the same answers on both engines: SQLite's trigram FTS5 indexes
    /// (and `instr` under three characters) and PostgreSQL's `ILIKE` with its trigram index.
    #[tokio::test]
    async fn both_engines_answer_the_same_searches() {
        let prompts = [
            "Deploy the API to staging",
            "deploy web frontend",
            "Audit 100% of the logs_2026",
            "a\\b backslash path C:\\temp",
            "quote \"this\" and 'that'",
            "Ünïcode prompt with ümlauts",
            "DEPLOY again, loudly",
            "x",
            "under_score and per%cent",
            "nothing to see here",
        ];
        let statuses = ["queued", "running", "completed", "failed", "cancelled"];
        let stores = test_sql::stores().await;
        for (_, store) in &stores {
            let mut tx = store.begin().await.unwrap();
            for i in 0..60 {
                let id = format!("task_{i:03}");
                let created_at = format!("2026-01-{:02}T00:00:00.000Z", 1 + i % 28);
                let t = NewTask {
                    id: &id,
                    prompt: prompts[i % prompts.len()],
                    options: "{}",
                    model: "m",
                    max_tokens: 1,
                    working_directory: None,
                    timeout_seconds: 1,
                    created_by: "t",
                    created_at: &created_at,
                };
                let status = statuses[(i / 3) % statuses.len()].parse().unwrap();
                insert_many(&mut tx, &[t], status).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        let queries = [
            "deploy",
            "DEPLOY",
            "ploy",
            "api",
            "100%",
            "%",
            "_",
            "s_",
            "\\",
            "a\\b",
            "\"this\"",
            "'that'",
            "ünï",
            "ÜMLAUT",
            "x",
            "",
            "ep",
            "nothing to see here",
            "absent",
            "per%c",
        ];
        let status_sets: [&[&str]; 5] = [
            &[],
            &["queued"],
            &["queued", "running"],
            &["completed", "failed"],
            &["cancelled", "running", "completed"],
        ];
        let mut compared = 0;
        for q in queries {
            for set in status_sets {
                for (after, limit, offset) in [
                    (None, 100, 0),
                    (None, 3, 2),
                    (Some("2026-01-10T00:00:00.000Z"), 5, 0),
                ] {
                    let f = Filter {
                        statuses: set.iter().map(|s| s.parse().unwrap()).collect(),
                        created_after: after.map(str::to_owned),
                        q: Some(q.to_owned()),
                        limit,
                        offset,
                        ..Filter::default()
                    };
                    let mut answers = Vec::new();
                    for (_, store) in &stores {
                        let (rows, total) = list(store, &f).await.unwrap();
                        let ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
                        answers.push((ids, total));
                    }
                    for other in &answers[1..] {
                        assert_eq!(
                            &answers[0], other,
                            "q={q:?} statuses={set:?} after={after:?}"
                        );
                    }
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 300);
        // Not vacuous: the searches do find things, and not everything.
        let f = Filter {
            q: Some("deploy".into()),
            limit: 100,
            ..Filter::default()
        };
        assert_eq!(list(&stores[0].1, &f).await.unwrap().1, 18);
    }

    /// Claimers running at once (replicas, on PostgreSQL) take every queued task exactly once,
    /// oldest first within each claim, and record who took it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claims_take_each_queued_task_exactly_once() {
        let prompts: Vec<String> = (0..120).map(|i| format!("task {i}")).collect();
        let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        for (_guard, store) in store_with(&prompts).await {
            let claimers = (0..4).map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let rows = claim(&store, "2026-01-01T00:00:01.000Z", 7, |row| {
                            crate::events::task(
                                crate::events::EventType::TaskStarted,
                                &row.id,
                                &row.prompt,
                                TaskStatus::Running,
                                None,
                                None,
                            )
                        })
                        .await
                        .unwrap();
                        if rows.is_empty() {
                            return mine;
                        }
                        assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
                        assert!(rows.iter().all(|r| r.status == TaskStatus::Running));
                        mine.extend(rows.into_iter().map(|r| r.id));
                    }
                })
            });
            let mut all = Vec::new();
            for c in claimers.collect::<Vec<_>>() {
                all.extend(c.await.unwrap());
            }
            let unique: std::collections::HashSet<&String> = all.iter().collect();
            assert_eq!((all.len(), unique.len()), (120, 120));
            let sql = "SELECT COUNT(*) FROM tasks WHERE status = 'running' AND replica IS NOT NULL";
            assert_eq!(test_sql::int(&store, sql).await, 120);
            assert_eq!(
                test_sql::int(&store, "SELECT COUNT(*) FROM outbox").await,
                120
            );
        }
    }
}
