//! A Rust client of the claw API (what `claw status` and later `claw task` use).
//!
//! Reads `CLAW_URL` (default `http://127.0.0.1:3000`) and `CLAW_TOKEN` or `OPENCLAW_TOKEN`.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::tasks::TaskStatus;

/// The default server URL.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no token: set CLAW_TOKEN (or OPENCLAW_TOKEN) to a token from `claw token create`")]
    NoToken,
    #[error("cannot reach {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
}

/// A client bound to one server and token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:3000`) with `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Client {
        Client {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    /// A client from `CLAW_URL` and `CLAW_TOKEN` / `OPENCLAW_TOKEN`; `url` overrides the env.
    pub fn from_env(url: Option<String>) -> Result<Client, ClientError> {
        let base = url
            .or_else(|| std::env::var("CLAW_URL").ok())
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let token = std::env::var("CLAW_TOKEN")
            .or_else(|_| std::env::var("OPENCLAW_TOKEN"))
            .map_err(|_| ClientError::NoToken)?;
        Ok(Client::new(base, token))
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> Result<Value, ClientError> {
        self.get("/api/v1/status").await
    }

    /// `POST /api/v1/tasks`: queues a task; returns `{id, status, created_at}`.
    pub async fn create_task(&self, prompt: &str, options: Value) -> Result<Value, ClientError> {
        self.send(
            reqwest::Method::POST,
            "/api/v1/tasks",
            Some(json!({ "prompt": prompt, "options": options })),
        )
        .await
    }

    /// `GET /api/v1/tasks/:id`.
    pub async fn task(&self, id: &str) -> Result<Value, ClientError> {
        self.get(&format!("/api/v1/tasks/{id}")).await
    }

    /// `GET /api/v1/tasks/:id/result` (a 409 `task_not_finished` error while it runs).
    pub async fn result(&self, id: &str) -> Result<Value, ClientError> {
        self.get(&format!("/api/v1/tasks/{id}/result")).await
    }

    /// `GET /api/v1/tasks` with query parameters (`limit`, `offset`, `status`, `q`, ...).
    pub async fn list_tasks(&self, params: &[(&str, &str)]) -> Result<Value, ClientError> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect();
        self.get(&format!("/api/v1/tasks?{}", query.join("&")))
            .await
    }

    /// `POST /api/v1/tasks/:id/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<Value, ClientError> {
        self.send(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            None,
        )
        .await
    }

    /// Waits until the task has finished and returns its result: follows the task's event
    /// stream, and falls back to polling if the stream cannot be used.
    pub async fn wait_for_completion(&self, id: &str) -> Result<Value, ClientError> {
        if let Err(e) = self.follow_events(id, |_| {}).await {
            tracing::debug!("event stream unavailable ({e}); polling");
            let mut delay = Duration::from_millis(250);
            loop {
                let task = self.task(id).await?;
                if has_ended(&task) {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        self.result(id).await
    }

    /// Reads `GET /tasks/:id/events` until the task ends, handing each output chunk to
    /// `on_output`.
    pub async fn follow_events(
        &self,
        id: &str,
        mut on_output: impl FnMut(&str),
    ) -> Result<(), ClientError> {
        let url = format!("{}/api/v1/tasks/{id}/events", self.base);
        let http = |source| ClientError::Http {
            url: url.clone(),
            source,
        };
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(http)?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.map_err(http)?));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut event, mut data) = ("message", String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = if v.trim() == "status" {
                            "status"
                        } else if v.trim() == "output" {
                            "output"
                        } else {
                            "other"
                        };
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                let value: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                match event {
                    "output" => on_output(value["text"].as_str().unwrap_or("")),
                    "status" if has_ended(&value) => {
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }
        Err(ClientError::Api {
            status: 0,
            code: "stream_ended".into(),
            message: "the event stream ended before the task did".into(),
        })
    }

    /// Every declared resource with its status (`GET /api/v1/resources`, all pages), of one
    /// kind if given.
    pub async fn resources(&self, kind: Option<&str>) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        loop {
            let mut path = format!("/api/v1/resources?limit=100&offset={}", items.len());
            if let Some(kind) = kind {
                path += &format!("&kind={}", percent(kind));
            }
            let page = self.get(&path).await?;
            let got = page["items"].as_array().cloned().unwrap_or_default();
            let total = page["total"].as_u64().unwrap_or(0) as usize;
            let empty = got.is_empty();
            items.extend(got);
            if empty || items.len() >= total {
                return Ok(items);
            }
        }
    }

    /// `POST /api/v1/reconcile`: a full reconcile, returning its report.
    pub async fn reconcile(&self, confirm_prune: bool) -> Result<Value, ClientError> {
        let body = confirm_prune.then(|| serde_json::json!({ "confirm_prune": true }));
        self.send(reqwest::Method::POST, "/api/v1/reconcile", body)
            .await
    }

    /// A GET of an API path, returning the JSON body or the API's error.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        response
            .json()
            .await
            .map_err(|source| ClientError::Http { url, source })
    }
}

/// True when a task (or a status event of one) has a status it never leaves.
fn has_ended(task: &Value) -> bool {
    task["status"]
        .as_str()
        .and_then(|s| s.parse::<TaskStatus>().ok())
        .is_some_and(TaskStatus::is_terminal)
}

async fn api_error(response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    ClientError::Api {
        status,
        code: body["error"]["code"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned(),
        message: body["error"]["message"].as_str().unwrap_or("").to_owned(),
    }
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
