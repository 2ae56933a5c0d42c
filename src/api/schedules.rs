//! Schedules: `GET/POST /schedules`, `GET/PATCH/DELETE /schedules/:name`,
//! `POST /schedules/:name/run`.
//!
//! Schedules are Schedule manifests: writes go through the reconciler like every declared
//! resource. Reads join the declared resource (reflector) with what the schedule runner
//! recorded in the store (clock, skipped slots, runs) and compute the next run times.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::resources::{query, List, Page};
use super::tasks::TaskCreated;
use super::webhooks::Condition;
use super::{AppState, JsonBody};
use crate::manifest::kinds::ScheduleSpec;
use crate::manifest::write::{Edit, WriteError};
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::status::ResourceStatus;
use crate::schedules::runner::{self, RunNowError};
use crate::schedules::timing::{parse_stamp, stamp, Timing};
use crate::store::schedules as rows;

/// How many next run times a schedule shows.
const NEXT_RUNS: usize = 5;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(run))
}

/// A schedule as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct Schedule {
    /// The Schedule resource's name.
    #[schema(example = "morning-summary")]
    pub name: String,
    /// The declared spec (`cron` + `timezone`, `every` or `at`; `prompt`, `options`,
    /// `concurrency`, `suspend`, `starting_deadline_seconds`, `history_limit`).
    #[schema(value_type = Object)]
    pub spec: Value,
    pub status: ScheduleStatus,
    /// The manifest file that declares it, relative to the manifests dir.
    pub file: String,
}

/// What the schedule runner has done with a schedule.
#[derive(Serialize, ToSchema)]
pub struct ScheduleStatus {
    /// The resource's condition (null before its first reconcile).
    pub condition: Option<Condition>,
    pub suspended: bool,
    /// The next run times (RFC 3339), at most 5; empty when suspended or when none is left.
    pub next_runs: Vec<String>,
    /// The newest runs first, at most `history_limit`.
    pub last_runs: Vec<ScheduleRun>,
    /// Slots that never fired: missed past `starting_deadline_seconds`, passed over when
    /// several were missed at once, or refused by `concurrency: forbid`.
    pub skipped: i64,
    /// Runs that failed in a row (0 after a success).
    pub consecutive_failures: u32,
    /// While failures back off (30 s, 1 min, 5 min, 15 min, then 60 min), when the next due
    /// slot may fire.
    pub backoff_until: Option<String>,
    /// When the current spec's clock started (the anchor of `every`); null until the runner
    /// has seen it.
    pub since: Option<String>,
}

/// One run of a schedule.
#[derive(Serialize, ToSchema)]
pub struct ScheduleRun {
    /// The slot (RFC 3339); null for a manual run.
    pub slot: Option<String>,
    /// `slot` (the clock) or `manual` (`POST /schedules/:name/run`).
    pub trigger: String,
    /// The task started; null when the slot was not run.
    pub task_id: Option<String>,
    /// The task's status (`queued`, `running`, `completed`, `failed`, `cancelled`), or
    /// `skipped` / `failed` when no task was started (see `message`).
    pub outcome: String,
    pub message: Option<String>,
    /// When the run was started (RFC 3339).
    pub fired_at: String,
    pub completed_at: Option<String>,
    pub error: Option<String>,
}

/// `POST /schedules`: the Schedule spec's fields plus `name`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; the handler checks it against the Schedule schema
pub struct ScheduleCreate {
    /// The resource name.
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,62}$")]
    name: String,
    /// 5-field cron expression (one of `cron`, `every`, `at`).
    #[schema(example = "0 9 * * 1-5")]
    cron: Option<String>,
    /// IANA zone of `cron` (default UTC).
    #[schema(example = "Europe/Berlin")]
    timezone: Option<String>,
    /// Interval, e.g. `15m`, `1h30m`.
    every: Option<String>,
    /// One-shot instant (RFC 3339).
    at: Option<String>,
    #[schema(min_length = 1)]
    prompt: String,
    /// As in `POST /tasks`.
    options: Option<super::tasks::TaskOptions>,
    /// `allow` (default), `forbid` or `replace`.
    #[schema(pattern = "^(allow|forbid|replace)$")]
    concurrency: Option<String>,
    suspend: Option<bool>,
    #[schema(minimum = 1)]
    starting_deadline_seconds: Option<u64>,
    #[schema(minimum = 1, maximum = 1000)]
    history_limit: Option<u32>,
    description: Option<String>,
}

/// Schedule names in paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct ScheduleName {
    /// The schedule's name.
    name: String,
}

