//! The supervisor: one tokio task per declared MCP server, keeping it connected.
//!
//! Each task loops: start (spawn the child / open the HTTP session), initialise, list tools,
//! publish `connected`; when the process exits or the connection drops (or stops answering a
//! periodic ping), publish `failed` with
//! the reason, wait (1 s doubling to 60 s, reset after a successful connection) and start
//! again. A stdio server runs in its own process group; the whole group is killed when the
//! connection ends, when the server is stopped or changed, and on shutdown, so no process is
//! left behind (`kill_on_drop` covers a supervisor dropped without [`Supervisor::shutdown`]).
//!
//! State is published per server behind short-lived locks; readers (API, tasks) copy it out.
//! Resolved secrets live only in [`Desired`], which has no `Debug` and is never logged.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use rmcp::model::{CallToolRequestParams, ClientRequest, ContentBlock, PingRequest};
use rmcp::service::{Peer, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ServiceError, ServiceExt};
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a stopped stdio server may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often a connected server is pinged to notice a dead connection.
const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// Longest stderr line kept for the status's `last_error`.
const MAX_STDERR_LINE: usize = 400;

/// How a server is reached, with secret references resolved.
#[derive(Clone, PartialEq, Eq)]
pub enum Launch {
    /// A child process speaking MCP on stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
    },
    /// A streamable HTTP endpoint, reached under the egress policy.
    Http {
        url: String,
        headers: Vec<(String, String)>,
        egress: Arc<crate::egress::NetworkPolicy>,
    },
}

impl Launch {
    /// `stdio` or `http`, as the status shows it.
    pub fn transport(&self) -> &'static str {
        match self {
            Launch::Stdio { .. } => "stdio",
            Launch::Http { .. } => "http",
        }
    }
}

/// What should run for one server. A change of any field (a rotated secret too) restarts it.
#[derive(Clone, PartialEq, Eq)]
pub struct Desired {
    pub launch: Launch,
    pub enabled: bool,
    /// Limit of the initialisation and of one tool call.
    pub timeout: Duration,
}

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Starting,
    Connected,
    Failed,
    Disabled,
}

/// One server as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerStatus {
    pub name: String,
    pub transport: &'static str,
    pub status: Phase,
    /// Tools listed at the last successful connection (0 when not connected).
    pub tools: usize,
    /// Why the last attempt or connection ended; kept while a restart is starting.
    pub last_error: Option<String>,
    /// When `status` last changed (RFC 3339).
    pub since: String,
    /// Start attempts after the first (each one after a backoff wait).
    pub restarts: u64,
}

/// A tool a server offers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// The tool's JSON Schema for its arguments.
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

/// Waits between start attempts: `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after one of `delay`: doubled, at most `max`.
    fn next(&self, delay: Duration) -> Duration {
        (delay * 2).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// Published state of one server.
struct Shared {
    status: RwLock<ServerStatus>,
    tools: RwLock<Arc<Vec<Tool>>>,
    peer: RwLock<Option<Peer<RoleClient>>>,
    /// Bumped on every status change, for [`Supervisor::wait_settled`].
    changed: watch::Sender<u64>,
    /// The supervisor's version of all statuses, bumped with every change here too.
    version: Arc<AtomicU64>,
    /// The running child's pid, which is also its process group id.
    pid: Mutex<Option<u32>>,
    /// The child's last stderr line: often the only hint why it exited.
    stderr: Mutex<String>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new(name: &str, desired: &Desired, version: Arc<AtomicU64>) -> Shared {
        Shared {
            version,
            status: RwLock::new(ServerStatus {
                name: name.to_owned(),
                transport: desired.launch.transport(),
                status: if desired.enabled {
                    Phase::Starting
                } else {
                    Phase::Disabled
                },
                tools: 0,
                last_error: None,
                since: now(),
                restarts: 0,
            }),
            tools: RwLock::new(Arc::new(Vec::new())),
            peer: RwLock::new(None),
            changed: watch::Sender::new(0),
            pid: Mutex::new(None),
            stderr: Mutex::new(String::new()),
        }
    }

    fn status(&self) -> ServerStatus {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut ServerStatus)) {
        {
            let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
            let before = status.status;
            change(&mut status);
            if status.status != before {
                status.since = now();
            }
        }
        self.version.fetch_add(1, Ordering::Release);
        self.changed.send_modify(|n| *n += 1);
    }

    fn set_peer(&self, peer: Option<Peer<RoleClient>>, tools: Vec<Tool>) {
        *self.peer.write().unwrap_or_else(|e| e.into_inner()) = peer;
        *self.tools.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tools);
    }

    fn peer(&self) -> Option<Peer<RoleClient>> {
        self.peer.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn tools(&self) -> Arc<Vec<Tool>> {
        self.tools.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Signals the child's process group (if a child runs); `SIGKILL` also forgets it.
    fn signal_group(&self, signal: Signal) {
        let mut pid = lock(&self.pid);
        let Some(id) = *pid else { return };
        if signal == Signal::SIGKILL {
            *pid = None;
        }
        let Ok(raw) = i32::try_from(id) else { return };
        match killpg(Pid::from_raw(raw), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(pgid = raw, error = %e, "cannot signal an MCP server's process group")
            }
        }
    }
}

