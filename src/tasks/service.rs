//! The task service: the durable queue (rows in the store), the dispatcher that runs at most
//! `tasks.concurrency` tasks at once (re-read on every pass, so a Config change applies
//! live), timeouts and cancellation that stop the work for real, events in the outbox, and
//! live progress for Server-Sent Events subscribers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::agent::{self, RunError, RunOutput, RunRequest, Usage};
use super::status::TaskStatus;
use super::tools::Toolbox;
use super::workspace::{FileChange, Snapshot};
use crate::cluster::Notice;
use crate::events::{self, EventType};
use crate::live::Live;
use crate::manifest::secret::SecretContext;
use crate::store::tasks::{self as rows, Filter, Finish, NewTask, TaskRow};
use crate::store::{Store, StoreError};

/// Finished tasks kept in memory for repeated reads.
const FINISHED_CACHE: usize = 4096;

/// With replicas, how often the queue is looked at without a notice (one lost while the
/// listener reconnected).
const CLAIM_POLL: Duration = Duration::from_secs(2);

/// Output kept in memory for subscribers who connect while a task runs.
const MAX_BACKLOG: usize = 1024 * 1024;

/// Watches heard for tasks that do not run here, at most (a watch whose task ran elsewhere
/// unwatched is never answered; past this many they are forgotten at once).
const MAX_WATCHES: usize = 10_000;

/// What a subscriber of a task's progress receives.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Progress {
    /// A status change (`event: status`).
    Status {
        id: String,
        status: TaskStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_ms: Option<i64>,
    },
    /// Output as it arrives (`event: output`).
    Output { text: String },
}

impl Progress {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Progress::Status { .. } => "status",
            Progress::Output { .. } => "output",
        }
    }

    /// True for a status a task never leaves.
    pub fn is_final(&self) -> bool {
        matches!(self, Progress::Status { status, .. } if status.is_terminal())
    }

    fn of(row: &TaskRow) -> Progress {
        Progress::Status {
            id: row.id.clone(),
            status: row.status,
            error: row.error.clone(),
            duration_ms: row.duration_ms,
        }
    }
}

/// A field-level problem of a task request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path in the request body, e.g. `options.working_directory`.
    pub field: String,
    pub message: String,
}

/// Why a task call failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("invalid task request")]
    Invalid(Vec<Problem>),
    #[error("task {0} not found")]
    NotFound(String),
    #[error("task {id} is already {status}")]
    Finished { id: String, status: TaskStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Active {
    progress: broadcast::Sender<Progress>,
    /// Output so far, for subscribers that arrive late. Chunks are appended and broadcast
    /// under this lock, so a subscriber sees each chunk exactly once.
    output: Arc<Mutex<String>>,
    cancel: CancellationToken,
    /// Why the task was cancelled (the caller's token name, or shutdown).
    reason: Option<String>,
    /// It runs in this process (else the entry only relays another replica's notices to
    /// subscribers here).
    local: bool,
    /// Runs here and is followed on other replicas: its progress is published.
    watched: Arc<AtomicBool>,
    /// Followed here, run elsewhere: the runner's replay arrived (output notices before it
    /// are part of it).
    replayed: bool,
}

/// Tasks per status, kept in memory so `GET /status` costs no query.
#[derive(Default)]
pub struct Counts([AtomicI64; 5]);

impl Counts {
    fn add(&self, status: TaskStatus, n: i64) {
        self.0[status.index()].fetch_add(n, Ordering::Relaxed);
    }

    fn moved(&self, from: TaskStatus, to: TaskStatus) {
        self.add(from, -1);
        self.add(to, 1);
    }

    /// `(status, count)` for every status.
    pub fn each(&self) -> impl Iterator<Item = (TaskStatus, i64)> + '_ {
        TaskStatus::ALL
            .into_iter()
            .zip(&self.0)
            .map(|(s, n)| (s, n.load(Ordering::Relaxed).max(0)))
    }

    /// `{"queued":n,...}` for every status, as JSON text.
    pub fn render(&self) -> String {
        render_counts(self.each())
    }
}

/// `{"queued":n,...}` for `(status, count)` pairs, as JSON text.
pub fn render_counts(counts: impl IntoIterator<Item = (TaskStatus, i64)>) -> String {
    let mut out = String::with_capacity(96);
    out.push('{');
    for (i, (s, n)) in counts.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{s}\":{n}");
    }
    out.push('}');
    out
}

/// The task service; shared by the API and the dispatcher.
pub struct TaskService {
    store: Store,
    live: Arc<Live>,
    data_dir: PathBuf,
    secrets: SecretContext,
    wake: Notify,
    active: Arc<Mutex<HashMap<String, Active>>>,
    /// Free task slots, as the dispatcher last counted them, less the tasks queued here
    /// since: a task this replica will start at once needs no `queued` notice.
    free: AtomicI64,
    /// Replicas following tasks that do not run here (yet), by task.
    watches: Mutex<HashMap<String, Vec<String>>>,
    counts: Counts,
    /// Recently read finished tasks (immutable), for cheap repeated reads.
    finished: quick_cache::sync::Cache<String, Arc<TaskRow>>,
    /// Recently read finished tasks' `GET /tasks/:id` bodies (see [`TaskService::shown`]).
    shown: quick_cache::sync::Cache<String, axum::body::Bytes>,
}

fn now() -> String {
    timestamp(OffsetDateTime::now_utc())
}

