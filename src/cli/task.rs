//! `claw task run PROMPT [--wait] [--model M] [--cwd DIR]`: create a task on a server and,
//! with `--wait`, stream its output and print the result.

use std::io::Write;
use std::process::ExitCode;

use serde_json::{Map, Value};

use crate::client::Client;
use crate::tasks::TaskStatus;

/// The `task` verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a task; print its id, or with --wait its output.
    Run {
        /// The prompt.
        prompt: String,
        /// Wait for the task to finish, streaming its output; exit 1 unless it completed.
        #[arg(long)]
        wait: bool,
        /// Model to use instead of the Config's.
        #[arg(long)]
        model: Option<String>,
        /// Working directory (must lie under the Config's tasks.allowed_roots).
        #[arg(long)]
        cwd: Option<std::path::PathBuf>,
        /// Per-task timeout in seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Server URL (default `CLAW_URL` or http://127.0.0.1:3000).
        #[arg(long)]
        url: Option<String>,
        /// Print the task (or with --wait the result) as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `task` verb.
pub async fn run(command: Command) -> ExitCode {
    let Command::Run {
        prompt,
        wait,
        model,
        cwd,
        timeout,
        url,
        json,
    } = command;
    let client = match Client::from_env(url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("claw task run: {e}");
            return ExitCode::from(2);
        }
    };
    let mut options = Map::new();
    if let Some(m) = model {
        options.insert("model".into(), m.into());
    }
    if let Some(dir) = cwd {
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        options.insert("working_directory".into(), dir.display().to_string().into());
    }
    if let Some(t) = timeout {
        options.insert("timeout_seconds".into(), t.into());
    }
    let created = match client.create_task(&prompt, Value::Object(options)).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("claw task run: {e}");
            return ExitCode::from(1);
        }
    };
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    if !wait {
        if json {
            println!("{created}");
        } else {
            println!("{id}");
        }
        return ExitCode::SUCCESS;
    }
    eprintln!("task {id} queued; waiting");
    let streamed = client
        .follow_events(&id, |text| {
            if !json {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
        })
        .await
        .is_ok();
    let result = match if streamed {
        client.result(&id).await
    } else {
        client.wait_for_completion(&id).await
    } {
        Ok(r) => r,
        Err(e) => {
            eprintln!("claw task run: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        println!("{result}");
    } else if !streamed {
        println!("{}", result["output"].as_str().unwrap_or(""));
    } else if !result["output"].as_str().unwrap_or("").ends_with('\n') {
        println!();
    }
    let status = result["status"].as_str().unwrap_or("");
    if status.parse() == Ok(TaskStatus::Completed) {
        let files = result["files"].as_array().cloned().unwrap_or_default();
        for f in &files {
            eprintln!(
                "{:>8} {}",
                f["change"].as_str().unwrap_or(""),
                f["path"].as_str().unwrap_or("")
            );
        }
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "task {id} {status}: {}",
            result["error"].as_str().unwrap_or("no error message")
        );
        ExitCode::from(1)
    }
}