struct Entry {
    desired: Desired,
    shared: Arc<Shared>,
    /// The supervision task; none for a disabled server (thousands of those cost a status
    /// each, not a task each).
    run: Option<(CancellationToken, JoinHandle<()>)>,
}

/// Runs and watches the declared MCP servers.
pub struct Supervisor {
    servers: Mutex<BTreeMap<String, Entry>>,
    backoff: Backoff,
    /// Bumped on any change of the set of servers or of a status.
    version: Arc<AtomicU64>,
    /// The statuses rendered as JSON at `version`: `GET /status` is polled by dashboards, so
    /// it reads this without taking the servers lock.
    rendered: arc_swap::ArcSwap<(u64, Arc<str>)>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new(Backoff::default())
    }
}

impl Supervisor {
    /// A supervisor with no servers yet.
    pub fn new(backoff: Backoff) -> Supervisor {
        Supervisor {
            servers: Mutex::new(BTreeMap::new()),
            backoff,
            // Starts one ahead of the (empty) cache, so the first read renders.
            version: Arc::new(AtomicU64::new(1)),
            rendered: arc_swap::ArcSwap::from_pointee((0, Arc::from("[]"))),
        }
    }

    /// Makes `name` run as `desired`: starts it when new, restarts it when anything changed,
    /// leaves it alone otherwise. Returns whether it was (re)started.
    pub async fn ensure(&self, name: &str, desired: Desired) -> bool {
        let old = {
            let mut servers = lock(&self.servers);
            if servers.get(name).is_some_and(|e| e.desired == desired) {
                return false;
            }
            servers.remove(name)
        };
        if let Some(old) = old {
            stop_entry(name, old).await;
        }
        let shared = Arc::new(Shared::new(name, &desired, self.version.clone()));
        let run = if desired.enabled {
            let cancel = CancellationToken::new();
            // Boxed: the supervision future is several KiB, and a task keeps its cell (sized
            // for the future) until its handle is dropped.
            let task = tokio::spawn(Box::pin(supervise(
                name.to_owned(),
                desired.clone(),
                shared.clone(),
                cancel.clone(),
                self.backoff,
            )));
            Some((cancel, task))
        } else {
            None
        };
        lock(&self.servers).insert(
            name.to_owned(),
            Entry {
                desired,
                shared,
                run,
            },
        );
        self.version.fetch_add(1, Ordering::Release);
        true
    }

    /// Stops `name` (killing its process group) and forgets it.
    pub async fn stop(&self, name: &str) {
        let entry = lock(&self.servers).remove(name);
        self.version.fetch_add(1, Ordering::Release);
        if let Some(entry) = entry {
            stop_entry(name, entry).await;
        }
    }

    /// Stops every server; returns when their processes are gone.
    pub async fn shutdown(&self) {
        let entries = std::mem::take(&mut *lock(&self.servers));
        self.version.fetch_add(1, Ordering::Release);
        futures_util::future::join_all(
            entries
                .into_iter()
                .map(|(name, entry)| async move { stop_entry(&name, entry).await }),
        )
        .await;
    }