/// A task event for `row`, naming the Schedule and slot that started it, if any.
fn task_event(
    row: &TaskRow,
    event: EventType,
    status: TaskStatus,
    duration_ms: Option<i64>,
    error: Option<&str>,
) -> events::Event {
    let schedule = row
        .schedule
        .as_deref()
        .map(|name| (name, row.schedule_slot.as_deref()));
    events::task_from(
        event,
        &row.id,
        &row.prompt,
        status,
        duration_ms,
        error,
        schedule,
    )
}

/// The stored timestamp form: RFC 3339 UTC with milliseconds, fixed width, so text order is
/// time order.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an RFC 3339 time given by a client into the stored form.
pub fn parse_time(s: &str) -> Option<String> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(timestamp)
}

impl TaskService {
    /// Opens the service: tasks a previous process left `running` are marked failed (with
    /// their `task.failed` events), and counts are loaded.
    pub async fn open(
        store: Store,
        live: Arc<Live>,
        data_dir: &Path,
    ) -> Result<Arc<TaskService>, StoreError> {
        let error =
            "the server stopped while this task was running (restart or crash); it was not resumed";
        // With replicas (PostgreSQL) a task `running` now may be another live replica's: only
        // this data dir's previous process's are failed here; the leader's lease check fails
        // those of a replica that stopped (`crate::cluster`).
        let orphans = match store.cluster_pool() {
            Some(pool) => {
                crate::cluster::fail_previous_process_tasks(
                    &pool,
                    data_dir,
                    store.replica_id(),
                    error,
                )
                .await?
            }
            None => {
                rows::fail_orphans(&store, &now(), error, |row| {
                    task_event(
                        row,
                        EventType::TaskFailed,
                        TaskStatus::Failed,
                        row.duration_ms,
                        row.error.as_deref(),
                    )
                })
                .await?
            }
        };
        if !orphans.is_empty() {
            live.outbox.notify_one();
            tracing::warn!(
                count = orphans.len(),
                "marked tasks left running by the previous process as failed"
            );
        }
        let counts = Counts::default();
        for (status, n) in rows::counts(&store).await? {
            counts.add(status, n);
        }
        Ok(Arc::new(TaskService {
            secrets: SecretContext {
                base_dir: live.manifests.clone(),
                data_dir: data_dir.to_path_buf(),
            },
            store,
            live,
            data_dir: data_dir.to_path_buf(),
            wake: Notify::new(),
            active: Arc::new(Mutex::new(HashMap::new())),
            free: AtomicI64::new(0),
            watches: Mutex::new(HashMap::new()),
            counts,
            finished: quick_cache::sync::Cache::new(FINISHED_CACHE),
            shown: quick_cache::sync::Cache::new(FINISHED_CACHE),
        }))
    }

