//! The contract between the task runner and the agent: one [`run`] per task.
//!
//! The runner decides *what* runs (prompt, model, working directory, limits) and owns the
//! task's lifecycle (queue, timeout, persistence, events). This module decides *how*: it picks
//! the provider from the Config's `model.provider`, streams output to the runner's sink, and
//! stops promptly when the cancellation token fires or the future is dropped.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::providers::{self, Failure, Progress};
use super::tools;
use crate::manifest::kinds::{ModelConfig, Provider};
use crate::manifest::secret::SecretContext;

/// What to run: one task's prompt and the limits it runs under.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The task's id (passed to command providers as `CLAW_TASK_ID`, and logged).
    pub task_id: String,
    /// The user's prompt.
    pub prompt: String,
    /// Model name (from the task's options or the Config's `model.name`).
    pub model: String,
    /// Maximum tokens generated per model response.
    pub max_tokens: u32,
    /// The working directory; it exists and the runner has checked it against allowed roots.
    pub workdir: PathBuf,
    /// Model round trips this task may take (Config `tasks.max_turns`).
    pub max_turns: u32,
    /// Whether the agent may run shell commands (Config `tasks.allow_commands`).
    pub allow_commands: bool,
    /// Installed, enabled skills the model is told about (and may read with `read_skill`).
    pub skills: Vec<SkillInfo>,
    /// Where installed skills live (`CLAW_SKILLS_DIR` for the command provider).
    pub skills_dir: Option<PathBuf>,
    /// The egress policy the model provider's HTTP client connects under.
    pub egress: std::sync::Arc<crate::egress::NetworkPolicy>,
}

/// A skill as the agent is told about it: its SKILL.md front matter's name and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillInfo {
    pub name: String,
    pub description: String,
}

/// Tokens a task consumed, summed over all its model calls.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (Anthropic `input_tokens`, OpenAI `prompt_tokens`).
    pub input_tokens: u64,
    /// Generated tokens (Anthropic `output_tokens`, OpenAI `completion_tokens`).
    pub output_tokens: u64,
}

/// A finished task's result.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Everything the agent said (model text, or the command's stdout).
    pub output: String,
    /// Tokens consumed.
    pub usage: Usage,
}

/// Why a task did not finish. Every variant past `Config` carries the output and usage so far.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Misconfiguration found before any work (missing API key, empty command argv, bad base_url): message never contains a secret.
    #[error("{0}")]
    Config(String),
    /// The provider answered an error or garbage; message says which provider/status, never the key.
    #[error("{message}")]
    Provider {
        message: String,
        output: String,
        usage: Usage,
    },
    /// The work failed: the command provider exited non-zero (message = "exit status N: <tail
    /// of stderr, last ~2 KB>"), or the model wanted more than `max_turns` round trips.
    #[error("{message}")]
    Failed {
        message: String,
        output: String,
        usage: Usage,
    },
    /// The cancellation token fired; the work was stopped.
    #[error("cancelled")]
    Cancelled { output: String, usage: Usage },
}

/// Receives output as it arrives (the runner forwards it to Server-Sent Events subscribers).
pub type OutputSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Runs one task with the configured provider. Returns when done, failed, or `cancel` fires
/// (then promptly: an HTTP call in flight is dropped, a child process group is killed).
///
/// Dropping the returned future is also a cancellation: child process groups are killed by
/// guards, HTTP requests are aborted.
pub async fn run(
    model: &ModelConfig,
    secrets: &SecretContext,
    req: &RunRequest,
    tools: &tools::Toolbox,
    sink: OutputSink,
    cancel: CancellationToken,
) -> Result<RunOutput, RunError> {
    let span = tracing::info_span!(
        "agent",
        task_id = %req.task_id,
        provider = model.provider.as_str(),
        model = %req.model,
    );

    let mut progress = Progress::new(sink);
    let progress_ref = &mut progress;
    let result = async {
        match model.provider {
            Provider::Anthropic => {
                let work = providers::anthropic::run(model, secrets, req, tools, progress_ref);
                until_cancelled(work, &cancel).await
            }
            Provider::Openai => {
                let work = providers::openai::run(model, secrets, req, tools, progress_ref);
                until_cancelled(work, &cancel).await
            }
            // The command provider watches the token itself so that it can kill and reap
            // its process group before returning.
            Provider::Command => providers::command::run(model, req, progress_ref, &cancel).await,
        }
    }
    .instrument(span.clone())
    .await;

    let Progress { output, usage, .. } = progress;
    match result {
        Ok(()) => {
            tracing::info!(parent: &span, usage.input_tokens, usage.output_tokens, "agent finished");
            Ok(RunOutput { output, usage })
        }
        Err(failure) => {
            tracing::info!(parent: &span, error = %failure, "agent stopped");
            Err(match failure {
                Failure::Config(message) => RunError::Config(message),
                Failure::Provider(message) => RunError::Provider {
                    message,
                    output,
                    usage,
                },
                Failure::Failed(message) => RunError::Failed {
                    message,
                    output,
                    usage,
                },
                Failure::Cancelled => RunError::Cancelled { output, usage },
            })
        }
    }
}

/// Runs `work` until it finishes or `cancel` fires; then it is dropped, which aborts an HTTP
/// request in flight and kills a tool's process group.
async fn until_cancelled(
    work: impl std::future::Future<Output = Result<(), Failure>>,
    cancel: &CancellationToken,
) -> Result<(), Failure> {
    tokio::select! {
        result = work => result,
        () = cancel.cancelled() => Err(Failure::Cancelled),
    }
}
