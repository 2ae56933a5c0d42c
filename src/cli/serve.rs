//! `claw serve`: run the controller and API until SIGINT / SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use crate::api::Limits;
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
    /// Allow deleting everything that vanished with the manifests (lifts the prune guard once).
    #[arg(long)]
    confirm_prune: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: super::Format,
}

/// Runs the server until a shutdown signal.
pub async fn run(args: Args) -> ExitCode {
    super::init_logging(args.log_format == super::Format::Json);
    let mut options = ServeOptions::new(args.manifests.manifests, args.data.data);
    options.listen = args.listen;
    options.debounce = Duration::from_millis(args.debounce_ms.max(1));
    options.resync = Duration::from_secs(args.resync_seconds.max(1));
    options.limits = Limits {
        max_body_bytes: args.max_body_bytes,
    };
    options.confirm_prune = args.confirm_prune;
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