    /// Tasks per status, as this process counted them since it started.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Tasks per status in the whole deployment (`GET /status`, `/metrics`): alone, this
    /// process's counts (no query); with replicas, read from the shared database, so every
    /// replica answers the same (a process only counts the tasks it created and ran).
    pub async fn deployment_counts(&self) -> [(TaskStatus, i64); 5] {
        if self.live.cluster.is_clustered() {
            match rows::counts(&self.store).await {
                Ok(found) => {
                    return TaskStatus::ALL.map(|s| {
                        let n = found.iter().find(|(f, _)| *f == s).map_or(0, |(_, n)| *n);
                        (s, n)
                    })
                }
                Err(e) => tracing::warn!(
                    "cannot count the deployment's tasks (showing this replica's own counts): {e}"
                ),
            }
        }
        let mut each = self.counts.each();
        TaskStatus::ALL.map(|s| each.next().unwrap_or((s, 0)))
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (Taken after [`TaskService::active`] when both are.)
    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates a `POST /tasks` body and enqueues the task; its row as stored, made here
    /// rather than read back (a round trip per task).
    pub async fn create(&self, body: &Value, created_by: &str) -> Result<TaskRow, TaskError> {
        let task = self.prepare(body)?;
        let seq = rows::insert(&self.store, &task.row(created_by)).await?;
        self.enqueued(&task.id, created_by);
        Ok(task.stored(seq, created_by))
    }

    /// Validates a `POST /tasks` body against the Config in force and makes the task's row,
    /// not yet stored (a Schedule stores it in the transaction that records its slot).
    pub fn prepare(&self, body: &Value) -> Result<Prepared, TaskError> {
        let config = self.live.config.load();
        let request = validate(
            body,
            &config.spec.tasks,
            &config.spec.model.name,
            config.spec.model.max_tokens,
        )
        .map_err(TaskError::Invalid)?;
        Ok(Prepared {
            id: format!("task_{}", uuid::Uuid::new_v4().simple()),
            prompt: request.prompt,
            options: request.options.to_string(),
            model: request.model,
            max_tokens: i64::from(request.max_tokens),
            working_directory: request
                .working_directory
                .as_deref()
                .and_then(Path::to_str)
                .map(str::to_owned),
            timeout_seconds: request.timeout_seconds as i64,
            created_at: now(),
        })
    }

    /// Counts a task stored as queued and wakes the dispatcher.
    pub fn enqueued(&self, id: &str, created_by: &str) {
        self.counts.add(TaskStatus::Queued, 1);
        self.wake.notify_one();
        let cluster = &self.live.cluster;
        // With replicas: a task this one has a free slot for starts here; only one it cannot
        // start at once is announced, for replicas with free capacity (all of them looking at
        // the queue for every task would mostly find it empty).
        if cluster.is_clustered() && self.free.fetch_sub(1, Ordering::AcqRel) <= 0 {
            cluster.tasks_queued();
        }
        tracing::info!(task_id = %id, token = %created_by, "task queued");
    }

    /// One task. Finished tasks never change, so they are served from memory once read.
    pub async fn get(&self, id: &str) -> Result<Arc<TaskRow>, TaskError> {
        if let Some(row) = self.finished.get(id) {
            return Ok(row);
        }
        let row = rows::get(&self.store, id)
            .await?
            .map(Arc::new)
            .ok_or_else(|| TaskError::NotFound(id.to_owned()))?;
        if row.status.is_terminal() {
            self.finished.insert(row.id.clone(), row.clone());
        }
        Ok(row)
    }

    /// A task's answer to `GET /tasks/:id`, made by `render` from its row. A finished task's
    /// answer is made once and kept, so a repeated read costs one map lookup (under load the
    /// row's copy, the options' parse and the serialisation were the handler's whole cost).
    ///
    /// Why a kept answer cannot go stale, on SQLite and on PostgreSQL with several replicas
    /// alike (the same argument as for `finished`): a finished row never changes and is never
    /// deleted. Every `UPDATE tasks` (claiming, finishing, cancelling, failing a dead replica's
    /// tasks; `store::tasks`, `store::cluster`) matches only a queued or running status, no
    /// code deletes or prunes tasks, and ids are never reused. A task that is not finished is
    /// read from the store each time. If tasks ever become deletable, both caches must be
    /// invalidated on every replica (the cluster's notices) before this stays correct.
    pub async fn shown<E: From<TaskError>>(
        &self,
        id: &str,
        render: impl FnOnce(&TaskRow) -> Result<axum::body::Bytes, E>,
    ) -> Result<axum::body::Bytes, E> {
        if let Some(body) = self.shown.get(id) {
            return Ok(body);
        }
        let row = self.get(id).await?;
        let body = render(&row)?;
        if row.status.is_terminal() {
            self.shown.insert(row.id.clone(), body.clone());
        }
        Ok(body)
    }

    /// A filtered page, newest first, with the total.
    pub async fn list(&self, filter: &Filter) -> Result<(Vec<TaskRow>, i64), TaskError> {
        Ok(rows::list(&self.store, filter).await?)
    }

    /// Progress of a task: its row, the output so far, and a receiver of what follows (none
    /// once it has ended).
    pub async fn subscribe(
        &self,
        id: &str,
    ) -> Result<(TaskRow, String, Option<broadcast::Receiver<Progress>>), TaskError> {
        // Subscribe before reading the row, so nothing between the read and the subscription
        // is lost.
        let (backlog, receiver, first) = {
            let mut active = self.active();
            let mut first = false;
            let entry = active.entry(id.to_owned()).or_insert_with(|| {
                first = true;
                Active::new()
            });
            let output = entry.output.lock().unwrap_or_else(|e| e.into_inner());
            (output.clone(), entry.progress.subscribe(), first)
        };
        let row = match rows::get(&self.store, id).await? {
            Some(row) => row,
            None => {
                self.active().remove(id);
                return Err(TaskError::NotFound(id.to_owned()));
            }
        };
        if row.status.is_terminal() {
            self.active().remove(id);
            return Ok((row, String::new(), None));
        }
        let cluster = &self.live.cluster;
        if first && cluster.is_clustered() {
            // Not running here: the replica running it (or claiming it later) replays its
            // progress so far to this one, then publishes what follows.
            cluster.publish(Notice::Watch {
                from: cluster.id().to_owned(),
                task: id.to_owned(),
            });
            tokio::spawn(check_followed(
                self.store.clone(),
                self.active.clone(),
                id.to_owned(),
            ));
        }
        Ok((row, backlog, Some(receiver)))
    }

    /// Cancels a queued or running task; a running one is stopped (its HTTP call dropped, its
    /// process group killed) before this returns, within a bound.
    pub async fn cancel(&self, id: &str, by: &str) -> Result<Arc<TaskRow>, TaskError> {
        self.cancel_because(id, format!("cancelled by token '{by}'"))
            .await
    }

    /// [`cancel`](Self::cancel) with the task's error given in full (e.g. the client of an
    /// OpenAI-compatible stream disconnected).
    pub async fn cancel_because(&self, id: &str, error: String) -> Result<Arc<TaskRow>, TaskError> {
        let row = self.get(id).await?;
        if row.status.is_terminal() {
            return Err(TaskError::Finished {
                id: id.to_owned(),
                status: row.status,
            });
        }
        if row.status == TaskStatus::Queued {
            let event = task_event(
                &row,
                EventType::TaskFailed,
                TaskStatus::Cancelled,
                Some(0),
                Some(&error),
            );
            if rows::cancel_queued(&self.store, id, &now(), &error, &event).await? {
                self.live.outbox.notify_one();
                self.counts.moved(TaskStatus::Queued, TaskStatus::Cancelled);
                let row = self.get(id).await?;
                self.publish_status(id, row.status, row.error.clone(), row.duration_ms);
                if let Some(active) = self.active().remove(id) {
                    let _ = active.progress.send(Progress::of(&row));
                }
                return Ok(row);
            }
        }
        // Running (or claimed a moment ago): stop the work and wait for the runner to record it.
        let (_, _, receiver) = self.subscribe(id).await?;
        if let Some(mut receiver) = receiver {
            let here = match self.active().get_mut(id) {
                Some(active) if active.local => {
                    active.reason.get_or_insert(error.clone());
                    active.cancel.cancel();
                    true
                }
                _ => false,
            };
            if !here {
                // Running on another replica (or claimed there a moment ago): it stops the
                // task when the notice arrives, and its final status comes back the same way.
                self.live.cluster.publish(Notice::Cancel {
                    from: self.live.cluster.id().to_owned(),
                    task: id.to_owned(),
                    reason: error,
                });
            }
            let ended = async {
                loop {
                    match receiver.recv().await {
                        Ok(p) if p.is_final() => break,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(10), ended).await;
        }
        self.get(id).await
    }

    /// Starts the dispatcher; it runs until `stop`, then cancels what is running.
    pub fn spawn_dispatcher(
        self: &Arc<Self>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut running = JoinSet::new();
            let mut passes = this.live.passes.subscribe();
            let mut notices = this.live.cluster.subscribe();
            // With replicas: a queued notice may be lost while the listener reconnects.
            let clustered = this.live.cluster.is_clustered();
            let mut poll = tokio::time::interval(CLAIM_POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut claim_now = true;
            loop {
                let limit = this.live.config.load().spec.tasks.concurrency.max(1) as usize;
                while claim_now && running.len() < limit {
                    match this.claim(limit - running.len()).await {
                        Ok(rows) if rows.is_empty() => break,
                        Ok(rows) => {
                            for row in rows {
                                let span = tracing::info_span!("task", task_id = %row.id);
                                running.spawn(this.clone().run(row).instrument(span));
                            }
                        }
                        Err(e) => {
                            tracing::error!("cannot take the next task from the queue: {e}");
                            break;
                        }
                    }
                }
                this.free.store(
                    limit.saturating_sub(running.len()) as i64,
                    Ordering::Release,
                );
                claim_now = true;
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = this.wake.notified() => {}
                    // A reconcile may have raised the concurrency.
                    _ = passes.changed() => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                    // Only a queued task elsewhere is a reason to look at the queue.
                    notice = next_notice(&mut notices) => match notice {
                        Ok(notice) => claim_now = this.take_notice(notice),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "task notices from other replicas were missed");
                        }
                        Err(broadcast::error::RecvError::Closed) => {}
                    },
                    _ = poll.tick(), if clustered => {}
                }
            }
            for active in this.active().values_mut() {
                active.reason.get_or_insert_with(|| {
                    "the server shut down while the task was running".into()
                });
                active.cancel.cancel();
            }
            while running.join_next().await.is_some() {}
        })
    }

    /// Tells the other replicas (their SSE subscribers) that `id` changed status.
    fn publish_status(
        &self,
        id: &str,
        status: TaskStatus,
        error: Option<String>,
        duration_ms: Option<i64>,
    ) {
        let cluster = &self.live.cluster;
        if cluster.is_clustered() {
            cluster.publish(Notice::Status {
                from: cluster.id().to_owned(),
                task: id.to_owned(),
                status,
                error,
                duration_ms,
            });
        }
    }

    /// A notice from another replica: a task queued there (true: look at the queue), a cancel
    /// of a task running here, a follower elsewhere of a task running here, or progress of a
    /// task running there for the subscribers here.
    fn take_notice(&self, notice: Notice) -> bool {
        let cluster = &self.live.cluster;
        let mut active = self.active();
        match notice {
            Notice::Queued { .. } => return true,
            Notice::Watch { from, .. } if from == cluster.id() => {}
            Notice::Watch { from, task } => match active.get(&task).filter(|e| e.local) {
                Some(entry) => {
                    // Under the output's lock: the output notices published before the replay
                    // are in it, those after follow it.
                    let so_far = entry.output.lock().unwrap_or_else(|e| e.into_inner());
                    entry.watched.store(true, Ordering::Release);
                    cluster.publish(Notice::Replay {
                        from: cluster.id().to_owned(),
                        to: from,
                        task,
                        status: TaskStatus::Running,
                        text: so_far.clone(),
                        part: 0,
                    });
                }
                None => {
                    let mut watches = self.watches();
                    if watches.len() >= MAX_WATCHES {
                        tracing::warn!(
                            count = watches.len(),
                            "forgetting the watches of tasks that never ran here"
                        );
                        watches.clear();
                    }
                    watches.entry(task).or_default().push(from);
                }
            },
            Notice::Replay {
                to,
                task,
                status,
                text,
                part,
                ..
            } => {
                if to != cluster.id() {
                    return false;
                }
                if let Some(entry) = active.get_mut(&task).filter(|e| !e.local) {
                    if part == 0 {
                        entry.replayed = true;
                        let _ = entry.progress.send(Progress::Status {
                            id: task.clone(),
                            status,
                            error: None,
                            duration_ms: None,
                        });
                    }
                    if !text.is_empty() {
                        let mut so_far = entry.output.lock().unwrap_or_else(|e| e.into_inner());
                        if so_far.len() < MAX_BACKLOG {
                            so_far.push_str(&text);
                        }
                        let _ = entry.progress.send(Progress::Output { text });
                    }
                }
            }
            Notice::Cancel { task, reason, .. } => {
                if let Some(entry) = active.get_mut(&task).filter(|e| e.local) {
                    entry.reason.get_or_insert(reason);
                    entry.cancel.cancel();
                }
            }
            Notice::Output { task, text, .. } => {
                if let Some(entry) = active.get(&task).filter(|e| !e.local && e.replayed) {
                    let mut so_far = entry.output.lock().unwrap_or_else(|e| e.into_inner());
                    if so_far.len() < MAX_BACKLOG {
                        so_far.push_str(&text);
                    }
                    let _ = entry.progress.send(Progress::Output { text });
                }
            }
            Notice::Status {
                task,
                status,
                error,
                duration_ms,
                ..
            } => {
                if let Some(entry) = active.get(&task).filter(|e| !e.local) {
                    let _ = entry.progress.send(Progress::Status {
                        id: task.clone(),
                        status,
                        error,
                        duration_ms,
                    });
                    if status.is_terminal() {
                        active.remove(&task);
                    }
                }
                if status.is_terminal() {
                    self.watches().remove(&task);
                }
            }
            Notice::Revision { .. } | Notice::Applied { .. } => {}
        }
        false
    }

    /// Claims up to `n` queued tasks for this replica (see `store::tasks::claim`).
    async fn claim(&self, n: usize) -> Result<Vec<TaskRow>, StoreError> {
        let rows = rows::claim(&self.store, &now(), n as i64, |row| {
            task_event(row, EventType::TaskStarted, TaskStatus::Running, None, None)
        })
        .await?;
        if !rows.is_empty() {
            self.live.outbox.notify_one();
            let cluster = &self.live.cluster;
            let mut active = self.active();
            let mut watches = self.watches();
            for row in &rows {
                self.counts.moved(TaskStatus::Queued, TaskStatus::Running);
                let entry = active.entry(row.id.clone()).or_insert_with(Active::new);
                entry.local = true;
                let _ = entry.progress.send(Progress::of(row));
                // Followed from other replicas since it was queued: they hear from here on.
                if let Some(followers) = watches.remove(&row.id) {
                    entry.watched.store(true, Ordering::Release);
                    for to in followers {
                        cluster.publish(Notice::Replay {
                            from: cluster.id().to_owned(),
                            to,
                            task: row.id.clone(),
                            status: TaskStatus::Running,
                            text: String::new(),
                            part: 0,
                        });
                    }
                }
            }
        }
        Ok(rows)
    }

    async fn run(self: Arc<Self>, row: TaskRow) {
        let started = Instant::now();
        let (cancel, progress, output, watched) = {
            let mut active = self.active();
            let entry = active.entry(row.id.clone()).or_insert_with(Active::new);
            (
                entry.cancel.clone(),
                entry.progress.clone(),
                entry.output.clone(),
                entry.watched.clone(),
            )
        };
        let config = self.live.config.load_full();
        let workdir = match &row.working_directory {
            Some(dir) => PathBuf::from(dir),
            None => self.data_dir.join("workspaces").join(&row.id),
        };
        let outcome = self
            .execute(
                &row,
                &workdir,
                &config.spec,
                cancel,
                progress.clone(),
                output,
                watched.clone(),
            )
            .await;
        let (status, error, output, usage, files) = match outcome {
            Ok((out, files)) => (TaskStatus::Completed, None, out.output, out.usage, files),
            Err((e, files)) => {
                let (status, message, output, usage) = match e {
                    Failure::TimedOut(secs) => (
                        TaskStatus::Failed,
                        format!("timed out after {secs} s"),
                        String::new(),
                        Usage::default(),
                    ),
                    Failure::Setup(message) => {
                        (TaskStatus::Failed, message, String::new(), Usage::default())
                    }
                    Failure::Run(RunError::Cancelled { output, usage }) => {
                        let reason = self
                            .active()
                            .get(&row.id)
                            .and_then(|a| a.reason.clone())
                            .unwrap_or_else(|| "cancelled".into());
                        let status = if reason.starts_with("the server shut down") {
                            TaskStatus::Failed
                        } else {
                            TaskStatus::Cancelled
                        };
                        (status, reason, output, usage)
                    }
                    Failure::Run(RunError::Config(message)) => {
                        (TaskStatus::Failed, message, String::new(), Usage::default())
                    }
                    Failure::Run(RunError::Provider {
                        message,
                        output,
                        usage,
                    })
                    | Failure::Run(RunError::Failed {
                        message,
                        output,
                        usage,
                    }) => (TaskStatus::Failed, message, output, usage),
                };
                (status, Some(message), output, usage, files)
            }
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        let event_type = if status == TaskStatus::Completed {
            EventType::TaskCompleted
        } else {
            EventType::TaskFailed
        };
        let event = task_event(
            &row,
            event_type,
            status,
            Some(duration_ms),
            error.as_deref(),
        );
        let files_json = serde_json::to_string(&files).unwrap_or_else(|_| "[]".into());
        let finish = Finish {
            status,
            completed_at: &now(),
            duration_ms,
            error: error.as_deref(),
            output: &output,
            files: &files_json,
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
        };
        // A failed write rolls back whole, so it can be tried again; a transient error must not
        // leave a finished task `running` while its subscribers are told it ended.
        let mut attempt = 0u32;
        let recorded = loop {
            match rows::finish(&self.store, &row.id, &finish, Some(&event)).await {
                Err(e) if attempt < 4 => {
                    attempt += 1;
                    tracing::warn!(task_id = %row.id, attempt, "cannot record the end of the task, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                recorded => break recorded,
            }
        };
        match recorded {
            Ok(true) => {
                self.live.outbox.notify_one();
                self.counts.moved(TaskStatus::Running, status);
            }
            Ok(false) => {
                tracing::warn!(task_id = %row.id, "task was no longer running when it finished")
            }
            Err(e) => tracing::error!(task_id = %row.id, "cannot record the end of the task: {e}"),
        }
        tracing::info!(task_id = %row.id, status = status.as_str(), duration_ms, "task finished");
        let _ = progress.send(Progress::Status {
            id: row.id.clone(),
            status,
            error: error.clone(),
            duration_ms: Some(duration_ms),
        });
        {
            // With the entry's removal: a watch heard before it is answered by this status,
            // one heard after it by the follower's own check of the row.
            let mut active = self.active();
            if watched.load(Ordering::Acquire) {
                self.publish_status(&row.id, status, error, Some(duration_ms));
            }
            active.remove(&row.id);
        }
        self.wake.notify_one();
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        row: &TaskRow,
        workdir: &Path,
        spec: &crate::manifest::kinds::ConfigSpec,
        cancel: CancellationToken,
        progress: broadcast::Sender<Progress>,
        output: Arc<Mutex<String>>,
        watched: Arc<AtomicBool>,
    ) -> Result<(RunOutput, Vec<FileChange>), (Failure, Vec<FileChange>)> {
        if let Err(e) = std::fs::create_dir_all(workdir) {
            return Err((
                Failure::Setup(format!("cannot create the working directory: {e}")),
                vec![],
            ));
        }
        let before = snapshot(workdir).await;
        let skills_dir = crate::skills::skills_dir(&self.data_dir);
        let toolbox = Toolbox::for_workdir(workdir, spec.tasks.allow_commands).and_then(|t| {
            if skills_dir.is_dir() {
                t.with_skills(&skills_dir)
            } else {
                Ok(t)
            }
        });
        let mcp_servers = task_mcp_servers(&row.options).or_else(|| spec.tasks.mcp_servers.clone());
        let toolbox = match toolbox {
            Ok(t) => t.with_mcp(self.live.mcp.clone(), mcp_servers.as_deref()),
            Err(e) => {
                return Err((
                    Failure::Setup(format!("cannot open the working directory: {e}")),
                    vec![],
                ))
            }
        };
        let request = RunRequest {
            task_id: row.id.clone(),
            prompt: row.prompt.clone(),
            model: row.model.clone(),
            max_tokens: u32::try_from(row.max_tokens).unwrap_or(u32::MAX),
            workdir: workdir.to_path_buf(),
            max_turns: spec.tasks.max_turns,
            allow_commands: spec.tasks.allow_commands,
            skills: installed_skills(&skills_dir),
            skills_dir: skills_dir.is_dir().then(|| skills_dir.clone()),
            egress: crate::egress::policy_of(spec),
        };
        let cluster = self
            .live
            .cluster
            .is_clustered()
            .then(|| (self.live.cluster.clone(), row.id.clone()));
        let sink: agent::OutputSink = Arc::new(move |text: &str| {
            // Published under the output's lock, in step with a replay (see `take_notice`).
            let mut so_far = output.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((cluster, task)) = &cluster {
                if watched.load(Ordering::Acquire) {
                    cluster.publish(Notice::Output {
                        from: cluster.id().to_owned(),
                        task: task.clone(),
                        text: text.to_owned(),
                    });
                }
            }
            // The backlog is for late subscribers only; the full output is the run's result.
            if so_far.len() < MAX_BACKLOG {
                so_far.push_str(text);
            }
            let _ = progress.send(Progress::Output {
                text: text.to_owned(),
            });
        });
        let timeout = Duration::from_secs(row.timeout_seconds.max(1) as u64);
        let run = agent::run(
            &spec.model,
            &self.secrets,
            &request,
            &toolbox,
            sink,
            cancel.clone(),
        );
        // On timeout the run future is dropped, which drops its HTTP call or kills its
        // process group.
        let result = match tokio::time::timeout(timeout, run).await {
            Ok(result) => result.map_err(Failure::Run),
            Err(_) => {
                cancel.cancel();
                Err(Failure::TimedOut(timeout.as_secs()))
            }
        };
        let files = match before {
            Some(before) => changes_since(before).await,
            None => Vec::new(),
        };
        match result {
            Ok(out) => Ok((out, files)),
            Err(e) => Err((e, files)),
        }
    }
}

/// Followers here of a task run elsewhere: a notice can be lost (the listener reconnecting, a
/// watch that reached the runner just as the task ended), so its row is read every
/// [`CLAIM_POLL`] until the followers' entry goes. A task found finished ends them with its
/// final status (and its stored output, when no replay came).
async fn check_followed(store: Store, active: Arc<Mutex<HashMap<String, Active>>>, id: String) {
    let followed = || {
        active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .is_some_and(|e| !e.local)
    };
    loop {
        tokio::time::sleep(CLAIM_POLL).await;
        if !followed() {
            return;
        }
        let row = match rows::get(&store, &id).await {
            Ok(Some(row)) if row.status.is_terminal() => row,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(task_id = %id, "cannot read a followed task: {e}");
                continue;
            }
        };
        let mut active = active.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = active.get(&id).filter(|e| !e.local) else {
            return;
        };
        if !entry.replayed {
            if let Some(output) = row.output.clone().filter(|o| !o.is_empty()) {
                let _ = entry.progress.send(Progress::Output { text: output });
            }
        }
        let _ = entry.progress.send(Progress::of(&row));
        active.remove(&id);
        return;
    }
}

/// The next notice from other replicas; never, alone.
async fn next_notice(
    notices: &mut Option<broadcast::Receiver<Notice>>,
) -> Result<Notice, broadcast::error::RecvError> {
    match notices {
        Some(notices) => notices.recv().await,
        None => std::future::pending().await,
    }
}

/// The skills installed under `dir` (their SKILL.md front matter), sorted by name; staging
/// dirs and anything unreadable are skipped.
fn installed_skills(dir: &Path) -> Vec<agent::SkillInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut skills: Vec<agent::SkillInfo> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| crate::skills::read_front_matter(&e.path()).ok())
        .map(|fm| agent::SkillInfo {
            name: fm.name,
            description: fm.description,
        })
        .collect();
    skills.sort_by(|a, b| a.name.cmp(&b.name));
    skills
}

