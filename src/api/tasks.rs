//! Tasks: `POST /tasks`, `GET /tasks`, `GET /tasks/:id`, `GET /tasks/:id/result`,
//! `POST /tasks/:id/cancel`, and `GET /tasks/:id/events` (Server-Sent Events of status
//! changes and output, ending when the task ends).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody, FieldError};
use super::resources::{query, List, Page};
use super::{AppState, JsonBody};
use crate::store::tasks::{Filter, TaskRow};
use crate::tasks::service::{parse_time, Progress, TaskError};
use crate::tasks::workspace::FileChange;
use crate::tasks::TaskStatus;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show))
        .routes(routes!(result))
        .routes(routes!(cancel))
        .routes(routes!(events))
}

/// `POST /tasks`: the tutorial's body. Checked field by field by the task service
/// (`tasks::service::validate`), which names every problem in `details`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the body the service validates
pub struct TaskRequest {
    /// What the agent should do (at most Config `tasks.max_prompt_bytes`).
    #[schema(min_length = 1, example = "List the files in the current directory")]
    prompt: String,
    options: Option<TaskOptions>,
}

/// Per-task options; each defaults from the Config.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TaskOptions {
    /// Model name (default: Config `model.name`).
    #[schema(min_length = 1, max_length = 200)]
    model: Option<String>,
    /// Largest answer, in tokens (default: Config `model.max_tokens`).
    #[schema(minimum = 1, maximum = 1000000)]
    max_tokens: Option<u32>,
    /// Absolute path inside one of Config `tasks.allowed_roots`.
    working_directory: Option<String>,
    /// At most Config `tasks.max_timeout_seconds` (default: `tasks.timeout_seconds`).
    #[schema(minimum = 1)]
    timeout_seconds: Option<u64>,
    /// McpServer names whose tools the task may use (`[]` for none; default: Config `tasks.mcp_servers`).
    mcp_servers: Option<Vec<String>>,
}

/// The answer to `POST /tasks`.
#[derive(Serialize, ToSchema)]
pub struct TaskCreated {
    #[schema(example = "task_9f2c4e1a7b3d")]
    pub id: String,
    pub status: TaskStatus,
    /// RFC 3339.
    pub created_at: String,
}

/// A task, as `GET /tasks/:id` shows it.
#[derive(Serialize, ToSchema)]
pub struct Task {
    pub id: String,
    pub status: TaskStatus,
    pub prompt: String,
    /// The request's `options`, as given.
    #[schema(value_type = Object)]
    pub options: Value,
    pub model: String,
    pub max_tokens: i64,
    pub working_directory: Option<String>,
    pub timeout_seconds: i64,
    /// Name of the token that created the task.
    pub created_by: String,
    /// RFC 3339, like every time below.
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// The Schedule that started the task (absent for tasks created by `POST /tasks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The slot it was started for (RFC 3339); absent for a manual run
    /// (`POST /schedules/:name/run`) and for tasks no Schedule started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_slot: Option<String>,
}

impl From<&TaskRow> for Task {
    fn from(row: &TaskRow) -> Task {
        Task {
            id: row.id.clone(),
            status: row.status,
            prompt: row.prompt.clone(),
            options: serde_json::from_str::<Value>(&row.options).unwrap_or_else(|_| json!({})),
            model: row.model.clone(),
            max_tokens: row.max_tokens,
            working_directory: row.working_directory.clone(),
            timeout_seconds: row.timeout_seconds,
            created_by: row.created_by.clone(),
            created_at: row.created_at.clone(),
            started_at: row.started_at.clone(),
            completed_at: row.completed_at.clone(),
            duration_ms: row.duration_ms,
            error: row.error.clone(),
            schedule: row.schedule.clone(),
            schedule_slot: row.schedule_slot.clone(),
        }
    }
}

/// A finished task's result.
#[derive(Serialize, ToSchema)]
pub struct TaskResult {
    pub id: String,
    pub status: TaskStatus,
    /// The agent's final answer.
    pub output: String,
    /// Files the task created, modified or deleted in its working directory.
    pub files: Vec<FileChange>,
    pub usage: Usage,
    pub error: Option<String>,
    pub duration_ms: Option<i64>,
}

