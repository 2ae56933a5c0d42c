//! The `deliveries` and `delivery_attempts` tables: one delivery per (endpoint, event), with
//! every attempt made, and the `cursors` row `outbox_fanout` marking how far the outbox has
//! been fanned out to deliveries.
//!
//! A delivery is `pending` (with the time of its next attempt), `delivered` or `failed`. Its id
//! (`dlv_…`) is sent as `X-OpenClaw-Delivery` and stays the same across retries, restarts and
//! redeliveries, so receivers can deduplicate. The dispatcher (`webhooks::dispatcher`) is the
//! only writer besides the API's redeliver / test-event calls.

use sqlx::QueryBuilder;
use time::OffsetDateTime;

use super::webhooks::EndpointRow;
use super::{Db, Store, StoreError, Tx};
use crate::events::{Event, Subscription};

/// The `cursors` row of the fan-out.
pub const FANOUT_CURSOR: &str = "outbox_fanout";

/// On PostgreSQL, the transaction part of the fan-out cursor (migration 0010): events are read
/// in `(tx, seq)` order, below the oldest transaction still running.
const FANOUT_TX_CURSOR: &str = "outbox_fanout_tx";

/// The events after the cursor `($1, $2)` that no running transaction can precede any more
/// (PostgreSQL; `tx` is the writer's transaction, migration 0010).
const AFTER_HORIZON: &str = "(tx, seq) > (CAST(CAST($1 AS TEXT) AS xid8), $2)
     AND tx < pg_snapshot_xmin(pg_current_snapshot())";

/// An event with its writer's transaction (PostgreSQL).
#[derive(sqlx::FromRow)]
struct HorizonEvent {
    #[sqlx(flatten)]
    event: super::outbox::StoredEvent,
    tx: i64,
}

/// Rows per multi-row statement: few round trips to SQLite, well under its limit of bound
/// parameters (32,766) at up to 8 parameters a row.
const ROWS_PER_STATEMENT: usize = 500;

/// How much of a response body an attempt keeps (20 KiB, cut at a character boundary).
pub const RESPONSE_BODY_LIMIT: usize = 20 * 1024;

/// Where a delivery is: `pending` (with the time of its next attempt), then `delivered` or
/// `failed`. Stored as its name (TEXT) and shown as such by the API.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    /// Every status, in the order metrics report them.
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];

    /// The stored and wire name, e.g. `pending`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a delivery status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delivery status \"{0}\" is not one of {names}", names = DeliveryStatus::ALL.map(DeliveryStatus::as_str).join(", "))]
pub struct UnknownDeliveryStatus(pub String);

impl std::str::FromStr for DeliveryStatus {
    type Err = UnknownDeliveryStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDeliveryStatus(s.to_owned()))
    }
}

text_column!(DeliveryStatus);

/// One delivery.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    /// `dlv_…`, stable across retries.
    pub id: String,
    /// The endpoint's (Webhook resource's) name.
    pub endpoint: String,
    /// The outbox event's id (`evt_…`).
    pub event_id: String,
    /// The event name, e.g. `task.completed`.
    pub event: String,
    /// The exact body sent.
    pub payload: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the next attempt is due (unix ms); meaningful while pending.
    pub next_attempt_at: i64,
    pub created_at: String,
    /// When it was delivered or given up.
    pub completed_at: Option<String>,
    /// HTTP status of the last attempt, if it got one.
    pub last_status: Option<i64>,
    /// Error of the last attempt, if it failed.
    pub last_error: Option<String>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: String,
    /// 1-based; continues across redeliveries.
    pub attempt: i64,
    pub at: String,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// The first 20 KiB of the response body.
    pub response_body: Option<String>,
}

/// What an attempt did to its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// 2xx: done.
    Delivered,
    /// Try again at this time (unix ms).
    Retry { at_ms: i64 },
    /// Given up (attempts exhausted, 410 Gone).
    Failed,
}

impl AttemptResult {
    /// The outcome names (metrics), in [`AttemptResult::index`] order.
    pub const OUTCOMES: [&'static str; 3] = ["delivered", "retry", "failed"];

    /// The position of its outcome in [`AttemptResult::OUTCOMES`].
    pub const fn index(self) -> usize {
        match self {
            AttemptResult::Delivered => 0,
            AttemptResult::Retry { .. } => 1,
            AttemptResult::Failed => 2,
        }
    }

    /// The outcome name: `delivered`, `retry` or `failed`.
    pub const fn outcome(self) -> &'static str {
        Self::OUTCOMES[self.index()]
    }

    /// The status it leaves its delivery in.
    pub const fn status(self) -> DeliveryStatus {
        match self {
            AttemptResult::Delivered => DeliveryStatus::Delivered,
            AttemptResult::Retry { .. } => DeliveryStatus::Pending,
            AttemptResult::Failed => DeliveryStatus::Failed,
        }
    }
}

/// One attempt to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    pub delivery_id: String,
    pub attempt: i64,
    /// When it was sent (unix ms).
    pub at_ms: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// The response body (cut to [`RESPONSE_BODY_LIMIT`] when stored).
    pub response_body: Option<String>,
    pub result: AttemptResult,
}

macro_rules! columns {
    () => {
        "id, endpoint, event_id, event, payload, status, attempts, next_attempt_at, created_at, \
         completed_at, last_status, last_error"
    };
}