async fn snapshot(dir: &Path) -> Option<Snapshot> {
    let dir = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || Snapshot::take(&dir)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::warn!("cannot list the working directory: {e}");
            None
        }
        Err(_) => None,
    }
}

/// What changed since `before` (a walk of metadata; see [`super::workspace`]).
async fn changes_since(before: Snapshot) -> Vec<FileChange> {
    let answer = tokio::task::spawn_blocking(move || {
        let changes = before.changes_now();
        // Closing the watch (the kernel drops one mark per directory) is off the task's path.
        tokio::task::spawn_blocking(move || drop(before));
        changes
    });
    match answer.await {
        Ok(Ok(changes)) => changes,
        Ok(Err(e)) => {
            tracing::warn!("cannot list the working directory: {e}");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

enum Failure {
    TimedOut(u64),
    Setup(String),
    Run(RunError),
}

impl Active {
    fn new() -> Active {
        Active {
            progress: broadcast::channel(256).0,
            output: Arc::new(Mutex::new(String::new())),
            cancel: CancellationToken::new(),
            reason: None,
            local: false,
            watched: Arc::new(AtomicBool::new(false)),
            replayed: false,
        }
    }
}

/// A validated task, ready to be stored.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub prompt: String,
    pub options: String,
    pub model: String,
    pub max_tokens: i64,
    pub working_directory: Option<String>,
    pub timeout_seconds: i64,
    pub created_at: String,
}

impl Prepared {
    /// The row as stored (queued, nothing run yet) under `seq`, created by `created_by`.
    pub fn stored(self, seq: i64, created_by: &str) -> TaskRow {
        TaskRow {
            seq,
            id: self.id,
            status: TaskStatus::Queued,
            prompt: self.prompt,
            options: self.options,
            model: self.model,
            max_tokens: self.max_tokens,
            working_directory: self.working_directory,
            timeout_seconds: self.timeout_seconds,
            created_by: created_by.to_owned(),
            created_at: self.created_at,
            started_at: None,
            completed_at: None,
            duration_ms: None,
            error: None,
            output: None,
            files: None,
            input_tokens: None,
            output_tokens: None,
            schedule: None,
            schedule_slot: None,
        }
    }

    /// The row to insert, created by `created_by`.
    pub fn row<'a>(&'a self, created_by: &'a str) -> NewTask<'a> {
        NewTask {
            id: &self.id,
            prompt: &self.prompt,
            options: &self.options,
            model: &self.model,
            max_tokens: self.max_tokens,
            working_directory: self.working_directory.as_deref(),
            timeout_seconds: self.timeout_seconds,
            created_by,
            created_at: &self.created_at,
        }
    }
}

/// A checked `POST /tasks` body.
#[derive(Debug)]
pub struct Checked {
    pub prompt: String,
    /// The options as given (kept on the task record).
    pub options: Value,
    pub model: String,
    pub max_tokens: u32,
    pub working_directory: Option<PathBuf>,
    pub timeout_seconds: u64,
}

const OPTION_KEYS: [&str; 5] = [
    "model",
    "max_tokens",
    "working_directory",
    "timeout_seconds",
    "mcp_servers",
];

/// The MCP servers a task's stored options restrict it to (`None`: the Config's default).
fn task_mcp_servers(options: &str) -> Option<Vec<String>> {
    let options: Value = serde_json::from_str(options).ok()?;
    serde_json::from_value(options.get("mcp_servers")?.clone()).ok()
}

/// Checks a task request against the Config; every problem is reported, by field.
pub fn validate(
    body: &Value,
    tasks: &crate::manifest::kinds::TasksConfig,
    default_model: &str,
    default_max_tokens: u32,
) -> Result<Checked, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| {
        problems.push(Problem {
            field: field.to_owned(),
            message,
        })
    };
    let Some(obj) = body.as_object() else {
        return Err(vec![Problem {
            field: String::new(),
            message: "the body must be a JSON object with a \"prompt\"".into(),
        }]);
    };
    for key in obj.keys() {
        if key != "prompt" && key != "options" {
            problem(
                key,
                "unknown field (expected \"prompt\" and \"options\")".into(),
            );
        }
    }
    let prompt = match obj.get("prompt") {
        Some(Value::String(p)) if p.trim().is_empty() => {
            problem("prompt", "must not be empty".into());
            String::new()
        }
        Some(Value::String(p)) if p.len() as u64 > tasks.max_prompt_bytes => {
            problem(
                "prompt",
                format!(
                    "is {} bytes; the limit is {} (Config tasks.max_prompt_bytes)",
                    p.len(),
                    tasks.max_prompt_bytes
                ),
            );
            String::new()
        }
        Some(Value::String(p)) => p.clone(),
        Some(_) => {
            problem("prompt", "must be a string".into());
            String::new()
        }
        None => {
            problem("prompt", "is required".into());
            String::new()
        }
    };
    let empty = Map::new();
    let options = match obj.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => {
            problem("options", "must be an object".into());
            &empty
        }
    };
    for key in options.keys() {
        if !OPTION_KEYS.contains(&key.as_str()) {
            problem(
                &format!("options.{key}"),
                format!("unknown option (known: {})", OPTION_KEYS.join(", ")),
            );
        }
    }
    let model = match options.get("model") {
        None | Some(Value::Null) => default_model.to_owned(),
        Some(Value::String(m)) if !m.trim().is_empty() && m.len() <= 200 => m.clone(),
        Some(_) => {
            problem(
                "options.model",
                "must be a non-empty string of at most 200 characters".into(),
            );
            String::new()
        }
    };
    let max_tokens = match options.get("max_tokens") {
        None | Some(Value::Null) => default_max_tokens,
        Some(v) => match v.as_u64().filter(|n| (1..=1_000_000).contains(n)) {
            Some(n) => n as u32,
            None => {
                problem(
                    "options.max_tokens",
                    "must be an integer from 1 to 1000000".into(),
                );
                0
            }
        },
    };
    let timeout_seconds = match options.get("timeout_seconds") {
        None | Some(Value::Null) => tasks.timeout_seconds,
        Some(v) => match v
            .as_u64()
            .filter(|n| (1..=tasks.max_timeout_seconds).contains(n))
        {
            Some(n) => n,
            None => {
                problem(
                    "options.timeout_seconds",
                    format!(
                        "must be an integer from 1 to {} (Config tasks.max_timeout_seconds)",
                        tasks.max_timeout_seconds
                    ),
                );
                0
            }
        },
    };
    let working_directory = match options.get("working_directory") {
        None | Some(Value::Null) => None,
        Some(Value::String(dir)) => match check_workdir(dir, &tasks.allowed_roots) {
            Ok(dir) => Some(dir),
            Err(message) => {
                problem("options.working_directory", message);
                None
            }
        },
        Some(_) => {
            problem(
                "options.working_directory",
                "must be a string (an absolute path)".into(),
            );
            None
        }
    };
    match options.get("mcp_servers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(names))
            if names
                .iter()
                .all(|n| n.as_str().is_some_and(|n| !n.is_empty())) => {}
        Some(_) => problem(
            "options.mcp_servers",
            "must be an array of McpServer names ([] for none)".into(),
        ),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Checked {
        prompt,
        options: Value::Object(options.clone()),
        model,
        max_tokens,
        working_directory,
        timeout_seconds,
    })
}