async fn find(
    state: &AppState,
    name: &str,
) -> Result<(Resource, Option<ResourceStatus>), ApiError> {
    super::resources::find_declared(state, Kind::Schedule, name).await
}

/// The API view of a declared schedule and what the runner recorded for it.
async fn item(
    state: &AppState,
    r: &Resource,
    status: Option<&ResourceStatus>,
) -> Result<Schedule, ApiError> {
    let Spec::Schedule(spec) = &r.spec else {
        return Err(ApiError::internal(format!(
            "resource {} is not a Schedule",
            r.name()
        )));
    };
    let row = rows::get(&state.store, r.name())
        .await
        .map_err(ApiError::internal)?;
    let runs = rows::runs(&state.store, r.name(), i64::from(spec.history_limit.max(1)))
        .await
        .map_err(ApiError::internal)?;
    let now = state.schedules.now_ms();
    // The applied row may hold an older spec for a moment (a write is in force when it
    // returns, so only while the reconciler has not caught up with a hand edit).
    let current = row.as_ref().filter(|row| {
        serde_json::from_str::<ScheduleSpec>(&row.spec)
            .ok()
            .as_ref()
            == Some(spec)
    });
    let since = current.and_then(|row| row.since.as_deref().and_then(parse_stamp));
    let cursor = current.and_then(|row| row.cursor.as_deref().and_then(parse_stamp));
    let next_runs = match Timing::of(spec) {
        Ok(timing) if !spec.suspend => {
            let after = match (&timing, cursor) {
                (Timing::At { .. }, Some(c)) => c,
                (Timing::At { .. }, None) => i64::MIN,
                (_, Some(c)) => c.max(now),
                (_, None) => now,
            };
            timing
                .upcoming(after, since.unwrap_or(now), NEXT_RUNS)
                .into_iter()
                .map(stamp)
                .collect()
        }
        _ => Vec::new(),
    };
    let backoff = runner::backoff(&runs);
    Ok(Schedule {
        name: r.name().to_owned(),
        spec: serde_json::to_value(spec).map_err(ApiError::internal)?,
        status: ScheduleStatus {
            condition: status.map(Condition::from),
            suspended: spec.suspend,
            next_runs,
            last_runs: runs
                .into_iter()
                .map(|run| ScheduleRun {
                    slot: (run.trigger == "slot").then(|| run.slot.clone()),
                    outcome: run
                        .outcome
                        .clone()
                        .or(run.task_status.map(|s| s.as_str().to_owned()))
                        .unwrap_or_else(|| "unknown".to_owned()),
                    trigger: run.trigger,
                    task_id: run.task_id,
                    message: run.message,
                    fired_at: run.fired_at,
                    completed_at: run.task_completed_at,
                    error: run.task_error,
                })
                .collect(),
            skipped: row.as_ref().map_or(0, |row| row.skipped),
            consecutive_failures: backoff.map_or(0, |b| b.failures),
            backoff_until: backoff
                .filter(|b| b.until_ms > now)
                .map(|b| stamp(b.until_ms)),
            since: since.map(stamp),
        },
        file: r.origin.file.display().to_string(),
    })
}

/// List schedules
#[utoipa::path(get, path = "/api/v1/schedules", operation_id = "schedules_list", tag = "schedules",
    params(Page),
    responses(
        (status = 200, description = "One page of schedules, by name", body = List<Schedule>),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<List<Schedule>>, ApiError> {
    let page = query(page)?.checked()?;
    let (shown, total) = super::resources::declared_page(&state, Kind::Schedule, &page).await?;
    let mut items = Vec::with_capacity(shown.len());
    for (r, s) in &shown {
        items.push(item(&state, r, s.as_ref()).await?);
    }
    Ok(super::resources::list_body(items, total, &page))
}

/// Get a schedule
///
/// With its next 5 run times and its last runs (task ids and outcomes).
#[utoipa::path(get, path = "/api/v1/schedules/{name}", operation_id = "schedules_get", tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 200, description = "The schedule", body = Schedule),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    let (r, status) = find(&state, &name).await?;
    Ok(Json(item(&state, &r, status.as_ref()).await?))
}

fn field_error(field: &str, message: &str) -> ApiError {
    ApiError::invalid_field("the schedule request is invalid", field, message)
}

