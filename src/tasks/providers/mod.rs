//! Model providers: one file per wire format, plus what they share.
//!
//! `anthropic` and `openai` run the tool-use loop over HTTP (request, run the tools the model
//! asked for, send the results back, until the model stops or `max_turns` is reached);
//! `command` hands the prompt to a local program. Each provider writes its output and usage
//! into a [`Progress`] as it goes, so that a task that fails or is cancelled half-way still
//! reports what it produced; `agent::run` turns a [`Failure`] into the public `RunError`.

pub mod anthropic;
pub mod command;
pub mod openai;

use std::time::Duration;

use reqwest::header::HeaderValue;

use super::agent::{OutputSink, Usage};
use crate::manifest::kinds::ModelConfig;
use crate::manifest::secret::SecretContext;

/// The system prompt of the HTTP providers: the tools are described by their own specs.
pub const SYSTEM_PROMPT: &str = "You are an agent working in a working directory that you can \
    only reach through the tools listed. Use them to inspect and change files as the task \
    requires; paths are relative to the working directory. When done, reply with a short \
    summary of what you did.";

/// The system prompt for a request: [`SYSTEM_PROMPT`], plus the installed skills (name and
/// description) when there are any, so the model knows to read one before following it.
pub fn system_prompt(req: &super::agent::RunRequest) -> String {
    if req.skills.is_empty() {
        return SYSTEM_PROMPT.to_owned();
    }
    let mut prompt = format!(
        "{SYSTEM_PROMPT}\n\nSkills are installed: instructions for particular jobs. When one fits \
         the task, read its SKILL.md with the read_skill tool and follow it.\n"
    );
    for skill in &req.skills {
        prompt.push_str(&format!("- {}: {}\n", skill.name, skill.description));
    }
    prompt
}

/// How long establishing a connection to a provider may take; the task's own timeout bounds
/// the rest of the call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Characters of a provider's error message kept in a task error.
const MAX_ERROR_CHARS: usize = 500;

/// Output and usage accumulated by a provider while it runs.
pub(crate) struct Progress {
    pub(crate) output: String,
    pub(crate) usage: Usage,
    sink: OutputSink,
}

impl Progress {
    pub(crate) fn new(sink: OutputSink) -> Progress {
        Progress {
            output: String::new(),
            usage: Usage::default(),
            sink,
        }
    }

    /// Appends output and forwards it to the sink.
    pub(crate) fn emit(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.output.push_str(text);
        (self.sink)(text);
    }

    /// Appends one text block of a model, on its own line so that the text of successive
    /// turns does not run together.
    pub(crate) fn emit_block(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if !self.output.is_empty() && !self.output.ends_with('\n') {
            self.emit("\n");
        }
        self.emit(text);
    }

    pub(crate) fn add_usage(&mut self, input_tokens: u64, output_tokens: u64) {
        self.usage.input_tokens = self.usage.input_tokens.saturating_add(input_tokens);
        self.usage.output_tokens = self.usage.output_tokens.saturating_add(output_tokens);
    }
}

/// Why a provider stopped; `agent::run` adds the output and usage so far.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Provider(String),
    #[error("{0}")]
    Failed(String),
    #[error("cancelled")]
    Cancelled,
}

/// The message of a task that wanted more model round trips than allowed.
pub(crate) fn turn_limit_failure(max_turns: u32) -> Failure {
    Failure::Failed(format!(
        "the model was still using tools after {max_turns} turns (Config tasks.max_turns); \
         stopped"
    ))
}

/// An API key resolved from `model.api_key`. Its `Debug` never shows the value.
pub(crate) struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

impl ApiKey {
    /// A header value marked sensitive, so that it is never printed by HTTP-level logging.
    pub(crate) fn header(&self, prefix: &str) -> Result<HeaderValue, Failure> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", self.0)).map_err(|_| {
            Failure::Config(
                "model.api_key contains characters that are not allowed in an HTTP header"
                    .to_owned(),
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Removes the key from text that came back from a server (some echo request headers).
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "[redacted]")
        }
    }
}

