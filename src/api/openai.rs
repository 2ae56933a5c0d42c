//! The OpenAI-compatible door (SPEC §4), off unless Config `api.openai_compatible` is true:
//! `POST /v1/chat/completions`, `GET /v1/models` and `GET /v1/models/{model}` on the API's
//! port, so any OpenAI client can drive the agent.
//!
//! - Each completion is an ordinary task (listed, evented, cancellable), created by the
//!   caller's token: the messages become its prompt (one user message alone is the prompt as
//!   it is; anything else is a transcript, one `[role]` header per message), its output is
//!   the assistant message, its token counts the `usage`. `max_completion_tokens` (or the
//!   older `max_tokens`) becomes the task's `max_tokens`. Sampling parameters (`temperature`,
//!   `top_p`, …) are accepted and ignored; `n` other than 1, and tools, are refused.
//! - `model` must be the Config's model (`GET /v1/models` lists it): another is 404
//!   `model_not_found`, as OpenAI answers.
//! - `stream: true` answers Server-Sent Events in OpenAI's wire format: `data: {chunk}` lines
//!   (`chat.completion.chunk`; the first carries the role, then the task's output as it
//!   arrives, then `finish_reason: "stop"`; with `stream_options.include_usage` a last chunk
//!   with empty `choices` and the `usage`), ending `data: [DONE]`. A task that fails or is
//!   cancelled ends the stream with `data: {"error": {...}}` instead (what OpenAI's clients
//!   raise). Keep-alive comments every 5 s, so a client that left is noticed.
//! - A client that disconnects before the answer (streaming or not) cancels the task.
//! - The id of a completion is `chatcmpl-` + the task's id; responses also carry
//!   `X-OpenClaw-Task-Id`.
//! - Errors on `/v1/...` are OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`:
//!   `api::json_errors` rewrites every error answer there (authentication, scope, rate limit,
//!   body limit, unknown route, and this module's) with [`rewrite_error`]. A failed task is a
//!   500 `task_failed` with `x-should-retry: false` (OpenAI's clients would otherwise retry it
//!   as a new task).
//! - Authentication, the execute scope and the rate limit are `api::auth`'s, as on `/api/v1`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::store::tasks::TaskRow;
use crate::tasks::service::{Progress, TaskService};
use crate::tasks::TaskStatus;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(models))
        .routes(routes!(model))
}

/// True for a path this module answers, whose errors take OpenAI's shape.
pub fn is_openai_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// The header naming the task behind a completion.
static TASK_ID: HeaderName = HeaderName::from_static("x-openclaw-task-id");

/// Keep-alive comments of a stream; also how soon a client that left is noticed when the
/// task is silent.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// 404 on every `/v1` route while Config `api.openai_compatible` is off (before
/// authentication: the door is closed for everyone).
pub async fn enabled(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.live.config.load().spec.api.openai_compatible {
        next.run(req).await
    } else {
        ApiError::not_found(
            "the OpenAI-compatible API is off; set `api.openai_compatible: true` in the Config to serve it",
        )
        .into_response()
    }
}

/// `POST /v1/chat/completions`. The request, as OpenAI documents it.
#[derive(Deserialize, ToSchema)]
pub struct ChatRequest {
    /// The Config's model (see `GET /v1/models`).
    #[schema(example = "claude-sonnet-4-5")]
    model: String,
    /// The conversation; at least one message.
    messages: Vec<ChatMessage>,
    /// Answer as Server-Sent Events of `chat.completion.chunk`s.
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// Largest answer, in tokens (the task's `max_tokens`).
    #[serde(default)]
    #[schema(minimum = 1)]
    max_completion_tokens: Option<u32>,
    /// The older name of `max_completion_tokens`.
    #[serde(default)]
    #[schema(minimum = 1)]
    max_tokens: Option<u32>,
    /// Only 1.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1)]
    n: Option<u32>,
    /// Not supported (the agent has its own tools).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    tools: Option<Value>,
}

/// `stream_options`.
#[derive(Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send a last chunk with the `usage`.
    #[serde(default)]
    include_usage: Option<bool>,
}

