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
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, FieldError};
use super::resources::{query, Page};
use super::{AppState, JsonBody};
use crate::store::tasks::{Filter, TaskRow};
use crate::tasks::service::{parse_time, Progress, TaskError};
use crate::tasks::TaskStatus;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tasks", post(create).get(list))
        .route("/api/v1/tasks/{id}", get(show))
        .route("/api/v1/tasks/{id}/result", get(result))
        .route("/api/v1/tasks/{id}/cancel", post(cancel))
        .route("/api/v1/tasks/{id}/events", get(events))
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

/// The task as `GET /tasks/:id` shows it.
pub fn task_json(row: &TaskRow) -> Value {
    json!({
        "id": row.id,
        "status": row.status,
        "prompt": row.prompt,
        "options": serde_json::from_str::<Value>(&row.options).unwrap_or_else(|_| json!({})),
        "model": row.model,
        "max_tokens": row.max_tokens,
        "working_directory": row.working_directory,
        "timeout_seconds": row.timeout_seconds,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "completed_at": row.completed_at,
        "duration_ms": row.duration_ms,
        "error": row.error,
    })
}

async fn create(
    State(state): State<AppState>,
    Extension(Caller(caller)): Extension<Caller>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let row = state.tasks.create(&body, &caller.name).await?;
    let mut response = (
        StatusCode::CREATED,
        Json(json!({ "id": row.id, "status": row.status, "created_at": row.created_at })),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/tasks/{}", row.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(task_json(&*state.tasks.get(&id).await?)))
}

async fn result(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "id": row.id,
        "status": row.status,
        "output": row.output.as_deref().unwrap_or_default(),
        "files": row.files.as_deref().and_then(|f| serde_json::from_str::<Value>(f).ok()).unwrap_or_else(|| json!([])),
        "usage": {
            "input_tokens": row.input_tokens.unwrap_or(0),
            "output_tokens": row.output_tokens.unwrap_or(0),
        },
        "error": row.error,
        "duration_ms": row.duration_ms,
    })))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    q: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    filters: Result<Query<ListQuery>, QueryRejection>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    let filter = Filter {
        statuses,
        created_after: time("created_after", filters.created_after)?,
        created_before: time("created_before", filters.created_before)?,
        q,
        limit: page.limit as i64,
        offset: page.offset as i64,
    };
    let (rows, total) = state.tasks.list(&filter).await?;
    let items: Vec<Value> = rows.iter().map(task_json).collect();
    Ok(Json(
        json!({ "items": items, "total": total, "limit": page.limit, "offset": page.offset }),
    ))
}

async fn cancel(
    State(state): State<AppState>,
    Extension(Caller(caller)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(task_json(
        &*state.tasks.cancel(&id, &caller.name).await?,
    )))
}

fn sse_event(p: &Progress) -> Event {
    Event::default()
        .event(p.name())
        .data(serde_json::to_string(p).unwrap_or_default())
}

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