/// Resolves `model.api_key`: `Ok(None)` when none is configured or it resolves to nothing.
pub(crate) fn resolve_key(
    model: &ModelConfig,
    secrets: &SecretContext,
) -> Result<Option<ApiKey>, Failure> {
    let Some(reference) = &model.api_key else {
        return Ok(None);
    };
    let value = secrets
        .resolve(reference)
        .map_err(|e| Failure::Config(format!("model.api_key: {e}")))?;
    let value = value.trim().to_owned();
    Ok((!value.is_empty()).then_some(ApiKey(value)))
}

/// `model.base_url` (or the provider's default) with `path` appended.
pub(crate) fn endpoint(
    model: &ModelConfig,
    default_base: &str,
    path: &str,
) -> Result<reqwest::Url, Failure> {
    let base = model.base_url.as_deref().unwrap_or(default_base);
    let url = format!("{}/{}", base.trim_end_matches('/'), path);
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        Failure::Config(format!("model.base_url \"{base}\" is not a valid URL: {e}"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Failure::Config(format!(
            "model.base_url \"{base}\" must start with http:// or https://"
        )));
    }
    Ok(parsed)
}

/// The HTTP client of one task, under the egress policy. Redirects are refused: an API
/// endpoint has no reason to send one, and following it could carry the key elsewhere.
pub(crate) fn http_client(
    policy: &std::sync::Arc<crate::egress::NetworkPolicy>,
) -> Result<crate::egress::Client, Failure> {
    crate::egress::Client::new(policy.clone(), |b| {
        b.connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
    })
    .map_err(Failure::Config)
}

/// A POST to the provider's endpoint, refused before sending if the egress policy refuses it.
pub(crate) fn post(
    client: &crate::egress::Client,
    url: &reqwest::Url,
) -> Result<reqwest::RequestBuilder, Failure> {
    client
        .post(url.as_str())
        .map_err(|e| Failure::Config(format!("model.base_url: {e}")))
}

/// Sends a JSON request and returns the JSON answer, mapping every failure to a message that
/// names the provider and status but never the key or the request body.
pub(crate) async fn post_json(
    provider: &str,
    request: reqwest::RequestBuilder,
    key: Option<&ApiKey>,
) -> Result<serde_json::Value, Failure> {
    let redact = |text: &str| key.map_or_else(|| text.to_owned(), |k| k.redact(text));
    let response = request
        .send()
        .await
        .map_err(|e| Failure::Provider(redact(&format!("{provider}: request failed: {e}"))))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| {
        Failure::Provider(redact(&format!(
            "{provider}: reading the response (HTTP {status}) failed: {e}"
        )))
    })?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let detail = truncate_chars(&redact(detail.trim()), MAX_ERROR_CHARS);
        return Err(Failure::Provider(if detail.is_empty() {
            format!("{provider}: HTTP {status}")
        } else {
            format!("{provider}: HTTP {status}: {detail}")
        }));
    }
    serde_json::from_slice(&body).map_err(|e| {
        Failure::Provider(format!(
            "{provider}: the response (HTTP {status}) is not valid JSON: {e}"
        ))
    })
}

