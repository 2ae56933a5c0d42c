//! `claw serve`: run the controller and API until SIGINT / SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use crate::api::Limits;
use crate::gitops::pull::PullOptions;
use crate::server::{self, ServeOptions};

/// Flags of `claw serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    manifests: super::ManifestsArg,
    #[command(flatten)]
    data: super::DataArg,
    /// Address to listen on (loopback by default; expose deliberately).
    #[arg(long, env = "CLAW_LISTEN", default_value = "127.0.0.1:3000")]
    listen: String,
    /// Quiet time after a file change before reconciling, in milliseconds.
    #[arg(long, default_value_t = 100)]
    debounce_ms: u64,
    /// Interval of the full resync, in seconds.
    #[arg(long, default_value_t = 300)]
    resync_seconds: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Close a connection that has not sent a complete request header within this (e.g. `10s`).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// Largest request header in bytes (431 beyond).
    #[arg(long, default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    /// Most header fields in one request (431 beyond).
    #[arg(long, default_value_t = 100)]
    max_headers: usize,
    /// Connections served at once (0: three quarters of the descriptor limit); when reached,
    /// one log line, and new connections wait until one closes.
    #[arg(long, env = "CLAW_MAX_CONNECTIONS", default_value_t = 0)]
    max_connections: usize,
    /// Longest a request may take to produce its response (503 beyond); streams are not cut.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Let API write-backs grant or widen manifest-only settings (SPEC §5a: `model.provider:
    /// command`, `model.command`, `tasks.allow_commands`, `tasks.allowed_roots`, `fromFile`
    /// secrets, local skill paths). Off by default: those come through a reviewed commit.
    #[arg(long, env = "CLAW_ALLOW_API_PRIVILEGED")]
    allow_api_privileged: bool,
    /// Allow deleting everything that vanished with the manifests (lifts the prune guard once).
    #[arg(long)]
    confirm_prune: bool,
    /// Pull mode: clone this git remote under the data dir and reconcile from it (then
    /// --manifests is not used). Credentials come from your git configuration (credential
    /// helper, ssh agent); a URL carrying one is refused.
    #[arg(long, env = "CLAW_GIT_URL")]
    git_url: Option<String>,
    /// Pull mode: the branch to follow and to push write-backs to.
    #[arg(long, default_value = "main", requires = "git_url")]
    git_branch: String,
    /// Pull mode: how often to fetch (e.g. `30s`, `5m`).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration, requires = "git_url")]
    git_interval: Duration,
    /// Pull mode: the manifests dir inside the repository (default: its root).
    #[arg(long, requires = "git_url")]
    git_path: Option<std::path::PathBuf>,
    /// Pull mode: a file holding the secret `POST /api/v1/hooks/git` checks
    /// `X-Hub-Signature-256` against (or set CLAW_GIT_WEBHOOK_SECRET).
    #[arg(long, requires = "git_url")]
    git_webhook_secret_file: Option<std::path::PathBuf>,
    /// A file holding the key (32 bytes, base64) that encrypts secrets kept in the database
    /// when --database-url is set; or set CLAW_SECRET_KEY. Every replica needs the same key.
    #[arg(long)]
    secret_key_file: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: super::Format,
}

/// Runs the server until a shutdown signal.
pub async fn run(args: Args) -> ExitCode {
    super::init_logging(args.log_format == super::Format::Json);
    let mut options = ServeOptions::new(args.manifests.manifests, args.data.data);
    options.database_url = args.data.database_url;
    options.secret_key_file = args.secret_key_file;
    options.listen = args.listen;
    options.debounce = Duration::from_millis(args.debounce_ms.max(1));
    options.resync = Duration::from_secs(args.resync_seconds.max(1));
    options.limits = Limits {
        max_body_bytes: args.max_body_bytes,
        header_read_timeout: args.header_timeout.max(Duration::from_millis(1)),
        max_header_bytes: args.max_header_bytes,
        max_headers: args.max_headers,
        max_connections: args.max_connections,
        request_timeout: args.request_timeout.max(Duration::from_millis(1)),
    };
    options.allow_api_privileged = args.allow_api_privileged;
    options.confirm_prune = args.confirm_prune;
    if let Some(url) = args.git_url {
        let secret = match webhook_secret(args.git_webhook_secret_file.as_deref()) {
            Ok(secret) => secret,
            Err(e) => {
                eprintln!("claw serve: {e}");
                return ExitCode::from(2);
            }
        };
        let mut pull = PullOptions::new(url);
        pull.branch = args.git_branch;
        pull.interval = args.git_interval.max(Duration::from_millis(100));
        pull.path = args.git_path;
        pull.webhook_secret = secret;
        options.git = Some(pull);
    }
    // Registered before anything is announced, so a signal right after "listening" is caught.
    let shutdown = match ShutdownSignal::register() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("claw serve: cannot install signal handlers: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match server::start(options.clone()).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("claw serve: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(token) = &server.admin_token {
        eprintln!(
            "Initialised {} with a Config and a full-scope token named 'admin'.",
            options.manifests.display()
        );
        super::print_new_token("admin", token);
    }
    eprintln!(
        "claw {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        server.url()
    );
    shutdown.recv().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// The git hook's secret: from the file, else from `CLAW_GIT_WEBHOOK_SECRET` (never a flag's
/// value, which anyone can read in the process list).
fn webhook_secret(file: Option<&std::path::Path>) -> Result<Option<Vec<u8>>, String> {
    let secret = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--git-webhook-secret-file {}: {e}", path.display()))?,
        None => match std::env::var("CLAW_GIT_WEBHOOK_SECRET") {
            Ok(value) => value,
            Err(_) => return Ok(None),
        },
    };
    let secret = secret.trim();
    if secret.is_empty() {
        return Err("the git webhook secret is empty".into());
    }
    Ok(Some(secret.as_bytes().to_vec()))
}

/// SIGINT or SIGTERM.
struct ShutdownSignal {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(ShutdownSignal {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignal {})
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