/// Unix ms as RFC 3339 UTC with milliseconds (fixed width, so stored times sort as strings).
pub fn timestamp(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format).unwrap_or_default()
}

fn system_now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn new_id() -> String {
    format!("dlv_{}", uuid::Uuid::new_v4().simple())
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// [`fan_out_at`] stamped with the system time.
pub async fn fan_out(store: &Store, limit: i64) -> Result<usize, StoreError> {
    fan_out_at(store, limit, system_now_ms()).await
}

/// The fan-out cursor on PostgreSQL: (transaction, seq).
async fn horizon_cursor(
    conn: &mut sqlx::PgConnection,
    lock: bool,
) -> Result<(i64, i64), StoreError> {
    let sql = if lock {
        "SELECT name, value FROM cursors WHERE name IN ($1, $2) ORDER BY name FOR UPDATE"
    } else {
        "SELECT name, value FROM cursors WHERE name IN ($1, $2)"
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(sql)
        .bind(FANOUT_CURSOR)
        .bind(FANOUT_TX_CURSOR)
        .fetch_all(conn)
        .await?;
    let value = |name: &str| rows.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
    Ok((value(FANOUT_TX_CURSOR), value(FANOUT_CURSOR)))
}

/// Reads (in the fan-out's transaction) up to `limit` events after the cursor, locking it.
/// Generic over the connection type so `with_tx!`'s SQLite arm type-checks; only called with
/// a PostgreSQL connection.
async fn fanout_read_pg<C>(
    conn: &mut C,
    limit: i64,
    found: &mut Vec<HorizonEvent>,
) -> Result<(), StoreError>
where
    C: AsPg,
{
    let Some(conn) = conn.as_pg() else {
        return Ok(());
    };
    let (tx, seq) = horizon_cursor(conn, true).await?;
    *found = sqlx::query_as::<_, HorizonEvent>(sqlx::AssertSqlSafe(format!(
        "SELECT seq, id, event, payload, created_at, CAST(CAST(tx AS TEXT) AS BIGINT) AS tx
         FROM outbox WHERE {AFTER_HORIZON} ORDER BY tx, seq LIMIT $3"
    )))
    .bind(tx)
    .bind(seq)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(())
}

/// A connection of either engine, seen as PostgreSQL's when it is one.
trait AsPg {
    fn as_pg(&mut self) -> Option<&mut sqlx::PgConnection>;
}

impl AsPg for sqlx::PgConnection {
    fn as_pg(&mut self) -> Option<&mut sqlx::PgConnection> {
        Some(self)
    }
}

impl AsPg for sqlx::SqliteConnection {
    fn as_pg(&mut self) -> Option<&mut sqlx::PgConnection> {
        None
    }
}

/// True when events wait behind a transaction still running (PostgreSQL: committed after the
/// fan-out's snapshot horizon; read by a fan-out once that transaction ends). Always false on
/// SQLite, where `seq` follows commit order.
pub async fn fan_out_held(store: &Store) -> Result<bool, StoreError> {
    let Db::Postgres(pool) = store.db() else {
        return Ok(false);
    };
    let mut conn = pool.acquire().await?;
    let (tx, seq) = horizon_cursor(&mut conn, false).await?;
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE (tx, seq) > (CAST(CAST($1 AS TEXT) AS xid8), $2))",
    )
    .bind(tx)
    .bind(seq)
    .fetch_one(&mut *conn)
    .await?)
}