/// A working directory must exist and lie, after resolving symlinks and `..`, inside one of
/// the allowed roots.
fn check_workdir(dir: &str, allowed_roots: &[String]) -> Result<PathBuf, String> {
    let path = Path::new(dir);
    if !path.is_absolute() {
        return Err("must be an absolute path".into());
    }
    if allowed_roots.is_empty() {
        return Err("no working directories are allowed: Config tasks.allowed_roots is empty (omit the option to run in a fresh directory)".into());
    }
    let resolved = path
        .canonicalize()
        .map_err(|e| format!("cannot be used: {e}"))?;
    if !resolved.is_dir() {
        return Err("is not a directory".into());
    }
    let inside = allowed_roots.iter().any(|root| {
        Path::new(root)
            .canonicalize()
            .is_ok_and(|root| resolved.starts_with(root))
    });
    if inside {
        Ok(resolved)
    } else {
        Err(format!(
            "is outside the allowed roots ({})",
            allowed_roots.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::kinds::TasksConfig;
    use serde_json::json;

    fn tasks(roots: Vec<String>) -> TasksConfig {
        TasksConfig {
            allowed_roots: roots,
            ..TasksConfig::default()
        }
    }

    #[test]
    fn the_tutorials_body_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let body = json!({"prompt": "Summarize the latest git commits in my project", "options": {
            "model": "claude-sonnet-4-20250514", "max_tokens": 4096,
            "working_directory": dir.path().to_str().unwrap()}});
        let roots = vec![dir.path().to_str().unwrap().to_owned()];
        let checked = validate(&body, &tasks(roots), "m", 1).unwrap();
        assert_eq!(checked.max_tokens, 4096);
        assert_eq!(
            checked.working_directory.unwrap(),
            dir.path().canonicalize().unwrap()
        );
        assert!(validate(&json!({"prompt": "List the files"}), &tasks(vec![]), "m", 1).is_ok());
    }

    #[test]
    fn every_problem_is_reported_by_field() {
        let body = json!({"prompt": "", "extra": 1, "options": {"max_tokens": 0, "timeout_seconds": 999999, "colour": "red", "working_directory": "relative"}});
        let problems = validate(&body, &tasks(vec![]), "m", 1).unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        for f in [
            "prompt",
            "extra",
            "options.max_tokens",
            "options.timeout_seconds",
            "options.colour",
            "options.working_directory",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn working_directories_outside_the_roots_are_refused_even_through_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let roots = vec![root.path().to_str().unwrap().to_owned()];
        let via_link = root.path().join("link");
        assert!(check_workdir(via_link.to_str().unwrap(), &roots).is_err());
        let dotdot = format!("{}/..", root.path().display());
        assert!(check_workdir(&dotdot, &roots).is_err());
        assert!(check_workdir(root.path().to_str().unwrap(), &roots).is_ok());
        assert!(check_workdir(root.path().to_str().unwrap(), &[]).is_err());
    }

    #[test]
    fn timestamps_sort_as_text() {
        let a = parse_time("2026-03-02T10:30:00Z").unwrap();
        let b = parse_time("2026-03-02T11:30:00+01:00").unwrap();
        assert_eq!(a, "2026-03-02T10:30:00.000Z");
        assert_eq!(a, b);
        assert!(parse_time("yesterday").is_none());
    }
}