/// One message of the conversation.
#[derive(Deserialize, ToSchema)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    role: String,
    /// Text, or an array of content parts of which the `text` parts are read.
    #[serde(default)]
    #[schema(value_type = Object)]
    content: Value,
}

/// `GET /v1/models`: OpenAI's list.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    object: &'static str,
    data: Vec<Model>,
}

/// A model.
#[derive(Serialize, ToSchema)]
pub struct Model {
    id: String,
    /// `model`.
    object: &'static str,
    /// Unix seconds (when this server started).
    created: i64,
    owned_by: &'static str,
}

/// A non-streaming answer (`chat.completion`).
#[derive(Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-` + the task's id.
    id: String,
    /// `chat.completion`.
    object: &'static str,
    created: i64,
    model: String,
    #[schema(value_type = Vec<Object>)]
    choices: Value,
    usage: CompletionUsage,
    #[schema(value_type = Option<String>)]
    system_fingerprint: Option<String>,
}

/// Token counts, as OpenAI names them.
#[derive(Serialize, ToSchema, Clone, Copy)]
pub struct CompletionUsage {
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
}

impl CompletionUsage {
    fn of(row: &TaskRow) -> CompletionUsage {
        let (prompt, completion) = (
            row.input_tokens.unwrap_or(0),
            row.output_tokens.unwrap_or(0),
        );
        CompletionUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
        }
    }
}

/// OpenAI's error body.
#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    error: OpenAiError,
}

/// What went wrong, in OpenAI's words.
#[derive(Serialize, ToSchema)]
pub struct OpenAiError {
    message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The request field at fault, if one is.
    param: Option<String>,
    code: Option<String>,
}

/// Create a chat completion (OpenAI-compatible)
///
/// Runs the conversation as a task (see the `tasks` operations) and answers its output as the
/// assistant message; with `stream: true` as `text/event-stream` of `chat.completion.chunk`s
/// ending `data: [DONE]`. Off unless Config `api.openai_compatible` (404). A client that
/// disconnects cancels the task. Errors are OpenAI's `{"error": {"message", "type", "param",
/// "code"}}`.
#[utoipa::path(post, path = "/v1/chat/completions", operation_id = "openai_chat_completions", tag = "openai",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The completion (`application/json`); with `stream: true` a `text/event-stream` of `data: {chat.completion.chunk}` lines ending `data: [DONE]`",
            content(
                (ChatCompletion = "application/json"),
                (String = "text/event-stream"),
            ),
            headers(("X-OpenClaw-Task-Id" = String, description = "The task that ran the completion"))),
        (status = 404, description = "`model_not_found`, or the OpenAI-compatible API is off", body = OpenAiErrorBody),
        (status = 500, description = "`task_failed` / `task_cancelled`: the task did not complete", body = OpenAiErrorBody),
    ))]
async fn chat_completions(
    State(state): State<AppState>,
    Extension(Caller(caller)): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ChatRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_request_error",
            format!(
                "the body is not a valid chat completion request (line {}, column {}: {})",
                e.line(),
                e.column(),
                match e.classify() {
                    serde_json::error::Category::Data =>
                        "a required field is missing or a field has the wrong type",
                    serde_json::error::Category::Eof => "unexpected end",
                    _ => "syntax error",
                }
            ),
        )
    })?;
    let config = state.live.config.load();
    if request.model != config.spec.model.name {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "The model `{}` does not exist; this server serves `{}` (GET /v1/models)",
                request.model, config.spec.model.name
            ),
        ));
    }
    if request.n.is_some_and(|n| n != 1) {
        return Err(invalid_param("n", "only n = 1 is supported"));
    }
    if request.tools.as_ref().is_some_and(|t| !t.is_null()) {
        return Err(invalid_param(
            "tools",
            "tools are not supported: the agent uses its own (skills and MCP servers)",
        ));
    }
    let prompt = prompt(&request.messages)?;
    let mut options = Map::new();
    if let Some(max) = request.max_completion_tokens.or(request.max_tokens) {
        options.insert("max_tokens".into(), max.into());
    }
    let task_body = json!({"prompt": prompt, "options": options});
    let row =
        state
            .tasks
            .create(&task_body, &caller.name)
            .await
            .map_err(|e| match ApiError::from(e) {
                // The task's fields are not the request's: name the request's.
                mut e if e.status == StatusCode::BAD_REQUEST => {
                    e.code = "invalid_request_error";
                    for d in &mut e.details {
                        d.field = match d.field.as_str() {
                            "prompt" => "messages".into(),
                            "options.max_tokens" => "max_completion_tokens".into(),
                            other => other.to_owned(),
                        };
                    }
                    e.message = e.details.first().map_or(e.message, |d| d.message.clone());
                    e
                }
                e => e,
            })?;
    let guard = CancelOnDrop {
        tasks: state.tasks.clone(),
        id: row.id.clone(),
        armed: true,
    };
    let completion = Completion {
        id: format!("chatcmpl-{}", row.id),
        created: unix_seconds(&row.created_at),
        model: request.model,
        task: row.id.clone(),
    };
    if request.stream == Some(true) {
        let include_usage = request
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        streamed(state.tasks.clone(), completion, include_usage, guard).await
    } else {
        complete(state.tasks.clone(), completion, guard).await
    }
}