/// Tokens the model counted.
#[derive(Serialize, ToSchema)]
pub struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// One Server-Sent Event of `GET /tasks/:id/events`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the events `sse_event` writes
pub struct TaskEvent {
    /// `status` or `output`.
    #[schema(pattern = "^(status|output)$")]
    event: String,
    /// JSON: `{"id", "status", "error"?, "duration_ms"?}` for `status`, `{"text"}` for `output`.
    data: String,
}

/// Task ids in paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct TaskId {
    /// The task's id (`task_…`).
    id: String,
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Invalid(problems) => {
                let mut err =
                    ApiError::bad_request("validation_failed", "the task request is invalid");
                err.details = problems
                    .into_iter()
                    .map(|p| FieldError {
                        pointer: format!("/{}", p.field.replace('.', "/")),
                        field: p.field,
                        message: p.message,
                        file: None,
                        line: None,
                    })
                    .collect();
                err
            }
            TaskError::NotFound(_) => ApiError::not_found(e.to_string()),
            TaskError::Finished { .. } => {
                ApiError::new(StatusCode::CONFLICT, "task_finished", e.to_string())
            }
            TaskError::Store(e) => ApiError::internal(e),
        }
    }
}

/// Create a task
///
/// Queues a prompt for the agent. Honours nothing but the body: the model, limits and
/// working directory default from the Config.
#[utoipa::path(post, path = "/api/v1/tasks", operation_id = "tasks_create", tag = "tasks",
    request_body = TaskRequest,
    responses(
        (status = 201, description = "Queued", body = TaskCreated,
            headers(("Location" = String, description = "The task's URL")),
            links(
                ("GetTask" = (operation_id = "tasks_get", parameters(("id" = "$response.body#/id")))),
                ("GetTaskResult" = (operation_id = "tasks_result", parameters(("id" = "$response.body#/id")))),
                ("CancelTask" = (operation_id = "tasks_cancel", parameters(("id" = "$response.body#/id")))),
                ("TaskEvents" = (operation_id = "tasks_events", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, description = "`validation_failed` (with `details` per field) or `invalid_json`", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    Extension(Caller(caller)): Extension<Caller>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let row = state.tasks.create(&body, &caller.name).await?;
    Ok(created(&row))
}

/// The 201 answer to a created task (`POST /tasks`, `POST /schedules/:name/run`): its id,
/// status and creation time, with `Location`.
pub(crate) fn created(row: &TaskRow) -> Response {
    let mut response = (
        StatusCode::CREATED,
        Json(TaskCreated {
            id: row.id.clone(),
            status: row.status,
            created_at: row.created_at.clone(),
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/tasks/{}", row.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Get a task
#[utoipa::path(get, path = "/api/v1/tasks/{id}", operation_id = "tasks_get", tag = "tasks",
    params(TaskId),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    // A finished task's answer is rendered once (`TaskService::shown` says why it stays true).
    let body = state
        .tasks
        .shown(&id, |row| {
            serde_json::to_vec(&Task::from(row))
                .map(axum::body::Bytes::from)
                .map_err(ApiError::internal)
        })
        .await?;
    // The `Content-Type` `Json` would set.
    let json = HeaderValue::from_static("application/json");
    Ok(([(header::CONTENT_TYPE, json)], body).into_response())
}

/// Get a task's result
///
/// Output, changed files and token usage of a finished task.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/result", operation_id = "tasks_result", tag = "tasks",
    params(TaskId),
    responses(
        (status = 200, description = "The result", body = TaskResult),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`task_not_finished`: queued or running", body = ErrorBody),
    ))]
async fn result(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TaskResult>, ApiError> {
    let row = state.tasks.get(&id).await?;
    if !row.status.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "task_not_finished",
            format!(
                "task {id} is {}; the result exists once it has finished",
                row.status
            ),
        ));
    }
    Ok(Json(TaskResult {
        id: row.id.clone(),
        status: row.status,
        output: row.output.clone().unwrap_or_default(),
        files: row
            .files
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or_default(),
        usage: Usage {
            input_tokens: row.input_tokens.unwrap_or(0),
            output_tokens: row.output_tokens.unwrap_or(0),
        },
        error: row.error.clone(),
        duration_ms: row.duration_ms,
    }))
}

/// Filters of `GET /tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// One status or several, comma-separated (`queued`, `running`, `completed`, `failed`, `cancelled`).
    #[param(example = "completed,failed")]
    status: Option<String>,
    /// Only tasks created at or after this RFC 3339 time.
    #[param(format = DateTime)]
    created_after: Option<String>,
    /// Only tasks created before this RFC 3339 time.
    #[param(format = DateTime)]
    created_before: Option<String>,
    /// Text the prompt contains (at most 200 characters).
    #[param(max_length = 200)]
    q: Option<String>,
}

/// List tasks
///
/// Newest first.
#[utoipa::path(get, path = "/api/v1/tasks", operation_id = "tasks_list", tag = "tasks",
    params(ListQuery, Page),
    responses(
        (status = 200, description = "One page of tasks", body = List<Task>),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    filters: Result<Query<ListQuery>, QueryRejection>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<List<Task>>, ApiError> {
    let filters = query(filters)?;
    let page = query(page)?.checked()?;
    let bad = |message: String| ApiError::bad_request("invalid_parameter", message);
    let mut statuses = Vec::new();
    for s in filters
        .status
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        statuses.push(s.parse::<TaskStatus>().map_err(|e| bad(e.to_string()))?);
    }
    let time = |name: &str, v: Option<String>| -> Result<Option<String>, ApiError> {
        v.map(|v| {
            parse_time(&v).ok_or_else(|| {
                bad(format!(
                    "{name} must be an RFC 3339 time, e.g. 2026-03-02T10:30:00Z"
                ))
            })
        })
        .transpose()
    };
    let q = filters.q.filter(|q| !q.is_empty());
    if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(bad("q is limited to 200 characters".into()));
    }
    // SQLite's full-text query parser ends a string at NUL ("unterminated string").
    if q.as_ref().is_some_and(|q| q.contains('\0')) {
        return Err(bad("q may not contain NUL (U+0000)".into()));
    }
    let filter = Filter {
        statuses,
        created_after: time("created_after", filters.created_after)?,
        created_before: time("created_before", filters.created_before)?,
        q,
        limit: page.limit as i64,
        offset: page.offset as i64,
    };
    let (rows, total) = state.tasks.list(&filter).await?;
    let items = rows.iter().map(Task::from).collect();
    Ok(Json(List::new(items, total as usize, &page)))
}

/// Cancel a task
///
/// Cancels a queued or running task; answers the task as it now is.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", operation_id = "tasks_cancel", tag = "tasks",
    params(TaskId),
    responses(
        (status = 200, description = "Cancelled", body = Task),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`task_finished`: it already ended", body = ErrorBody),
    ))]