/// Turns up to `limit` outbox events after the fan-out cursor into deliveries, one per active
/// endpoint that wants the event, due at `now_ms`; advances the cursor. One transaction, and
/// idempotent (`UNIQUE (endpoint, event_id)`). An endpoint gets no event older than itself.
/// Returns the number of events read (so a caller knows whether to go on).
///
/// The cursor never passes an event whose transaction commits later: on SQLite `seq` follows
/// commit order (one writer at a time); on PostgreSQL events are read in `(tx, seq)` order
/// below the oldest running transaction (migration 0010), without any lock on the writers.
pub async fn fan_out_at(store: &Store, limit: i64, now_ms: i64) -> Result<usize, StoreError> {
    // Nothing new: answer from a read, without taking the write lock.
    let behind: bool = match store.db() {
        Db::Sqlite(pool) => {
            sqlx::query_scalar(
                "SELECT COALESCE((SELECT MAX(seq) FROM outbox), 0) > COALESCE((SELECT value FROM cursors WHERE name = $1), 0)",
            )
            .bind(FANOUT_CURSOR)
            .fetch_one(pool)
            .await?
        }
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            let (tx, seq) = horizon_cursor(&mut conn, false).await?;
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE {AFTER_HORIZON})"
            )))
            .bind(tx)
            .bind(seq)
            .fetch_one(&mut *conn)
            .await?
        }
    };
    if !behind {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    // A write first, so the transaction holds the write lock from here on (reading first and
    // writing later can fail with SQLITE_BUSY when another writer commits in between); on
    // PostgreSQL the cursor rows are then locked, so two fan-outs run one after the other.
    // (PostgreSQL: the last event's transaction, the cursor's other half.)
    let mut last_tx = None;
    let (events, endpoints) = with_tx!(&mut tx, conn => {
        sqlx::query("INSERT INTO cursors (name, value) VALUES ($1, 0), ($2, 0) ON CONFLICT (name) DO NOTHING")
            .bind(FANOUT_CURSOR)
            .bind(FANOUT_TX_CURSOR)
            .execute(&mut *conn)
            .await?;
        let events = if !store.is_postgres() {
                let cursor: i64 = sqlx::query_scalar("SELECT value FROM cursors WHERE name = $1")
                    .bind(FANOUT_CURSOR)
                    .fetch_one(&mut *conn)
                    .await?;
                sqlx::query_as::<_, super::outbox::StoredEvent>(
                    "SELECT seq, id, event, payload, created_at FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(cursor)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
        } else {
                let mut found = Vec::new();
                fanout_read_pg(&mut *conn, limit, &mut found).await?;
                last_tx = found.last().map(|e| e.tx);
                found.into_iter().map(|e| e.event).collect()
        };
        let endpoints = sqlx::query_as::<_, EndpointRow>(
            "SELECT name, url, events, secret_ref, enabled, disabled_reason, created_at, updated_at
                 FROM webhook_endpoints ORDER BY name",
        )
        .fetch_all(&mut *conn)
        .await?;
        (events, endpoints)
    });
    let Some(last) = events.last().map(|e| e.seq) else {
        tx.commit().await?;
        return Ok(0);
    };
    let endpoints: Vec<Subscriber> = endpoints
        .into_iter()
        .filter(|e| e.active())
        .map(|e| Subscriber {
            created: parse_time(&e.created_at),
            wanted: e.subscription(),
            endpoint: e,
        })
        .collect();
    let created_at = timestamp(now_ms);
    let mut rows: Vec<NewDelivery> = Vec::new();
    for event in &events {
        let event_time = parse_time(&event.created_at);
        for Subscriber {
            endpoint,
            created,
            wanted,
        } in &endpoints
        {
            if !wanted.matches_name(&event.event) {
                continue;
            }
            if let (Some(ev), Some(ep)) = (event_time, created) {
                if ev < *ep {
                    continue;
                }
            }
            rows.push(NewDelivery {
                id: new_id(),
                endpoint: &endpoint.name,
                event_id: &event.id,
                event: &event.event,
                payload: &event.payload,
            });
        }
    }
    insert_many(&mut tx, &rows, now_ms, &created_at).await?;
    if let (Some(last_tx), Tx::Postgres(t)) = (last_tx, &mut tx) {
        sqlx::query("UPDATE cursors SET value = $2 WHERE name = $1")
            .bind(FANOUT_TX_CURSOR)
            .bind(last_tx)
            .execute(&mut **t)
            .await?;
    }
    with_tx!(&mut tx, conn => {
        sqlx::query("UPDATE cursors SET value = $2 WHERE name = $1")
            .bind(FANOUT_CURSOR)
            .bind(last)
            .execute(conn)
            .await?;
    });
    tx.commit().await?;
    Ok(events.len())
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    store: &Store,
    id: &str,
    endpoint: &str,
    event_id: &str,
    event: &str,
    payload: &str,
    now_ms: i64,
    created_at: &str,
) -> Result<u64, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query(
            "INSERT INTO deliveries (id, endpoint, event_id, event, payload, status, attempts, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $8, 0, $6, $7)
             ON CONFLICT (endpoint, event_id) DO NOTHING",
        )
        .bind(id)
        .bind(endpoint)
        .bind(event_id)
        .bind(event)
        .bind(payload)
        .bind(now_ms)
        .bind(created_at)
        .bind(DeliveryStatus::Pending)
        .execute(pool)
        .await?
        .rows_affected()
    }))
}

/// An active endpoint as the fan-out reads it: its creation time and event names parsed once.
struct Subscriber {
    endpoint: EndpointRow,
    created: Option<OffsetDateTime>,
    wanted: Subscription,
}

/// A delivery to insert (see [`insert_many`]).
struct NewDelivery<'a> {
    id: String,
    endpoint: &'a str,
    event_id: &'a str,
    event: &'a str,
    payload: &'a str,
}

/// Inserts `rows` pending and due at `now_ms`, skipping (endpoint, event) pairs that exist,
/// with one multi-row statement per [`ROWS_PER_STATEMENT`] rows.
async fn insert_many(
    tx: &mut Tx,
    rows: &[NewDelivery<'_>],
    now_ms: i64,
    created_at: &str,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        with_tx!(&mut *tx, conn => {
        let mut q: QueryBuilder<Engine> = QueryBuilder::new(
            "INSERT INTO deliveries (id, endpoint, event_id, event, payload, status, attempts, next_attempt_at, created_at) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(&r.id)
                .push_bind(r.endpoint)
                .push_bind(r.event_id)
                .push_bind(r.event)
                .push_bind(r.payload)
                .push_bind(DeliveryStatus::Pending)
                .push("0")
                .push_bind(now_ms)
                .push_bind(created_at);
        });
        q.push(" ON CONFLICT (endpoint, event_id) DO NOTHING");
        q.build().execute(conn).await?;
        });
    }
    Ok(())
}

/// Pending deliveries due at `now_ms`, the longest-waiting first (then in fan-out order: the
/// `deliveries_due` index gives this order, so no sort over every due row).
pub async fn due(store: &Store, now_ms: i64, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
    macro_rules! due {
        ($order:literal) => {
            concat!(
                "SELECT ",
                columns!(),
                " FROM deliveries WHERE status = $3 AND next_attempt_at <= $1
                 ORDER BY next_attempt_at, ",
                $order,
                " LIMIT $2"
            )
        };
    }
    Ok(with_pool!(store, pool => {
        // SQLite's rowid and PostgreSQL's `seq` are both the fan-out order.
        let sql = match store.db() {
            Db::Sqlite(_) => due!("rowid"),
            Db::Postgres(_) => due!("seq"),
        };
        sqlx::query_as::<_, DeliveryRow>(sql)
            .bind(now_ms)
            .bind(limit)
            .bind(DeliveryStatus::Pending)
            .fetch_all(pool)
            .await?
    }))
}

