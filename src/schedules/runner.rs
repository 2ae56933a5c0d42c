//! The schedule runner: a loop that, for every applied Schedule, finds the slots that came
//! since its cursor and fires them, then sleeps (on a [`Clock`]) until the next slot, a
//! backoff's end, or a Schedule change.
//!
//! Per schedule and pass:
//! - a spec seen for the first time starts its clock (`since` = now, the anchor of `every`;
//!   the cursor = now, or the epoch for `at`, so a one-shot in the past counts as missed);
//! - suspended: the cursor follows now and nothing fires (slots passed while suspended never
//!   fire, and are not counted as skipped);
//! - slots in `(cursor, now]`: while the schedule backs off after failures they wait; if the
//!   last is older than `starting_deadline_seconds` all are skipped and counted; otherwise the
//!   last fires once and the others are counted as skipped. `forbid` with a run still queued
//!   or running records the slot as skipped; `replace` cancels those runs after starting the
//!   new one.
//!
//! The cursor moves by compare-and-set in the same transaction that records the slot and
//! inserts its task (`store::schedules::advance`), so each slot fires at most once.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::timing::{parse_stamp, stamp, Timing};
use crate::live::Live;
use crate::manifest::kinds::{Concurrency, ScheduleSpec};
use crate::store::schedules::{self as rows, NewRun, RunRow, ScheduleRow};
use crate::store::{Store, StoreError};
use crate::tasks::service::{TaskError, TaskService};
use crate::tasks::TaskStatus;
use crate::webhooks::clock::Clock;

/// Delay after consecutive failed runs, as OpenClaw's cron: 30 s, 1 min, 5 min, 15 min, then
/// 60 min for every further failure.
pub const BACKOFF_MS: [i64; 5] = [30_000, 60_000, 300_000, 900_000, 3_600_000];

/// How long the loop sleeps at most without a due slot (it re-reads the table: another
/// replica may have changed it).
const RESCAN_MS: i64 = 60_000;

/// Missed slots counted one by one at most (beyond, the count is this).
const COUNT_CAP: u64 = 1_000_000;

/// Runs to read when deciding a backoff.
const BACKOFF_WINDOW: i64 = 20;

/// Fires Schedule slots as tasks.
/// How often a replica that is not the leader checks whether it has become it.
const FOLLOWER_RECHECK_MS: i64 = 1_000;

pub struct Runner {
    store: Store,
    tasks: Arc<TaskService>,
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    /// Passes begun, passes finished, and the clock reading the last finished one ran at
    /// (tests await a pass that began after their change).
    pub passes: watch::Sender<(u64, u64, i64)>,
}

/// A failing streak: how many runs in a row failed, and until when the schedule waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub failures: u32,
    pub until_ms: i64,
}

/// The backoff after `runs` (newest first): failed runs in a row (runs still queued or running
/// and skipped slots do not break the streak; a completed or cancelled run does), counted from
/// the newest failure's end: when it fired plus how long its task ran (both on the runner's
/// clock's terms; the task's own timestamps are the system's).
pub fn backoff(runs: &[RunRow]) -> Option<Backoff> {
    let mut failures = 0u32;
    let mut latest: Option<i64> = None;
    for run in runs {
        let failed = match (run.outcome.as_deref(), run.task_status) {
            (Some("failed"), _) => true,
            (_, Some(TaskStatus::Failed)) => true,
            (_, Some(TaskStatus::Completed | TaskStatus::Cancelled)) => false,
            _ => continue,
        };
        if !failed {
            break;
        }
        failures += 1;
        if latest.is_none() {
            let fired = parse_stamp(&run.fired_at).unwrap_or(0);
            latest = Some(fired.saturating_add(run.task_duration_ms.unwrap_or(0)));
        }
    }
    let step = BACKOFF_MS[(failures as usize).clamp(1, BACKOFF_MS.len()) - 1];
    latest.map(|at| Backoff {
        failures,
        until_ms: at.saturating_add(step),
    })
}

/// The parsed state of one schedule row.
pub struct Parsed {
    pub spec: ScheduleSpec,
    pub timing: Timing,
}

/// Parses a stored spec; `None` (logged) when it does not parse, which the handler prevents.
pub fn parse(row: &ScheduleRow) -> Option<Parsed> {
    let spec: ScheduleSpec = match serde_json::from_str(&row.spec) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(schedule = %row.name, "stored spec does not parse: {e}");
            return None;
        }
    };
    match Timing::of(&spec) {
        Ok(timing) => Some(Parsed { spec, timing }),
        Err(e) => {
            tracing::warn!(schedule = %row.name, "{e}");
            None
        }
    }
}