/// List models (OpenAI-compatible)
///
/// The Config's model, the one completions run on. Off unless Config
/// `api.openai_compatible` (404).
#[utoipa::path(get, path = "/v1/models", operation_id = "openai_models", tag = "openai",
    responses(
        (status = 200, description = "The configured model", body = ModelList),
        (status = 404, description = "The OpenAI-compatible API is off", body = OpenAiErrorBody),
    ))]
async fn models(State(state): State<AppState>) -> Json<ModelList> {
    let started = time::OffsetDateTime::now_utc().unix_timestamp()
        - state.live.started.elapsed().as_secs() as i64;
    Json(ModelList {
        object: "list",
        data: vec![Model {
            id: state.live.config.load().spec.model.name.clone(),
            object: "model",
            created: started,
            owned_by: "claw",
        }],
    })
}

/// Retrieve a model (OpenAI-compatible)
///
/// The Config's model by its id; any other is 404 `model_not_found`.
#[utoipa::path(get, path = "/v1/models/{model}", operation_id = "openai_model", tag = "openai",
    params(("model" = String, Path, description = "The model's id")),
    responses(
        (status = 200, description = "The model", body = Model),
        (status = 404, description = "`model_not_found`, or the OpenAI-compatible API is off", body = OpenAiErrorBody),
    ))]
async fn model(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Model>, ApiError> {
    let Json(mut list) = models(State(state)).await;
    match list.data.pop().filter(|m| m.id == id) {
        Some(m) => Ok(Json(m)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("The model `{id}` does not exist; GET /v1/models lists the one served"),
        )),
    }
}

fn invalid_param(field: &str, message: &str) -> ApiError {
    let mut e = ApiError::invalid_field(message, field, message);
    e.code = "invalid_request_error";
    e
}

/// The task's prompt: one user message alone as it is; otherwise a transcript.
fn prompt(messages: &[ChatMessage]) -> Result<String, ApiError> {
    if messages.is_empty() {
        return Err(invalid_param(
            "messages",
            "messages must hold at least one message",
        ));
    }
    let mut texts = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        if !matches!(
            m.role.as_str(),
            "system" | "developer" | "user" | "assistant" | "tool"
        ) {
            return Err(invalid_param(
                &format!("messages.{i}.role"),
                "role must be system, developer, user, assistant or tool",
            ));
        }
        let text = match &m.content {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Array(parts) => parts
                .iter()
                .filter(|p| p["type"] == "text")
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => {
                return Err(invalid_param(
                    &format!("messages.{i}.content"),
                    "content must be a string or an array of content parts",
                ))
            }
        };
        texts.push((m.role.as_str(), text));
    }
    if let [("user", text)] = texts.as_slice() {
        return Ok(text.clone());
    }
    Ok(texts
        .iter()
        .map(|(role, text)| format!("[{role}]\n{text}"))
        .collect::<Vec<_>>()
        .join("\n\n"))
}