/// Claims up to `limit` due deliveries for this replica until `until_ms` and returns them in
/// [`due`]'s order: on PostgreSQL each due delivery is taken by exactly one replica per attempt
/// (`FOR UPDATE SKIP LOCKED`; a claim that runs out — its sender died — lets another replica
/// retake the attempt). `skip` are ids this process already has in flight (SQLite: one process,
/// no claim needed, so this is [`due`] without them). The flag is true when more may be due
/// than were taken.
pub async fn claim_due(
    store: &Store,
    now_ms: i64,
    limit: usize,
    until_ms: i64,
    skip: &std::collections::HashSet<String>,
) -> Result<(Vec<DeliveryRow>, bool), StoreError> {
    match store.db() {
        Db::Sqlite(_) => {
            // Rows in flight are still pending and due; ask for enough to see past them.
            let page = limit + skip.len();
            let rows = due(store, now_ms, page as i64).await?;
            let full_page = rows.len() == page;
            let rows: Vec<DeliveryRow> = rows
                .into_iter()
                .filter(|r| !skip.contains(&r.id))
                .take(limit)
                .collect();
            let more = full_page && rows.len() == limit;
            Ok((rows, more))
        }
        Db::Postgres(pool) => {
            let mut rows = sqlx::query_as::<_, ClaimedRow>(concat!(
                "UPDATE deliveries SET claimed_by = $1, claimed_until = $2
                 WHERE id IN (SELECT id FROM deliveries
                              WHERE status = $3 AND next_attempt_at <= $4
                                AND (claimed_until IS NULL OR claimed_until <= $4)
                              ORDER BY next_attempt_at, seq LIMIT $5
                              FOR UPDATE SKIP LOCKED)
                 RETURNING seq, ",
                columns!()
            ))
            .bind(store.replica_id())
            .bind(until_ms)
            .bind(DeliveryStatus::Pending)
            .bind(now_ms)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?;
            rows.sort_by_key(|r| (r.row.next_attempt_at, r.seq));
            let more = rows.len() == limit;
            Ok((rows.into_iter().map(|r| r.row).collect(), more))
        }
    }
}

/// A claimed delivery with its fan-out position, to sort the claim.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    seq: i64,
    #[sqlx(flatten)]
    row: DeliveryRow,
}

/// When the earliest pending delivery is due (unix ms).
pub async fn next_due(store: &Store) -> Result<Option<i64>, StoreError> {
    next_due_after(store, i64::MIN).await
}

/// When the earliest pending delivery due strictly after `after_ms` is due (an index lookup
/// in `deliveries_due`). On PostgreSQL a delivery another replica claimed is due again when
/// its claim runs out (its sender died); that time is not looked for here (it made this a scan
/// of every pending row on every pass): the dispatcher's pass, which claims what is due, comes
/// at least every `RESCAN_MS` anyway.
pub async fn next_due_after(store: &Store, after_ms: i64) -> Result<Option<i64>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = $2 AND next_attempt_at > $1",
        )
        .bind(after_ms)
        .bind(DeliveryStatus::Pending)
        .fetch_one(pool)
        .await?
    }))
}

/// Records a batch of attempts, and what each did to its delivery, in one transaction (one
/// multi-row statement per table per [`ROWS_PER_STATEMENT`] attempts). A batch holds at most
/// one attempt per delivery.
pub async fn record_attempts(store: &Store, outcomes: &[AttemptOutcome]) -> Result<(), StoreError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let rows: Vec<(&AttemptOutcome, String)> =
        outcomes.iter().map(|o| (o, timestamp(o.at_ms))).collect();
    let mut tx = store.begin().await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        with_tx!(&mut tx, conn => {
        // Replaced: an attempt a crashed process sent but never recorded may reuse its number.
        let mut q: QueryBuilder<Engine> = QueryBuilder::new(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, duration_ms, error, response_body) ",
        );
        q.push_values(chunk, |mut b, (o, at)| {
            let body = o
                .response_body
                .as_deref()
                .map(|b| truncate_at_char_boundary(b, RESPONSE_BODY_LIMIT));
            b.push_bind(&o.delivery_id)
                .push_bind(o.attempt)
                .push_bind(at.as_str())
                .push_bind(o.status_code)
                .push_bind(o.duration_ms)
                .push_bind(o.error.as_deref())
                .push_bind(body);
        });
        q.push(
            " ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at,
                status_code = excluded.status_code, duration_ms = excluded.duration_ms,
                error = excluded.error, response_body = excluded.response_body",
        );
        q.build().execute(&mut *conn).await?;

        let mut q: QueryBuilder<Engine> = QueryBuilder::new(
            "WITH done (id, status, attempt, next_attempt_at, completed_at, last_status, last_error) AS (",
        );
        q.push_values(chunk, |mut b, (o, at)| {
            let (next_attempt_at, completed_at) = match o.result {
                AttemptResult::Retry { at_ms } => (Some(at_ms), None),
                AttemptResult::Delivered | AttemptResult::Failed => (None, Some(at.as_str())),
            };
            let status = o.result.status();
            b.push_bind(&o.delivery_id)
                .push_bind(status)
                .push_bind(o.attempt)
                .push_bind(next_attempt_at)
                .push_bind(completed_at)
                .push_bind(o.status_code)
                .push_bind(o.error.as_deref());
        });
        q.push(
            ") UPDATE deliveries SET status = done.status,
                 attempts = CASE WHEN done.attempt > deliveries.attempts THEN done.attempt
                                 ELSE deliveries.attempts END,
                 next_attempt_at = COALESCE(done.next_attempt_at, deliveries.next_attempt_at),
                 completed_at = done.completed_at, last_status = done.last_status,
                 last_error = done.last_error, claimed_by = NULL, claimed_until = NULL
             FROM done WHERE deliveries.id = done.id",
        );
        q.build().execute(&mut *conn).await?;
        });
    }
    tx.commit().await?;
    Ok(())
}