/// A provider answer that lacks what the wire format promises.
pub(crate) fn garbage(provider: &str, what: &str) -> Failure {
    Failure::Provider(format!("{provider}: unexpected response: {what}"))
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the provider tests: a workdir with a toolbox, and a sink to read.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::tasks::agent::RunRequest;
    use crate::tasks::tools::Toolbox;

    pub struct Fixture {
        pub dir: tempfile::TempDir,
        pub tools: Toolbox,
        pub secrets: SecretContext,
        pub sunk: Arc<Mutex<String>>,
    }

    impl Fixture {
        pub fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let tools = Toolbox::for_workdir(dir.path(), false).unwrap();
            let secrets = SecretContext {
                base_dir: dir.path().into(),
                data_dir: dir.path().into(),
            };
            Fixture {
                dir,
                tools,
                secrets,
                sunk: Arc::default(),
            }
        }

        pub fn request(&self, prompt: &str) -> RunRequest {
            RunRequest {
                task_id: "task-1".to_owned(),
                prompt: prompt.to_owned(),
                model: "test-model".to_owned(),
                max_tokens: 100,
                workdir: self.dir.path().to_owned(),
                max_turns: 5,
                allow_commands: false,
                skills: Vec::new(),
                skills_dir: None,
                egress: Default::default(),
            }
        }

        /// Runs the prompt "write a greeting" against `model` with `max_turns`.
        pub async fn run(
            &self,
            model: &crate::manifest::kinds::ModelConfig,
            max_turns: u32,
        ) -> Result<crate::tasks::agent::RunOutput, crate::tasks::agent::RunError> {
            let mut req = self.request("write a greeting");
            req.max_turns = max_turns;
            crate::tasks::agent::run(
                model,
                &self.secrets,
                &req,
                &self.tools,
                self.sink(),
                tokio_util::sync::CancellationToken::new(),
            )
            .await
        }

        pub fn sink(&self) -> OutputSink {
            let sunk = self.sunk.clone();
            Arc::new(move |text: &str| sunk.lock().unwrap().push_str(text))
        }

        /// A `fromFile` reference to a key file written with `value` (test keys only).
        pub fn key_file(&self, value: &str) -> crate::manifest::kinds::SecretRef {
            std::fs::write(self.dir.path().join(".key"), value).unwrap();
            crate::manifest::kinds::SecretRef::FromFile(".key".to_owned())
        }
    }

    /// What a fake API saw: each request's headers and body.
    pub type Seen = Arc<Mutex<Vec<(axum::http::HeaderMap, serde_json::Value)>>>;

    /// A fake API answering POSTs to `path` with `answers` in order (the last one repeats).
    pub async fn fake_api(
        path: &str,
        answers: Vec<(axum::http::StatusCode, serde_json::Value)>,
    ) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let recorder = seen.clone();
        let answers = Arc::new(answers);
        let handler = move |headers: axum::http::HeaderMap,
                            axum::Json(body): axum::Json<serde_json::Value>| {
            let mut seen = recorder.lock().unwrap();
            seen.push((headers, body));
            let (status, answer) = answers[(seen.len() - 1).min(answers.len() - 1)].clone();
            async move { (status, axum::Json(answer)) }
        };
        let router = axum::Router::new().route(path, axum::routing::post(handler));
        (serve(router).await, seen)
    }

    /// Serves `router` on 127.0.0.1:0 for the rest of the test; returns its base URL.
    pub async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate_chars("héllo", 10), "héllo");
        assert_eq!(truncate_chars("héllo", 2), "hé…");
    }

    #[test]
    fn endpoints_join_the_base_and_refuse_other_schemes() {
        let mut model = ModelConfig::default();
        let url = endpoint(&model, "https://api.example.com/", "v1/messages").unwrap();
        assert_eq!(url.as_str(), "https://api.example.com/v1/messages");
        model.base_url = Some("http://localhost:11434/v1/".to_owned());
        let url = endpoint(&model, "unused", "chat/completions").unwrap();
        assert_eq!(url.as_str(), "http://localhost:11434/v1/chat/completions");
        model.base_url = Some("file:///etc".to_owned());
        assert!(matches!(
            endpoint(&model, "unused", "x"),
            Err(Failure::Config(_))
        ));
    }

    #[test]
    fn keys_are_redacted_and_hidden_from_debug() {
        let key = ApiKey("sk-secret".to_owned());
        assert_eq!(
            key.redact("got x-api-key: sk-secret"),
            "got x-api-key: [redacted]"
        );
        assert!(!format!("{key:?}").contains("sk-secret"));
    }
}