/// Unix seconds of a stored timestamp (0 if unreadable).
fn unix_seconds(stored: &str) -> i64 {
    time::OffsetDateTime::parse(stored, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

/// Cancels the task when dropped armed: the client went away before the answer.
struct CancelOnDrop {
    tasks: Arc<TaskService>,
    id: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (tasks, id) = (self.tasks.clone(), std::mem::take(&mut self.id));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tracing::info!(task_id = %id, "the client of a chat completion left; cancelling its task");
                let reason = "cancelled: the client of the chat completion disconnected".to_owned();
                let _ = tasks.cancel_because(&id, reason).await;
            });
        }
    }
}

/// What every answer about one completion repeats.
struct Completion {
    id: String,
    created: i64,
    model: String,
    task: String,
}

impl Completion {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>, include_usage: bool) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn usage_chunk(&self, usage: CompletionUsage) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [],
            "usage": usage,
        })
    }

    fn with_task_header(&self, mut response: Response) -> Response {
        if let Ok(v) = HeaderValue::from_str(&self.task) {
            response.headers_mut().insert(TASK_ID.clone(), v);
        }
        response
    }
}

/// The error a task that did not complete answers.
fn task_error(row: &TaskRow) -> ApiError {
    let (code, what) = if row.status == TaskStatus::Cancelled {
        ("task_cancelled", "was cancelled")
    } else {
        ("task_failed", "failed")
    };
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        code,
        format!(
            "task {} {what}: {}",
            row.id,
            row.error.as_deref().unwrap_or("no reason recorded")
        ),
    )
}

/// Waits for the task's final status; its row then.
async fn finished(tasks: &TaskService, id: &str) -> Result<Arc<TaskRow>, ApiError> {
    let (_, _, receiver) = tasks.subscribe(id).await?;
    if let Some(mut receiver) = receiver {
        loop {
            match receiver.recv().await {
                Ok(p) if p.is_final() => break,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    Ok(tasks.get(id).await?)
}

async fn complete(
    tasks: Arc<TaskService>,
    completion: Completion,
    mut guard: CancelOnDrop,
) -> Result<Response, ApiError> {
    let row = finished(&tasks, &completion.task).await?;
    guard.armed = false;
    if row.status != TaskStatus::Completed {
        let mut response = task_error(&row).into_response();
        response
            .headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("false"));
        return Ok(completion.with_task_header(response));
    }
    let body = ChatCompletion {
        id: completion.id.clone(),
        object: "chat.completion",
        created: completion.created,
        model: completion.model.clone(),
        choices: json!([{
            "index": 0,
            "message": {"role": "assistant", "content": row.output.clone().unwrap_or_default(), "refusal": null},
            "logprobs": null,
            "finish_reason": "stop",
        }]),
        usage: CompletionUsage::of(&row),
        system_fingerprint: None,
    };
    Ok(completion.with_task_header(Json(body).into_response()))
}

/// The state of a streamed completion.
struct Streaming {
    tasks: Arc<TaskService>,
    completion: Completion,
    include_usage: bool,
    guard: CancelOnDrop,
    /// Events ready to send.
    pending: VecDeque<Event>,
    receiver: Option<broadcast::Receiver<Progress>>,
    /// Output sent so far (to send what a lagging receiver missed at the end).
    sent: String,
    done: bool,
}

fn data(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

impl Streaming {
    fn content(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.sent.push_str(text);
        let chunk = self
            .completion
            .chunk(json!({"content": text}), None, self.include_usage);
        self.pending.push_back(data(&chunk));
    }

    /// The closing events, from the task's final row.
    fn finish(&mut self, row: &TaskRow) {
        self.guard.armed = false;
        self.done = true;
        if row.status != TaskStatus::Completed {
            let error = openai_error(&task_error(row));
            self.pending.push_back(data(&json!({ "error": error })));
            return;
        }
        let output = row.output.as_deref().unwrap_or("");
        if let Some(rest) = output.strip_prefix(self.sent.as_str()) {
            let rest = rest.to_owned();
            self.content(&rest);
        }
        let stop = self
            .completion
            .chunk(json!({}), Some("stop"), self.include_usage);
        self.pending.push_back(data(&stop));
        if self.include_usage {
            let usage = self.completion.usage_chunk(CompletionUsage::of(row));
            self.pending.push_back(data(&usage));
        }
        self.pending.push_back(Event::default().data("[DONE]"));
    }

    /// The next event, or `None` at the end.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            let progress = match self.receiver.as_mut() {
                Some(rx) => match rx.recv().await {
                    Ok(p) => Some(p),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => None,
                },
                None => None,
            };
            match progress {
                Some(Progress::Output { text }) => self.content(&text),
                Some(p) if !p.is_final() => {}
                // Final status, or no more progress: the row says how it ended.
                _ => match self.tasks.get(&self.completion.task).await {
                    Ok(row) => self.finish(&row),
                    Err(e) => {
                        self.done = true;
                        let error = openai_error(&ApiError::from(e));
                        self.pending.push_back(data(&json!({ "error": error })));
                    }
                },
            }
        }
    }
}