    /// Every server's status rendered by `render`, recomputed only after a change.
    pub fn rendered(&self, render: impl FnOnce(&[ServerStatus]) -> String) -> Arc<str> {
        let cached = self.rendered.load();
        let version = self.version.load(Ordering::Acquire);
        if cached.0 == version {
            return cached.1.clone();
        }
        let text: Arc<str> = Arc::from(render(&self.statuses()));
        self.rendered.store(Arc::new((version, text.clone())));
        text
    }

    /// The status of every server, by name.
    pub fn statuses(&self) -> Vec<ServerStatus> {
        lock(&self.servers)
            .values()
            .map(|e| e.shared.status())
            .collect()
    }

    /// The status of one server.
    pub fn status(&self, name: &str) -> Option<ServerStatus> {
        lock(&self.servers).get(name).map(|e| e.shared.status())
    }

    /// The tools `name` listed at its last connection (empty when it is not connected).
    pub fn tools(&self, name: &str) -> Option<Arc<Vec<Tool>>> {
        lock(&self.servers).get(name).map(|e| e.shared.tools())
    }

    /// The pid (and process group) of `name`'s running child, for diagnostics and tests.
    pub fn pid(&self, name: &str) -> Option<u32> {
        lock(&self.servers)
            .get(name)
            .and_then(|e| *lock(&e.shared.pid))
    }

    /// Connected servers and their tools, limited to `allowed` when given.
    pub fn connected_tools(&self, allowed: Option<&[String]>) -> Vec<(String, Arc<Vec<Tool>>)> {
        lock(&self.servers)
            .iter()
            .filter(|(name, _)| allowed.is_none_or(|a| a.iter().any(|n| n == *name)))
            .filter(|(_, e)| e.shared.status().status == Phase::Connected)
            .map(|(name, e)| (name.clone(), e.shared.tools()))
            .collect()
    }

