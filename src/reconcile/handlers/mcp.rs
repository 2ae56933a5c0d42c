//! The McpServer handler: tells the supervisor ([`crate::mcp`]) which servers should run.
//!
//! `apply` (fast, in the transaction) resolves the secret references of `env` / `headers` (one
//! that cannot be resolved makes the server not Ready, `SecretUnavailable`, and leaves a
//! running version alone) and answers `Progressing`. The slow part ([`Handler::work`], run by
//! the scheduler, side by side for every server) starts or restarts the server and waits a
//! bounded time ([`SETTLE`]) for the first attempt so that the status says how it went: Ready
//! `Connected` (with the tool count), not Ready `StartFailed` (the reconciler raises
//! `system.error`), or Ready `Starting` when the server is slow. From then on the supervisor
//! owns the server and its live state (`/api/v1/mcp-servers`); full passes (`Job::Resync`)
//! carry that state into the resource status (not Ready while failing, Ready again once
//! connected) and restart the server when a secret it uses changed or after a restart of claw.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::Tx;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::live::Live;
use crate::manifest::kinds::{EnvValue, McpServerSpec, McpTransport};
use crate::manifest::{Kind, Resource, Spec};
use crate::mcp::{Desired, Launch, Phase, ServerStatus};
use crate::reconcile::handler::{ApplyError, Handler, Job, Outcome, WorkResult};
use crate::reconcile::scheduler::JobFuture;

/// Longest a reconcile waits for a server's first start attempt.
const SETTLE: Duration = Duration::from_secs(10);
/// Initialisation and tool-call limit when the manifest sets no `timeout_seconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Converges the supervised MCP servers.
pub struct McpHandler {
    live: Arc<Live>,
    config: Arc<super::config::ConfigHandler>,
    /// Servers last reported failed or starting, whose resource status a full pass updates.
    unsettled: Mutex<HashSet<String>>,
}

impl McpHandler {
    /// A handler driving `live.mcp`.
    pub fn new(live: Arc<Live>, config: Arc<super::config::ConfigHandler>) -> Self {
        McpHandler {
            live,
            config,
            unsettled: Mutex::new(HashSet::new()),
        }
    }

    fn desired(&self, spec: &McpServerSpec) -> Result<Desired, ApplyError> {
        let secrets = self.live.secrets();
        let resolve = |field: &str, values: &std::collections::BTreeMap<String, EnvValue>| {
            values
                .iter()
                .map(|(k, v)| match v {
                    EnvValue::Plain(s) => Ok((k.clone(), s.clone())),
                    EnvValue::Secret(r) => {
                        secrets.resolve(r).map(|s| (k.clone(), s)).map_err(|e| {
                            ApplyError::new("SecretUnavailable", format!("spec.{field}.{k}: {e}"))
                        })
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let launch = match &spec.transport {
            McpTransport::Stdio(stdio) => Launch::Stdio {
                command: stdio.command.clone(),
                args: stdio.args.clone(),
                env: resolve("env", &stdio.env)?,
                // A relative cwd is relative to the manifests root, like `fromFile` secrets.
                cwd: stdio
                    .cwd
                    .as_ref()
                    .map(|cwd| self.live.manifests.join(Path::new(cwd))),
            },
            McpTransport::Http(http) => Launch::Http {
                url: http.url.clone(),
                headers: resolve("headers", &http.headers)?,
                egress: crate::egress::policy_of(&self.config.current()),
            },
        };
        Ok(Desired {
            launch,
            enabled: spec.enabled,
            timeout: spec
                .timeout_seconds
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TIMEOUT),
        })
    }

    /// The resource status that a server status means, remembering failures.
    fn outcome(&self, name: &str, status: Option<ServerStatus>) -> Result<Outcome, ApplyError> {
        let mut unsettled = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        let Some(status) = status else {
            return Err(ApplyError::new(
                "NotSupervised",
                "the server is not running",
            ));
        };
        let result = match status.status {
            Phase::Connected => Ok(Outcome {
                reason: "Connected",
                message: format!(
                    "connected over {}; {} tools",
                    status.transport, status.tools
                ),
            }),
            Phase::Starting => Ok(Outcome {
                reason: "Starting",
                message: "still starting; see GET /api/v1/mcp-servers".into(),
            }),
            Phase::Disabled => Ok(Outcome {
                reason: "Disabled",
                message: "enabled: false in the manifest; the server is not started".into(),
            }),
            Phase::Failed => Err(ApplyError::new(
                "StartFailed",
                status
                    .last_error
                    .unwrap_or_else(|| "the server failed".into()),
            )),
        };
        if result.as_ref().map_or(true, |o| o.reason == "Starting") {
            unsettled.insert(name.to_owned());
        } else {
            unsettled.remove(name);
        }
        result
    }
}

fn spec_of(r: &Resource) -> Result<&McpServerSpec, ApplyError> {
    match &r.spec {
        Spec::McpServer(spec) => Ok(spec),
        _ => Err(ApplyError::new("WrongKind", "not an McpServer")),
    }
}

impl McpHandler {
    /// Starts or restarts the server and waits for its first attempt to settle.
    async fn start(&self, r: &Resource, cancel: &CancellationToken) -> WorkResult {
        let desired = self.desired(spec_of(r)?)?;
        self.live.mcp.ensure(r.name(), desired).await;
        let status = tokio::select! {
            status = self.live.mcp.wait_settled(r.name(), SETTLE) => status,
            _ = cancel.cancelled() => return Ok(None),
        };
        self.outcome(r.name(), status).map(Some)
    }

    /// Restarts the server if anything it uses changed; carries its live state into the status.
    async fn resync(&self, r: &Resource, cancel: &CancellationToken) -> WorkResult {
        let desired = self.desired(spec_of(r)?)?;
        let was_unsettled = self
            .unsettled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(r.name());
        if self.live.mcp.ensure(r.name(), desired).await {
            let status = tokio::select! {
                status = self.live.mcp.wait_settled(r.name(), SETTLE) => status,
                _ = cancel.cancelled() => return Ok(None),
            };
            return self.outcome(r.name(), status).map(Some);
        }
        let outcome = self.outcome(r.name(), self.live.mcp.status(r.name()))?;
        Ok(was_unsettled.then_some(outcome))
    }
}

#[async_trait]
impl Handler for McpHandler {
    fn kind(&self) -> Kind {
        Kind::McpServer
    }

    async fn apply(&self, _tx: &mut Tx, r: &Resource) -> Result<Outcome, ApplyError> {
        // Resolved here only to report a missing secret at once; `work` resolves it again.
        self.desired(spec_of(r)?)?;
        Ok(Outcome::progressing("starting the server"))
    }

    async fn delete(&self, _tx: &mut Tx, _name: &str) -> Result<(), ApplyError> {
        // Stopping the process is slow work (`Job::Delete`).
        Ok(())
    }

    fn has_work(&self) -> bool {
        true
    }

    fn work(self: Arc<Self>, job: Job, cancel: CancellationToken) -> Option<JobFuture<WorkResult>> {
        Some(Box::pin(async move {
            match job {
                Job::Apply(r) => self.start(&r, &cancel).await,
                Job::Resync(r) => self.resync(&r, &cancel).await,
                Job::Delete(name) => {
                    self.live.mcp.stop(&name).await;
                    self.unsettled
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&name);
                    Ok(None)
                }
            }
        }))
    }
}