async fn streamed(
    tasks: Arc<TaskService>,
    completion: Completion,
    include_usage: bool,
    guard: CancelOnDrop,
) -> Result<Response, ApiError> {
    let (row, backlog, receiver) = tasks.subscribe(&completion.task).await?;
    let role = completion.chunk(
        json!({"role": "assistant", "content": ""}),
        None,
        include_usage,
    );
    let mut state = Streaming {
        tasks,
        completion,
        include_usage,
        guard,
        pending: VecDeque::from([data(&role)]),
        receiver,
        sent: String::new(),
        done: false,
    };
    if row.status.is_terminal() {
        state.finish(&row);
    } else {
        state.content(&backlog);
    }
    let task = state.completion.task.clone();
    let events = stream::unfold(state, |mut state| async move {
        let event = state.next().await?;
        Some((Ok::<_, Infallible>(event), state))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&task) {
        response.headers_mut().insert(TASK_ID.clone(), v);
    }
    Ok(response)
}

/// OpenAI's `type` for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

/// OpenAI's `code` for one of ours.
fn error_code(code: &str) -> &str {
    match code {
        "unauthorized" => "invalid_api_key",
        "rate_limited" => "rate_limit_exceeded",
        "invalid_json" | "invalid_body" | "validation_failed" | "invalid_request_error" => {
            "invalid_request_error"
        }
        other => other,
    }
}

fn openai_error(e: &ApiError) -> OpenAiError {
    OpenAiError {
        message: e.message.clone(),
        kind: error_type(e.status),
        param: e.details.first().map(|d| d.field.clone()),
        code: Some(error_code(e.code).to_owned()),
    }
}

/// Rewrites an error answer of ours (`{"error": {"code", "message", "details"?}}`) into
/// OpenAI's shape, keeping the status and headers (`Retry-After`, `X-RateLimit-*`, …).
pub async fn rewrite_error(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    let ours: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let error = &ours["error"];
    if error.get("type").is_some() {
        // Already OpenAI's.
        return Response::from_parts(parts, Body::from(bytes));
    }
    let code = error["code"].as_str().unwrap_or("error");
    let message = error["message"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| parts.status.canonical_reason().map(str::to_owned))
        .unwrap_or_default();
    let param = error["details"][0]["field"].as_str().map(str::to_owned);
    let body = OpenAiErrorBody {
        error: OpenAiError {
            message,
            kind: error_type(parts.status),
            param,
            code: Some(error_code(code).to_owned()),
        },
    };
    let text = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(v: Value) -> Vec<ChatMessage> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn one_user_message_is_the_prompt_and_more_make_a_transcript() {
        let one = messages(json!([{"role": "user", "content": "list the files"}]));
        assert_eq!(prompt(&one).unwrap(), "list the files");
        let more = messages(json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        ]));
        assert_eq!(prompt(&more).unwrap(), "[system]\nbe brief\n\n[user]\nhi");
        assert!(prompt(&[]).is_err());
        let bad = messages(json!([{"role": "wizard", "content": "x"}]));
        assert_eq!(
            prompt(&bad).unwrap_err().details[0].field,
            "messages.0.role"
        );
    }

    #[tokio::test]
    async fn our_errors_become_openai_errors_with_their_headers() {
        let ours = ApiError::rate_limited(3).into_response();
        let theirs = rewrite_error(ours).await;
        assert_eq!(theirs.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(theirs.headers()[header::RETRY_AFTER], "3");
        let body = axum::body::to_bytes(theirs.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert_eq!(body["error"]["param"], Value::Null);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 second"));
    }
}