    /// Waits until `name` is no longer `starting`, at most `within`; returns its status then.
    pub async fn wait_settled(&self, name: &str, within: Duration) -> Option<ServerStatus> {
        let shared = lock(&self.servers).get(name)?.shared.clone();
        let mut changed = shared.changed.subscribe();
        let settled = async {
            while shared.status().status == Phase::Starting {
                if changed.changed().await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(within, settled).await;
        Some(shared.status())
    }

    /// Calls `tool` of `server` with `input` (a JSON object). Ok(text for the model) or
    /// Err(error text for the model): the tool's own error, a timeout, or a dropped connection.
    pub async fn call(&self, server: &str, tool: &str, input: &Value) -> Result<String, String> {
        let (shared, timeout) = {
            let servers = lock(&self.servers);
            let entry = servers
                .get(server)
                .ok_or_else(|| format!("MCP server \"{server}\" is not declared"))?;
            (entry.shared.clone(), entry.desired.timeout)
        };
        let peer = shared.peer().ok_or_else(|| {
            let status = shared.status();
            format!(
                "MCP server \"{server}\" is not connected ({})",
                status.last_error.as_deref().unwrap_or("starting")
            )
        })?;
        let mut params = CallToolRequestParams::new(tool.to_owned());
        match input {
            Value::Object(arguments) => params = params.with_arguments(arguments.clone()),
            Value::Null => {}
            _ => return Err("the tool input must be a JSON object".into()),
        }
        let result = tokio::time::timeout(timeout, peer.call_tool(params))
            .await
            .map_err(|_| {
                format!(
                    "MCP server \"{server}\" did not answer {tool} within {} s",
                    timeout.as_secs()
                )
            })?
            .map_err(|e| format!("MCP server \"{server}\": {tool} failed: {e}"))?;
        let mut parts: Vec<String> = result.content.iter().map(render_block).collect();
        if parts.is_empty() {
            if let Some(structured) = &result.structured_content {
                parts.push(structured.to_string());
            }
        }
        let text = parts.join("\n");
        if result.is_error == Some(true) {
            Err(text)
        } else {
            Ok(text)
        }
    }
}

fn render_block(block: &ContentBlock) -> String {
    match block.as_text() {
        Some(text) => text.text.clone(),
        None => serde_json::to_string(block).unwrap_or_default(),
    }
}

async fn stop_entry(name: &str, entry: Entry) {
    if let Some((cancel, task)) = entry.run {
        cancel.cancel();
        if let Err(e) = task.await {
            tracing::warn!(server = name, "the MCP supervision task failed: {e}");
        }
    }
    // The task kills the group when it ends; this covers a task that panicked.
    entry.shared.signal_group(Signal::SIGKILL);
}

type Client = RunningService<RoleClient, ()>;

/// The supervision loop of one enabled server; returns when `cancel` fires.
async fn supervise(
    name: String,
    desired: Desired,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    backoff: Backoff,
) {
    let mut delay = backoff.initial;
    loop {
        shared.update(|s| s.status = Phase::Starting);
        let attempt = tokio::select! {
            () = cancel.cancelled() => {
                shared.signal_group(Signal::SIGKILL);
                return;
            }
            r = tokio::time::timeout(desired.timeout, connect(&desired.launch, &shared)) => r,
        };
        let failure = match attempt {
            Err(_) => format!(
                "no answer to initialize within {} s",
                desired.timeout.as_secs()
            ),
            Ok(Err(e)) => e,
            Ok(Ok((client, tools))) => {
                delay = backoff.initial;
                tracing::info!(server = %name, tools = tools.len(), "MCP server connected");
                let count = tools.len();
                // Start-up chatter says nothing about why a working connection ends later.
                lock(&shared.stderr).clear();
                shared.set_peer(Some(client.peer().clone()), tools);
                shared.update(|s| {
                    s.status = Phase::Connected;
                    s.tools = count;
                    s.last_error = None;
                });
                let closed = wait_closed(client, &shared, &cancel, desired.timeout).await;
                shared.set_peer(None, Vec::new());
                match closed {
                    None => return,
                    Some(reason) => reason,
                }
            }
        };
        shared.signal_group(Signal::SIGKILL);
        let failure = with_stderr(failure, &shared);
        tracing::warn!(server = %name, retry_in_ms = delay.as_millis() as u64, "MCP server failed: {failure}");
        shared.update(|s| {
            s.status = Phase::Failed;
            s.tools = 0;
            s.last_error = Some(failure);
        });
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = backoff.next(delay);
        shared.update(|s| s.restarts += 1);
    }
}

/// Adds the child's last stderr line to a failure, when there is one.
fn with_stderr(failure: String, shared: &Shared) -> String {
    let line = std::mem::take(&mut *lock(&shared.stderr));
    if line.is_empty() {
        failure
    } else {
        format!("{failure} (stderr: {line})")
    }
}

/// Waits until the connection ends (Some(why)) or `cancel` fires (None; the server is then
/// shut down: SIGTERM, the session closed, SIGKILL after a grace period). A session whose
/// transport fails a `ping` (every [`HEALTH_INTERVAL`]) counts as ended: an HTTP session does
/// not notice a vanished server by itself. An error *answer* to the ping still proves the
/// server is there (newer protocol versions have no ping).
async fn wait_closed(
    client: Client,
    shared: &Shared,
    cancel: &CancellationToken,
    timeout: Duration,
) -> Option<String> {
    let stdio = lock(&shared.pid).is_some();
    let peer = client.peer().clone();
    let token = client.cancellation_token();
    let waiting = client.waiting();
    tokio::pin!(waiting);
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    health.reset();
    loop {
        tokio::select! {
            quit = &mut waiting => return Some(match quit {
                Ok(_) if stdio => "the server process exited or closed its output".to_owned(),
                Ok(_) => "the connection closed".to_owned(),
                Err(e) => format!("the MCP session task failed: {e}"),
            }),
            () = cancel.cancelled() => {
                shared.signal_group(Signal::SIGTERM);
                token.cancel();
                let _ = tokio::time::timeout(STOP_GRACE, waiting).await;
                shared.signal_group(Signal::SIGKILL);
                return None;
            }
            _ = health.tick() => {
                let ping = ClientRequest::PingRequest(PingRequest::default());
                match tokio::time::timeout(timeout, peer.send_request(ping)).await {
                    Ok(Ok(_)) | Ok(Err(ServiceError::McpError(_))) => {}
                    // Dropping `waiting` on return closes the session.
                    Ok(Err(e)) => return Some(format!("health check failed: {e}")),
                    Err(_) => return Some(format!("no answer to ping within {} s", timeout.as_secs())),
                }
            }
        }
    }
}

/// Starts the server, initialises the session and lists its tools.
async fn connect(launch: &Launch, shared: &Arc<Shared>) -> Result<(Client, Vec<Tool>), String> {
    let client = match launch {
        Launch::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .kill_on_drop(true)
                .process_group(0);
            if let Some(cwd) = cwd {
                cmd.current_dir(cwd);
            }
            let (process, stderr) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start \"{command}\": {e}"))?;
            *lock(&shared.pid) = process.id();
            if let Some(stderr) = stderr {
                spawn_stderr_reader(stderr, shared.clone());
            }
            ().serve(process)
                .await
                .map_err(|e| format!("initialisation failed: {e}"))?
        }
        Launch::Http {
            url,
            headers,
            egress,
        } => {
            let http = crate::egress::Client::new(egress.clone(), |b| b)?;
            http.check_url(url)
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            let mut map = HashMap::new();
            for (k, v) in headers {
                let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("\"{k}\" is not a valid header name"))?;
                let value = reqwest::header::HeaderValue::from_str(v)
                    .map_err(|_| format!("the value of header \"{k}\" is not valid"))?;
                map.insert(name, value);
            }
            let config =
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(map);
            ().serve(StreamableHttpClientTransport::with_client(
                http.reqwest()
                    .map_err(|e| format!("cannot connect to {url}: {e}"))?
                    .clone(),
                config,
            ))
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?
        }
    };
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| format!("tools/list failed: {e}"))?;
    let tools = tools
        .into_iter()
        .map(|t| Tool {
            name: t.name.to_string(),
            description: t.description.map(|d| d.to_string()).unwrap_or_default(),
            input_schema: Value::Object((*t.input_schema).clone()),
        })
        .collect();
    Ok((client, tools))
}