async fn cancel(
    State(state): State<AppState>,
    Extension(Caller(caller)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(Task::from(
        &*state.tasks.cancel(&id, &caller.name).await?,
    )))
}

fn sse_event(p: &Progress) -> Event {
    Event::default()
        .event(p.name())
        .data(serde_json::to_string(p).unwrap_or_default())
}

/// Stream a task's progress
///
/// Server-Sent Events: `event: status` (data `{"id", "status", "error"?, "duration_ms"?}`)
/// on every status change and `event: output` (data `{"text"}`) as output arrives; the whole
/// output so far is sent first, and the stream ends after the final status. Keep-alive
/// comments every 15 s.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/events", operation_id = "tasks_events", tag = "tasks",
    params(TaskId),
    responses(
        (status = 200, description = "The event stream; each event as `TaskEvent`", content_type = "text/event-stream", body = TaskEvent),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (row, backlog, receiver) = state.tasks.subscribe(&id).await?;
    let status = Progress::Status {
        id: row.id.clone(),
        status: row.status,
        error: row.error.clone(),
        duration_ms: row.duration_ms,
    };
    let done = status.is_final() || receiver.is_none();
    // A subscriber always sees the whole output: a finished task's stored output before its
    // final status, a running task's output so far after its current status.
    let mut first = Vec::with_capacity(2);
    if done {
        if let Some(output) = row.output.clone().filter(|o| !o.is_empty()) {
            first.push(Progress::Output { text: output });
        }
        first.push(status);
    } else {
        first.push(status);
        if !backlog.is_empty() {
            first.push(Progress::Output { text: backlog });
        }
    }
    first.reverse();
    let stream = stream::unfold(
        (first, receiver, done),
        |(mut first, mut receiver, done)| async move {
            if let Some(next) = first.pop() {
                return Some((Ok(sse_event(&next)), (first, receiver, done)));
            }
            if done {
                return None;
            }
            let rx = receiver.as_mut()?;
            loop {
                match rx.recv().await {
                    Ok(p) => {
                        let last = p.is_final();
                        return Some((Ok(sse_event(&p)), (Vec::new(), receiver, last)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