/// Gives up pending deliveries without an attempt (e.g. their endpoint was removed or
/// disabled), with the reason as their last error.
pub async fn fail_pending(
    store: &Store,
    ids: &[String],
    error: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    with_pool!(store, pool => {
    let mut q: QueryBuilder<Engine> = QueryBuilder::new("UPDATE deliveries SET status = ");
    q.push_bind(DeliveryStatus::Failed)
        .push(", completed_at = ")
        .push_bind(timestamp(now_ms))
        .push(", last_error = ")
        .push_bind(error)
        .push(" WHERE status = ")
        .push_bind(DeliveryStatus::Pending)
        .push(" AND id IN (");
    let mut ids_list = q.separated(", ");
    for id in ids {
        ids_list.push_bind(id);
    }
    q.push(")");
    q.build().execute(pool).await?;
    });
    Ok(())
}

/// Disables an endpoint on the server's own account (it answered 410 Gone) and writes `event`
/// (its `system.error`) to the outbox, in one transaction. Only the first disable counts: false
/// (and no event) when it was already disabled by the server or does not exist.
/// (`store::webhooks::disable` is the same update without the event.)
pub async fn disable_endpoint(
    store: &Store,
    name: &str,
    reason: &str,
    now: &str,
    event: &Event,
) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let done = with_tx!(&mut tx, conn => {
        sqlx::query(
            "UPDATE webhook_endpoints SET disabled_reason = $2, updated_at = $3
             WHERE name = $1 AND disabled_reason IS NULL",
        )
        .bind(name)
        .bind(reason)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected()
    });
    if done == 0 {
        return Ok(false);
    }
    super::outbox::insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

/// An endpoint's deliveries, newest first, each with its attempts (oldest first), and the
/// total count.
pub async fn list(
    store: &Store,
    endpoint: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<(DeliveryRow, Vec<AttemptRow>)>, i64), StoreError> {
    let (total, rows) = with_pool!(store, pool => {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE endpoint = $1")
            .bind(endpoint)
            .fetch_one(pool)
            .await?;
        let rows = sqlx::query_as::<_, DeliveryRow>(concat!(
            "SELECT ",
            columns!(),
            " FROM deliveries WHERE endpoint = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(endpoint)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
        (total, rows)
    });
    if rows.is_empty() {
        return Ok((Vec::new(), total));
    }
    let attempts = with_pool!(store, pool => {
    let mut q: QueryBuilder<Engine> = QueryBuilder::new(
        "SELECT delivery_id, attempt, at, status_code, duration_ms, error, response_body
         FROM delivery_attempts WHERE delivery_id IN (",
    );
    let mut ids = q.separated(", ");
    for r in &rows {
        ids.push_bind(&r.id);
    }
    q.push(") ORDER BY delivery_id, attempt");
    q.build_query_as::<AttemptRow>().fetch_all(pool).await?
    });
    let mut by_id: std::collections::HashMap<String, Vec<AttemptRow>> =
        std::collections::HashMap::new();
    for a in attempts {
        by_id.entry(a.delivery_id.clone()).or_default().push(a);
    }
    let items = rows
        .into_iter()
        .map(|r| {
            let attempts = by_id.remove(&r.id).unwrap_or_default();
            (r, attempts)
        })
        .collect();
    Ok((items, total))
}

/// One delivery of an endpoint.
pub async fn get(
    store: &Store,
    endpoint: &str,
    delivery_id: &str,
) -> Result<Option<DeliveryRow>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_as::<_, DeliveryRow>(concat!(
            "SELECT ",
            columns!(),
            " FROM deliveries WHERE endpoint = $1 AND id = $2"
        ))
        .bind(endpoint)
        .bind(delivery_id)
        .fetch_optional(pool)
        .await?
    }))
}