/// Logs the child's stderr (debug) and keeps its last line for the failure message.
fn spawn_stderr_reader(stderr: tokio::process::ChildStderr, shared: Arc<Shared>) {
    let name = shared.status().name;
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(server = %name, "stderr: {line}");
            if !line.trim().is_empty() {
                let mut kept: String = line.chars().take(MAX_STDERR_LINE).collect();
                kept.truncate(kept.trim_end().len());
                *lock(&shared.stderr) = kept;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio(command: &str, args: &[&str], enabled: bool) -> Desired {
        Desired {
            launch: Launch::Stdio {
                command: command.to_owned(),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                env: Vec::new(),
                cwd: None,
            },
            enabled,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_a_minute() {
        let b = Backoff::default();
        let mut delay = b.initial;
        let mut seen = vec![delay.as_secs()];
        for _ in 0..8 {
            delay = b.next(delay);
            seen.push(delay.as_secs());
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[tokio::test]
    async fn a_server_that_exits_at_once_fails_and_is_retried() {
        let sup = Supervisor::new(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
        });
        assert!(
            sup.ensure("quits", stdio("sh", &["-c", "echo bye >&2"], true))
                .await
        );
        // The same spec again changes nothing.
        assert!(
            !sup.ensure("quits", stdio("sh", &["-c", "echo bye >&2"], true))
                .await
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let status = sup.status("quits").unwrap();
            if status.restarts >= 3 {
                assert_ne!(status.status, Phase::Connected);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{status:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let failed = sup
            .wait_settled("quits", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(failed.status, Phase::Failed);
        assert!(failed.last_error.is_some());
        assert!(sup.call("quits", "t", &Value::Null).await.is_err());
        sup.shutdown().await;
        assert!(sup.statuses().is_empty());
    }

    #[tokio::test]
    async fn a_disabled_server_is_not_started() {
        let sup = Supervisor::default();
        sup.ensure("off", stdio("sleep", &["30"], false)).await;
        let status = sup
            .wait_settled("off", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(status.status, Phase::Disabled);
        assert_eq!(sup.pid("off"), None);
        let err = sup.call("nope", "t", &Value::Null).await.unwrap_err();
        assert!(err.contains("not declared"), "{err}");
        sup.stop("off").await;
        assert!(sup.status("off").is_none());
    }
}