/// Create a schedule
///
/// Writes a Schedule manifest (`schedules/<name>.yaml`); in force when the call returns.
#[utoipa::path(post, path = "/api/v1/schedules", operation_id = "schedules_create", tag = "schedules",
    request_body = ScheduleCreate,
    responses(
        (status = 201, description = "Created", body = Schedule,
            links(
                ("GetSchedule" = (operation_id = "schedules_get", parameters(("name" = "$response.body#/name")))),
                ("UpdateSchedule" = (operation_id = "schedules_update", parameters(("name" = "$response.body#/name")))),
                ("DeleteSchedule" = (operation_id = "schedules_delete", parameters(("name" = "$response.body#/name")))),
                ("RunSchedule" = (operation_id = "schedules_run", parameters(("name" = "$response.body#/name")))),
            )),
        (status = 400, description = "`validation_failed` (with `details`), `invalid_body` or `invalid_json`; nothing was written", body = ErrorBody),
        (status = 409, description = "`already_exists`", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object with name, prompt and one of cron, every or at",
        ));
    };
    let name = match body.remove("name") {
        Some(Value::String(n)) => n,
        Some(_) => return Err(field_error("name", "must be a string")),
        None => return Err(field_error("name", "is required")),
    };
    if crate::skills::validate_name(&name).is_err() {
        return Err(field_error(
            "name",
            "must be 1-63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    if find(&state, &name).await.is_ok() {
        return Err(WriteError::AlreadyExists(Kind::Schedule, name, Default::default()).into());
    }
    let edit = Edit::Create {
        kind: Kind::Schedule,
        name: name.clone(),
        spec: Value::Object(body),
        labels: Default::default(),
    };
    state
        .controller
        .write(edit, None, caller.write_context("POST /api/v1/schedules"))
        .await?;
    tracing::info!(token = %caller.0.name, schedule = %name, "schedule created");
    let (r, status) = find(&state, &name).await?;
    let body = item(&state, &r, status.as_ref()).await?;
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/schedules/{name}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Update a schedule
///
/// A JSON merge patch (RFC 7396) of the Schedule spec. A changed spec restarts the schedule's
/// clock (slots passed meanwhile, e.g. while suspended, never fire).
#[utoipa::path(patch, path = "/api/v1/schedules/{name}", operation_id = "schedules_update", tag = "schedules",
    params(ScheduleName),
    request_body(content = Object, content_type = "application/json",
        description = "A merge patch of the fields of `POST /schedules` (without `name`); `null` removes a field"),
    responses(
        (status = 200, description = "Updated", body = Schedule),
        (status = 400, description = "`validation_failed` (with `details`), `invalid_patch` or `invalid_json`; nothing was written", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the manifest moved meanwhile", body = ErrorBody),
    ))]
async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Schedule>, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "invalid_patch",
            "the body must be a JSON object (a merge patch)",
        ));
    }
    find(&state, &name).await?;
    let edit = Edit::MergePatch {
        kind: Kind::Schedule,
        name: name.clone(),
        patch: body,
    };
    let context = caller.write_context(format!("PATCH /api/v1/schedules/{name}"));
    state.controller.write(edit, None, context).await?;
    tracing::info!(token = %caller.0.name, schedule = %name, "schedule updated");
    let (r, status) = find(&state, &name).await?;
    Ok(Json(item(&state, &r, status.as_ref()).await?))
}

/// Delete a schedule
///
/// Removes the Schedule manifest and its run history; its tasks stay.
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", operation_id = "schedules_delete", tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the manifest moved meanwhile", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    find(&state, &name).await?;
    state
        .controller
        .write(
            Edit::Delete {
                kind: Kind::Schedule,
                name: name.clone(),
            },
            None,
            caller.write_context(format!("DELETE /api/v1/schedules/{name}")),
        )
        .await?;
    tracing::info!(token = %caller.0.name, schedule = %name, "schedule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Run a schedule now
///
/// Starts one task from the schedule's prompt and options now, whatever its clock, `suspend`
/// and `concurrency` say; it is listed among the schedule's runs (trigger `manual`).
#[utoipa::path(post, path = "/api/v1/schedules/{name}/run", operation_id = "schedules_run", tag = "schedules",
    params(ScheduleName),
    responses(
        (status = 201, description = "The task started", body = TaskCreated,
            headers(("Location" = String, description = "The task's URL"))),
        (status = 400, description = "`validation_failed`: the schedule's prompt or options are refused by the Config in force", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    find(&state, &name).await?;
    let row = match state.schedules.run_now(&name, &caller.0.name).await {
        Ok(row) => row,
        Err(RunNowError::NotFound(name)) => {
            return Err(ApiError::not_found(format!(
                "schedule \"{name}\" is declared but not applied yet; retry in a moment"
            )))
        }
        Err(RunNowError::Task(e)) => return Err(e.into()),
        Err(RunNowError::Store(e)) => return Err(ApiError::internal(e)),
    };
    tracing::info!(token = %caller.0.name, schedule = %name, task_id = %row.id, "schedule run by hand");
    Ok(super::tasks::created(&row))
}
