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
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
