//! `claw reconcile`: asks a running server for a full reconcile (`POST /api/v1/reconcile`)
//! and prints its report.

use std::process::ExitCode;

use crate::client::Client;

/// Flags of `claw reconcile`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Confirm deletions the prune guard holds back.
    #[arg(long)]
    confirm_prune: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: super::Format,
    /// Server URL (default `CLAW_URL` or http://127.0.0.1:3000).
    #[arg(long)]
    url: Option<String>,
}

/// Triggers the pass and prints the report; exits 1 when the pass left errors.
pub async fn run(args: Args) -> ExitCode {
    let client = match Client::from_env(args.url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("claw reconcile: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match client.reconcile(args.confirm_prune).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("claw reconcile: {e}");
            return ExitCode::from(1);
        }
    };
    if args.output == super::Format::Json {
        println!("{report}");
    } else {
        let count = |field: &str| report[field].as_array().map_or(0, Vec::len);
        println!(
            "revision {}: {} applied, {} failed, {} held, {} error(s) in {} ms",
            report["revision"].as_str().unwrap_or("-"),
            count("applied"),
            count("failed"),
            report["held"],
            report["errors"],
            report["duration_ms"]
        );
        for f in report["failed"].as_array().into_iter().flatten() {
            println!(
                "  {}/{}: {}: {}",
                f["kind"].as_str().unwrap_or("?"),
                f["name"].as_str().unwrap_or("?"),
                f["reason"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or("")
            );
        }
    }
    if report["errors"].as_u64().unwrap_or(0) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