/// Makes a delivered or failed delivery pending again, due at `now_ms`: same id, its attempts
/// kept and their numbering continued. False when there is no such delivery or it is still
/// pending. A redelivery is one more attempt: when `max_attempts` are already used up, a
/// failure of it fails the delivery again at once.
pub async fn redeliver(
    store: &Store,
    endpoint: &str,
    delivery_id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = with_pool!(store, pool => {
        sqlx::query(
            "UPDATE deliveries SET status = $4, next_attempt_at = $3, completed_at = NULL,
                 claimed_by = NULL, claimed_until = NULL
             WHERE endpoint = $1 AND id = $2 AND status IN ($5, $6)",
        )
        .bind(endpoint)
        .bind(delivery_id)
        .bind(now_ms)
        .bind(DeliveryStatus::Pending)
        .bind(DeliveryStatus::Delivered)
        .bind(DeliveryStatus::Failed)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(done > 0)
}

/// Queues a delivery that is not from the outbox (`POST /webhooks/:id/test` sends
/// `webhook.test`), due at `now_ms`.
pub async fn enqueue(
    store: &Store,
    endpoint: &str,
    event: &str,
    payload: &str,
    now_ms: i64,
) -> Result<DeliveryRow, StoreError> {
    let id = new_id();
    let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
    let created_at = timestamp(now_ms);
    insert(
        store,
        &id,
        endpoint,
        &event_id,
        event,
        payload,
        now_ms,
        &created_at,
    )
    .await?;
    Ok(DeliveryRow {
        id,
        endpoint: endpoint.to_string(),
        event_id,
        event: event.to_string(),
        payload: payload.to_string(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: now_ms,
        created_at,
        completed_at: None,
        last_status: None,
        last_error: None,
    })
}

/// Deletes delivered and failed deliveries completed before `older_than` (RFC 3339), with
/// their attempts. Returns the number of deliveries deleted. Stored times are fixed-width
/// UTC, so `older_than` is brought to that form and compared as text.
pub async fn prune(store: &Store, older_than: &str) -> Result<u64, StoreError> {
    macro_rules! old {
        () => {
            "SELECT id FROM deliveries WHERE status IN ($2, $3)
             AND completed_at IS NOT NULL AND completed_at < $1"
        };
    }
    let Some(cutoff) = parse_time(older_than) else {
        return Ok(0);
    };
    let older_than = timestamp((cutoff.unix_timestamp_nanos() / 1_000_000) as i64);
    let mut tx = store.begin().await?;
    let done = with_tx!(&mut tx, conn => {
        sqlx::query(concat!(
            "DELETE FROM delivery_attempts WHERE delivery_id IN (",
            old!(),
            ")"
        ))
        .bind(&older_than)
        .bind(DeliveryStatus::Delivered)
        .bind(DeliveryStatus::Failed)
        .execute(&mut *conn)
        .await?;
        sqlx::query(concat!("DELETE FROM deliveries WHERE id IN (", old!(), ")"))
            .bind(&older_than)
            .bind(DeliveryStatus::Delivered)
            .bind(DeliveryStatus::Failed)
            .execute(&mut *conn)
            .await?
            .rows_affected()
    });
    tx.commit().await?;
    Ok(done)
}

/// Deliveries per status (`pending`, `delivered`, `failed`), for metrics.
pub async fn count_by_status(store: &Store) -> Result<Vec<(DeliveryStatus, i64)>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_as("SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{self, EventType};
    use crate::store::{outbox, test_sql, webhooks};
    use crate::tasks::TaskStatus;

    const OLD: &str = "2020-01-01T00:00:00Z";

    #[test]
    fn delivery_status_names_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(serde_json::json!(s), serde_json::json!(s.as_str()));
            assert_eq!(
                serde_json::from_value::<DeliveryStatus>(serde_json::json!(s.as_str())).unwrap(),
                s
            );
        }
        let names: Vec<&str> = DeliveryStatus::ALL.map(DeliveryStatus::as_str).to_vec();
        assert_eq!(names, ["pending", "delivered", "failed"]);
        assert_eq!(
            "retry".parse::<DeliveryStatus>().unwrap_err().to_string(),
            "delivery status \"retry\" is not one of pending, delivered, failed"
        );
    }

    #[test]
    fn attempt_outcomes_and_the_status_they_leave() {
        let results = [
            AttemptResult::Delivered,
            AttemptResult::Retry { at_ms: 1 },
            AttemptResult::Failed,
        ];
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(r.outcome(), AttemptResult::OUTCOMES[i]);
        }
        assert_eq!(AttemptResult::OUTCOMES, ["delivered", "retry", "failed"]);
        assert_eq!(
            results.map(AttemptResult::status),
            [
                DeliveryStatus::Delivered,
                DeliveryStatus::Pending,
                DeliveryStatus::Failed
            ]
        );
    }

    #[tokio::test]
    async fn statuses_are_stored_as_their_names() {
        for (_dir, store) in test_sql::stores().await {
            endpoint(&store, "a", r#"["*"]"#, true, OLD).await;
            let d = enqueue(&store, "a", "webhook.test", "{}", 1_000)
                .await
                .unwrap();
            let sql = format!("SELECT status FROM deliveries WHERE id = '{}'", d.id);
            assert_eq!(test_sql::text(&store, &sql).await, "pending");
            let sql = format!(
                "UPDATE deliveries SET status = 'lost' WHERE id = '{}'",
                d.id
            );
            test_sql::exec(&store, &sql).await;
            let e = get(&store, "a", &d.id).await.unwrap_err().to_string();
            assert!(e.contains("delivery status \"lost\""), "{e}");
        }
    }

    async fn endpoint(store: &Store, name: &str, events: &str, enabled: bool, created: &str) {
        let mut tx = store.begin().await.unwrap();
        webhooks::upsert(
            &mut tx,
            name,
            "http://127.0.0.1:9/hook",
            events,
            r#"{"ref":"s"}"#,
            enabled,
            created,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    async fn event(store: &Store, kind: EventType) -> events::Event {
        let e = events::task(kind, "task_1", "p", TaskStatus::Completed, Some(1), None);
        let mut tx = store.begin().await.unwrap();
        outbox::insert(&mut tx, &e).await.unwrap();
        tx.commit().await.unwrap();
        e
    }

    /// Fans out until every stored event is past the cursor. On PostgreSQL an event waits
    /// for the horizon: while any older transaction of the cluster runs (another test's, when
    /// the suite runs in parallel), a fan-out leaves it for the next round, as the dispatcher's
    /// loop would. Bounded: 10 s.
    async fn fan_out_settled(store: &Store) {
        let left = if store.is_postgres() {
            format!(
                "SELECT COUNT(*) FROM outbox WHERE (tx, seq) > (
                   CAST(CAST(COALESCE((SELECT value FROM cursors WHERE name = '{FANOUT_TX_CURSOR}'), 0) AS TEXT) AS xid8),
                   COALESCE((SELECT value FROM cursors WHERE name = '{FANOUT_CURSOR}'), 0))"
            )
        } else {
            format!(
                "SELECT COUNT(*) FROM outbox WHERE seq > COALESCE((SELECT value FROM cursors WHERE name = '{FANOUT_CURSOR}'), 0)"
            )
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            fan_out_at(store, 100, 0).await.unwrap();
            if test_sql::int(store, &left).await == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "events still not fanned out after 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    async fn count(store: &Store) -> i64 {
        test_sql::int(store, "SELECT COUNT(*) FROM deliveries").await
    }

    #[tokio::test]
    async fn fan_out_creates_one_delivery_per_wanting_active_endpoint_once() {
        for (_d, store) in test_sql::stores().await {
            endpoint(&store, "all", r#"["*"]"#, true, OLD).await;
            endpoint(&store, "done", r#"["task.completed"]"#, true, OLD).await;
            endpoint(&store, "off", r#"["*"]"#, false, OLD).await;
            event(&store, EventType::TaskCompleted).await;
            event(&store, EventType::TaskFailed).await;

            assert_eq!(fan_out_at(&store, 100, 1_000).await.unwrap(), 2);
            assert_eq!(count(&store).await, 3);
            assert_eq!(fan_out_at(&store, 100, 1_000).await.unwrap(), 0);
            // Even from the start again, the unique (endpoint, event) inserts nothing new.
            test_sql::exec(&store, "UPDATE cursors SET value = 0").await;
            assert_eq!(fan_out(&store, 100).await.unwrap(), 2);
            assert_eq!(count(&store).await, 3);

            let due = due(&store, 1_000, 10).await.unwrap();
            assert_eq!(due.len(), 3);
            assert!(due
                .iter()
                .all(|d| d.status == DeliveryStatus::Pending && d.id.starts_with("dlv_")));
            assert!(super::due(&store, 999, 10).await.unwrap().is_empty());
            assert_eq!(next_due(&store).await.unwrap(), Some(1_000));
            assert_eq!(next_due_after(&store, 1_000).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn an_endpoint_created_later_gets_no_older_events() {
        for (_d, store) in test_sql::stores().await {
            endpoint(&store, "early", r#"["*"]"#, true, OLD).await;
            event(&store, EventType::TaskStarted).await;
            fan_out_settled(&store).await;
            endpoint(&store, "late", r#"["*"]"#, true, "2999-01-01T00:00:00Z").await;
            event(&store, EventType::TaskStarted).await;
            // Unfanned but older than the endpoint: skipped as well.
            fan_out_settled(&store).await;
            let (late, total) = list(&store, "late", 10, 0).await.unwrap();
            assert!(late.is_empty());
            assert_eq!(total, 0);
            assert_eq!(list(&store, "early", 10, 0).await.unwrap().1, 2);
        }
    }

    fn outcome(d: &DeliveryRow, attempt: i64, result: AttemptResult) -> AttemptOutcome {
        AttemptOutcome {
            delivery_id: d.id.clone(),
            attempt,
            at_ms: 5_000,
            status_code: Some(500),
            duration_ms: 12,
            error: Some("HTTP 500".into()),
            response_body: Some("é".repeat(RESPONSE_BODY_LIMIT)),
            result,
        }
    }

    #[tokio::test]
    async fn attempts_are_recorded_and_move_the_delivery() {
        for (_d, store) in test_sql::stores().await {
            endpoint(&store, "a", r#"["*"]"#, true, OLD).await;
            let d = enqueue(&store, "a", "webhook.test", "{}", 1_000)
                .await
                .unwrap();
            let d2 = enqueue(&store, "a", "webhook.test", "{}", 1_000)
                .await
                .unwrap();
            record_attempts(
                &store,
                &[
                    outcome(&d, 1, AttemptResult::Retry { at_ms: 9_000 }),
                    outcome(&d2, 1, AttemptResult::Failed),
                ],
            )
            .await
            .unwrap();
            let row = get(&store, "a", &d.id).await.unwrap().unwrap();
            assert_eq!(
                (row.status.as_str(), row.attempts, row.next_attempt_at),
                ("pending", 1, 9_000)
            );
            assert_eq!(row.last_status, Some(500));
            assert_eq!(
                get(&store, "a", &d2.id).await.unwrap().unwrap().status,
                DeliveryStatus::Failed
            );
            assert!(get(&store, "other", &d.id).await.unwrap().is_none());

            let mut ok = outcome(&d, 2, AttemptResult::Delivered);
            ok.status_code = Some(200);
            ok.error = None;
            record_attempts(&store, &[ok]).await.unwrap();
            let row = get(&store, "a", &d.id).await.unwrap().unwrap();
            assert_eq!(row.status, DeliveryStatus::Delivered);
            assert_eq!(
                row.completed_at.as_deref(),
                Some("1970-01-01T00:00:05.000Z")
            );

            let (items, total) = list(&store, "a", 10, 0).await.unwrap();
            assert_eq!(total, 2);
            let (_, attempts) = items.iter().find(|(r, _)| r.id == d.id).unwrap();
            assert_eq!(attempts.len(), 2);
            assert_eq!(attempts[0].attempt, 1);
            let body = attempts[0].response_body.as_deref().unwrap();
            assert!(body.len() <= RESPONSE_BODY_LIMIT && body.len() > RESPONSE_BODY_LIMIT - 2);
            assert!(body.chars().all(|c| c == 'é'));
            assert_eq!(list(&store, "a", 1, 1).await.unwrap().0.len(), 1);
        }
    }

    #[tokio::test]
    async fn redeliver_keeps_the_id_and_history_and_prune_drops_old_completed_ones() {
        for (_d, store) in test_sql::stores().await {
            endpoint(&store, "a", r#"["*"]"#, true, OLD).await;
            let d = enqueue(&store, "a", "webhook.test", "{}", 1_000)
                .await
                .unwrap();
            assert!(
                !redeliver(&store, "a", &d.id, 2_000).await.unwrap(),
                "still pending"
            );
            record_attempts(&store, &[outcome(&d, 1, AttemptResult::Failed)])
                .await
                .unwrap();
            assert!(!redeliver(&store, "b", &d.id, 2_000).await.unwrap());
            assert!(redeliver(&store, "a", &d.id, 2_000).await.unwrap());
            let row = get(&store, "a", &d.id).await.unwrap().unwrap();
            assert_eq!(
                (row.status.as_str(), row.attempts, row.next_attempt_at),
                ("pending", 1, 2_000)
            );
            assert_eq!(row.completed_at, None);
            assert_eq!(list(&store, "a", 10, 0).await.unwrap().0[0].1.len(), 1);

            // Pending deliveries are never pruned; completed ones are, with their attempts.
            assert_eq!(prune(&store, "2999-01-01T00:00:00Z").await.unwrap(), 0);
            record_attempts(&store, &[outcome(&d, 2, AttemptResult::Delivered)])
                .await
                .unwrap();
            assert_eq!(prune(&store, "1970-01-01T00:00:01Z").await.unwrap(), 0);
            assert_eq!(prune(&store, "1970-01-01T00:00:06+00:00").await.unwrap(), 1);
            assert_eq!(count(&store).await, 0);
            let attempts = test_sql::int(&store, "SELECT COUNT(*) FROM delivery_attempts").await;
            assert_eq!(attempts, 0);
        }
    }

    #[test]
    fn timestamps_are_fixed_width_and_bodies_cut_at_char_boundaries() {
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(truncate_at_char_boundary("aé", 2), "a");
        assert_eq!(truncate_at_char_boundary("aé", 3), "aé");
    }

    /// On PostgreSQL, replicas claiming due deliveries at once take each exactly once per
    /// attempt; a claim that runs out (its sender died) is taken again; recording the attempt
    /// ends the claim.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn due_deliveries_are_claimed_once_per_attempt_and_retaken_after_the_claim() {
        for (_d, store) in test_sql::stores().await {
            if !store.is_postgres() {
                continue;
            }
            endpoint(&store, "a", r#"["*"]"#, true, OLD).await;
            for _ in 0..60 {
                enqueue(&store, "a", "webhook.test", "{}", 1_000)
                    .await
                    .unwrap();
            }
            let none = std::collections::HashSet::new();
            let claimers = (0..4).map(|_| {
                let store = store.clone();
                let none = none.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let (rows, _) = claim_due(&store, 2_000, 5, 10_000, &none).await.unwrap();
                        if rows.is_empty() {
                            return mine;
                        }
                        mine.extend(rows);
                    }
                })
            });
            let mut all = Vec::new();
            for c in claimers.collect::<Vec<_>>() {
                all.extend(c.await.unwrap());
            }
            let unique: std::collections::HashSet<&str> =
                all.iter().map(|r| r.id.as_str()).collect();
            assert_eq!((all.len(), unique.len()), (60, 60));
            // Claimed: not due for anyone until the claim runs out, then due again.
            assert!(claim_due(&store, 9_999, 100, 20_000, &none)
                .await
                .unwrap()
                .0
                .is_empty());
            // (The claims' end is not a due time: the dispatcher's rescan finds it.)
            assert_eq!(next_due_after(&store, 2_000).await.unwrap(), None);
            let mut outcome = outcome(&all[0], 1, AttemptResult::Retry { at_ms: 50_000 });
            outcome.at_ms = 3_000;
            record_attempts(&store, &[outcome]).await.unwrap();
            let (retaken, _) = claim_due(&store, 10_000, 100, 20_000, &none).await.unwrap();
            assert_eq!(retaken.len(), 59, "all but the recorded one");
            assert!(retaken.iter().all(|r| r.id != all[0].id));
        }
    }
}
