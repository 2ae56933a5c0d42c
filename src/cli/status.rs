//! `claw status`: a running server's `/api/v1/status`, readably.

use std::process::ExitCode;

use serde_json::Value;

use crate::client::Client;
use crate::tasks::TaskStatus;

/// Flags of `claw status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Server URL (default `CLAW_URL` or http://127.0.0.1:3000).
    #[arg(long)]
    url: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: super::Format,
}

/// Fetches and prints the status.
pub async fn run(args: Args) -> ExitCode {
    let client = match Client::from_env(args.url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("claw status: {e}");
            return ExitCode::from(2);
        }
    };
    let status = match client.status().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("claw status: {e}");
            return ExitCode::from(1);
        }
    };
    if args.format == super::Format::Json {
        println!("{status}");
        return ExitCode::SUCCESS;
    }
    print!("{}", render(client.base(), &status));
    ExitCode::SUCCESS
}

fn render(base: &str, s: &Value) -> String {
    let r = &s["reconciler"];
    let mut out = format!(
        "claw {} at {base}: {} (up {}s)\n",
        s["version"].as_str().unwrap_or("?"),
        s["status"].as_str().unwrap_or("?"),
        s["uptime_seconds"]
    );
    out += &format!(
        "manifests: revision {}, {} file(s), last reconcile {} ({} ms)\n",
        r["revision"].as_str().unwrap_or("-"),
        r["files"],
        r["last_run_at"].as_str().unwrap_or("never"),
        r["last_duration_ms"]
    );
    if let Some(kinds) = r["resources"].as_object() {
        let parts: Vec<String> = kinds
            .iter()
            .filter(|(_, c)| c["total"].as_u64().unwrap_or(0) > 0)
            .map(|(k, c)| format!("{k} {}/{} ready", c["ready"], c["total"]))
            .collect();
        out += &format!(
            "resources: {}\n",
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(", ")
            }
        );
    }
    let errors = r["errors"].as_array().cloned().unwrap_or_default();
    if errors.is_empty() {
        out += "errors: none\n";
    } else {
        out += &format!("errors ({}):\n", r["errors_total"]);
        for e in errors {
            out += &format!("  {}\n", e["text"].as_str().unwrap_or(""));
        }
    }
    let t = &s["tasks"];
    let tasks: Vec<String> = TaskStatus::ALL
        .iter()
        .map(|s| format!("{} {s}", t[s.as_str()]))
        .collect();
    out += &format!("tasks: {}\n", tasks.join(", "));
    let mcp = s["mcp_servers"].as_array().map(Vec::len).unwrap_or(0);
    out += &format!("mcp servers: {mcp}\n");
    out
}