/// The `POST /tasks` body of a schedule's task.
pub fn task_body(spec: &ScheduleSpec) -> serde_json::Value {
    let mut body = serde_json::json!({ "prompt": spec.prompt });
    if !spec.options.is_empty() {
        body["options"] = serde_json::to_value(&spec.options).unwrap_or_default();
    }
    body
}

/// Why a manual run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunNowError {
    #[error("schedule \"{0}\" is not applied (yet)")]
    NotFound(String),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Runner {
    /// A runner telling time by `clock`.
    pub fn new(
        store: Store,
        tasks: Arc<TaskService>,
        live: Arc<Live>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Runner> {
        Arc::new(Runner {
            store,
            tasks,
            live,
            passes: watch::Sender::new((0, 0, i64::MIN)),
            clock,
        })
    }

    /// Now, by the runner's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Runs the loop until `stop`.
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let now = self.clock.now_ms();
                self.passes.send_modify(|p| p.0 += 1);
                let wake = match self.pass(now).await {
                    Ok(wake) => wake.unwrap_or(i64::MAX).min(now + RESCAN_MS),
                    Err(e) => {
                        tracing::error!("schedule runner: {e}");
                        now + 5_000
                    }
                };
                self.passes.send_modify(|p| *p = (p.0, p.0, now));
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = self.clock.sleep_until_or(Some(wake), &self.live.schedules) => {}
                }
            }
        })
    }

    /// One pass over every schedule at `now`; answers when the next one is due.
    async fn pass(&self, now: i64) -> Result<Option<i64>, StoreError> {
        // The leader fires slots (SPEC §6); the others look again soon, so a new leader takes
        // over within a second of its election. The (schedule, slot) key keeps a slot to one
        // task even while two replicas both believe they lead.
        if !self.live.cluster.is_leader() {
            return Ok(Some(now + FOLLOWER_RECHECK_MS));
        }
        let mut wake: Option<i64> = None;
        for row in rows::all(&self.store).await? {
            let next = match self.one(&row, now).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(schedule = %row.name, "{e}");
                    Some(now + 5_000)
                }
            };
            if let Some(t) = next {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        }
        Ok(wake)
    }

    /// Handles one schedule at `now`; answers when it needs looking at again.
    async fn one(&self, row: &ScheduleRow, now: i64) -> Result<Option<i64>, StoreError> {
        let Some(Parsed { spec, timing }) = parse(row) else {
            return Ok(None);
        };
        let name = row.name.as_str();
        let (Some(cursor), Some(since)) = (
            row.cursor.as_deref().and_then(parse_stamp),
            row.since.as_deref().and_then(parse_stamp),
        ) else {
            let cursor = match timing {
                Timing::At { .. } => 0,
                _ => now,
            };
            rows::start_clock(&self.store, name, &row.spec, &stamp(now), &stamp(cursor)).await?;
            return Ok(Some(now));
        };
        let from = row.cursor.as_deref().unwrap_or_default();
        if spec.suspend {
            if cursor < now {
                rows::advance(&self.store, name, &row.spec, from, &stamp(now), 0, None).await?;
            }
            return Ok(None);
        }
        let (count, last) = timing.slots_between(cursor, now, since, COUNT_CAP);
        let Some(last) = last else {
            return Ok(timing.next_after(cursor.max(now), since));
        };
        let runs = rows::runs(&self.store, name, BACKOFF_WINDOW).await?;
        if let Some(b) = backoff(&runs) {
            if now < b.until_ms {
                // The due slot waits for the backoff's end (then fires, deadline permitting).
                return Ok(Some(b.until_ms));
            }
        }
        let to = stamp(now);
        let too_late = spec.starting_deadline_seconds.is_some_and(|d| {
            now - last > i64::try_from(d).unwrap_or(i64::MAX).saturating_mul(1000)
        });
        if too_late {
            tracing::info!(schedule = %name, missed = count, "missed slots are past the starting deadline; skipped");
            rows::advance(&self.store, name, &row.spec, from, &to, count as i64, None).await?;
            return Ok(timing.next_after(now, since));
        }
        let slot = stamp(last);
        let fired_at = stamp(now);
        let active = rows::active_tasks(&self.store, name).await?;
        let mut skipped = count as i64 - 1;
        let forbidden = spec.concurrency == Concurrency::Forbid && !active.is_empty();
        let prepared = if forbidden {
            skipped += 1;
            Err(format!(
                "concurrency: forbid, and {} is still {}",
                active[0],
                if active.len() > 1 {
                    "among the runs going"
                } else {
                    "going"
                }
            ))
        } else {
            self.tasks
                .prepare(&task_body(&spec))
                .map_err(|e| e.to_string())
        };
        let created_by = format!("schedule:{name}");
        let run = match &prepared {
            Ok(task) => NewRun {
                slot: &slot,
                trigger: "slot",
                task: Some(task.row(&created_by)),
                outcome: None,
                message: None,
                fired_at: &fired_at,
            },
            Err(message) => NewRun {
                slot: &slot,
                trigger: "slot",
                task: None,
                outcome: Some(if forbidden { "skipped" } else { "failed" }),
                message: Some(message),
                fired_at: &fired_at,
            },
        };
        let (_, recorded) =
            rows::advance(&self.store, name, &row.spec, from, &to, skipped, Some(&run)).await?;
        if recorded {
            match &prepared {
                Ok(task) => {
                    tracing::info!(schedule = %name, slot = %slot, task_id = %task.id, "schedule fired");
                    self.tasks.enqueued(&task.id, &created_by);
                    if spec.concurrency == Concurrency::Replace {
                        self.replace(name, &active);
                    }
                }
                Err(message) => {
                    tracing::warn!(schedule = %name, slot = %slot, "slot not run: {message}")
                }
            }
            rows::prune(&self.store, name, i64::from(spec.history_limit.max(1))).await?;
        }
        Ok(timing.next_after(now, since))
    }

    /// Cancels the runs a `replace` schedule's new run replaces (in the background: a running
    /// task takes a moment to stop).
    fn replace(&self, name: &str, active: &[String]) {
        for id in active {
            let (tasks, id, by) = (self.tasks.clone(), id.clone(), format!("schedule:{name}"));
            tokio::spawn(async move {
                if let Err(e) = tasks.cancel(&id, &by).await {
                    tracing::debug!(task_id = %id, "replace: {e}");
                }
            });
        }
    }

    /// `POST /schedules/:name/run`: starts a task now, whatever the clock, `suspend` and the
    /// concurrency policy say; recorded among the schedule's runs.
    pub async fn run_now(
        &self,
        name: &str,
        created_by: &str,
    ) -> Result<crate::store::tasks::TaskRow, RunNowError> {
        let row = rows::get(&self.store, name)
            .await?
            .ok_or_else(|| RunNowError::NotFound(name.to_owned()))?;
        let spec: ScheduleSpec =
            serde_json::from_str(&row.spec).map_err(|_| RunNowError::NotFound(name.to_owned()))?;
        let task = self.tasks.prepare(&task_body(&spec))?;
        let slot = format!("manual:{}", task.id);
        let fired_at = stamp(self.clock.now_ms());
        rows::record(
            &self.store,
            name,
            &NewRun {
                slot: &slot,
                trigger: "manual",
                task: Some(task.row(created_by)),
                outcome: None,
                message: None,
                fired_at: &fired_at,
            },
        )
        .await?;
        self.tasks.enqueued(&task.id, created_by);
        rows::prune(&self.store, name, i64::from(spec.history_limit.max(1))).await?;
        Ok(self.tasks.get(&task.id).await.map(|r| (*r).clone())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fired: &str, status: Option<TaskStatus>, outcome: Option<&str>) -> RunRow {
        RunRow {
            slot: fired.to_owned(),
            trigger: "slot".into(),
            task_id: status.map(|_| "task_x".into()),
            outcome: outcome.map(str::to_owned),
            message: None,
            fired_at: fired.to_owned(),
            task_status: status,
            task_completed_at: None,
            task_duration_ms: Some(0),
            task_error: None,
        }
    }

    #[test]
    fn backoff_grows_with_failures_in_a_row_as_openclaws_cron() {
        let t0 = "2026-01-01T00:00:00.000Z";
        let base = parse_stamp(t0).unwrap();
        assert_eq!(backoff(&[]), None);
        let ok = run(t0, Some(TaskStatus::Completed), None);
        assert_eq!(backoff(std::slice::from_ref(&ok)), None);
        let failed = run(t0, Some(TaskStatus::Failed), None);
        let mut runs = vec![failed.clone()];
        let mut expected = Vec::new();
        for _ in 0..6 {
            let b = backoff(&runs).unwrap();
            expected.push(b.until_ms - base);
            runs.push(failed.clone());
        }
        assert_eq!(
            expected,
            [30_000, 60_000, 300_000, 900_000, 3_600_000, 3_600_000]
        );
        // A success ends the streak; a running run or a skipped slot does not.
        let mixed = vec![
            run(t0, Some(TaskStatus::Running), None),
            run(t0, None, Some("skipped")),
            failed.clone(),
            ok,
            failed,
        ];
        assert_eq!(backoff(&mixed).map(|b| b.failures), Some(1));
    }
}
