//! The command line: one file per verb. `main` parses, sets up logging and a runtime, and maps
//! outcomes to exit codes (0 success; 1 "found something" for validate and diff, or a failed
//! action; 2 usage or I/O errors).

mod diff;
mod get;
mod reconcile;
mod serve;
mod skill;
mod status;
mod task;
mod token;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// claw: a GitOps-driven server for the OpenClaw API.
#[derive(Debug, Parser)]
#[command(name = "claw", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller and the API server.
    Serve(serve::Args),
    /// Scaffold a manifests dir: a Config and a full-scope `admin` token (printed once).
    Init {
        /// The manifests dir to create or complete.
        #[arg(default_value = "manifests")]
        dir: PathBuf,
    },
    /// Validate manifests against the schemas and cross-resource rules (for CI).
    Validate(validate::Args),
    /// Show what `serve` would change: resources to create, update and delete.
    Diff(diff::Args),
    /// Create, list and revoke API tokens (edits Token manifests).
    #[command(subcommand)]
    Token(token::Command),
    /// Run tasks on a server (`CLAW_URL`, `CLAW_TOKEN` or `OPENCLAW_TOKEN`).
    #[command(subcommand)]
    Task(task::Command),
    /// Print a running server's status.
    Status(status::Args),
    /// List declared resources with their status (Ready, reason, applied revision).
    Get(get::Args),
    /// Ask a running server for a full reconcile and print what it did.
    Reconcile(reconcile::Args),
    /// Work with skills (`pack` a skill directory into a registry).
    #[command(subcommand)]
    Skill(skill::Command),
    /// Print the API's OpenAPI 3.1 document (`cargo run -- openapi > schemas/openapi.json`).
    #[command(hide = true)]
    Openapi,
}

/// Output formats shared by the verbs that print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The `--manifests` flag (with its env var), shared by several verbs.
#[derive(Debug, Clone, clap::Args)]
pub struct ManifestsArg {
    /// The manifests dir.
    #[arg(long, env = "CLAW_MANIFESTS", default_value = "manifests")]
    pub manifests: PathBuf,
}

/// The `--data` flag (with its env var), shared by several verbs.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArg {
    /// The data dir (database, stored secrets).
    #[arg(long, env = "CLAW_DATA", default_value = ".claw")]
    pub data: PathBuf,
    /// PostgreSQL instead of SQLite in the data dir: `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// (any number of replicas may share it). Unset: SQLite, nothing to install.
    #[arg(long, env = "CLAW_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("claw: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Init { dir } => init(&dir),
        Command::Validate(args) => validate::run(args),
        Command::Diff(args) => runtime.block_on(diff::run(args)),
        Command::Token(command) => runtime.block_on(token::run(command)),
        Command::Task(command) => runtime.block_on(task::run(command)),
        Command::Status(args) => runtime.block_on(status::run(args)),
        Command::Get(args) => runtime.block_on(get::run(args)),
        Command::Reconcile(args) => runtime.block_on(reconcile::run(args)),
        Command::Skill(command) => skill::run(command),
        Command::Openapi => {
            print!("{}", crate::api::openapi::document_text());
            ExitCode::SUCCESS
        }
    }
}

fn init(dir: &std::path::Path) -> ExitCode {
    match crate::manifest::scaffold::init(dir) {
        Ok(done) => {
            for path in &done.written {
                eprintln!("wrote {}", dir.join(path).display());
            }
            if done.written.is_empty() {
                eprintln!(
                    "{} already has a Config and a Token; nothing to do",
                    dir.display()
                );
            }
            if let Some(token) = done.admin_token {
                print_new_token("admin", &token);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("claw init: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints a new token: the token alone on stdout (so `$(claw token create ...)` captures it),
/// the warning on stderr.
pub(crate) fn print_new_token(name: &str, token: &str) {
    eprintln!("Token '{name}' created. It is shown once and never stored; keep it now:");
    println!("{token}");
}

/// Logging to stderr as `claw serve` sets it up; `RUST_LOG` overrides the level.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    use std::io::IsTerminal as _;
    // Colour only on a terminal: a log file or journal gets plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(move || EscapingWriter {
            out: std::io::stderr(),
            keep_esc: ansi,
        });
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A log writer that escapes control characters (other than the line's final newline), so a
/// request field carrying `\n` or an escape sequence can neither forge a log line nor drive
/// the terminal. Each event arrives in one `write` call, a whole line. With colours on (a
/// terminal), ESC is kept for the formatter's colour codes; tracing-subscriber escapes ESC in
/// field values itself.
pub struct EscapingWriter<W: std::io::Write> {
    pub out: W,
    pub keep_esc: bool,
}

/// `line` with every control character but a final `\n`, tabs (and, with `keep_esc`, ESC)
/// escaped as Rust escapes (`\n`, `\u{1b}`).
pub fn escape_controls(line: &str, keep_esc: bool) -> std::borrow::Cow<'_, str> {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let escaped = |c: char| c.is_control() && c != '\t' && !(keep_esc && c == '\u{1b}');
    if !body.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in body.chars() {
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if body.len() < line.len() {
        out.push('\n');
    }
    std::borrow::Cow::Owned(out)
}

impl<W: std::io::Write> std::io::Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.out
            .write_all(escape_controls(&text, self.keep_esc).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_cannot_forge_log_lines() {
        assert_eq!(escape_controls("plain line\n", false), "plain line\n");
        assert_eq!(
            escape_controls("name=a\nINFO forged\u{1b}[31m\r\n", false),
            "name=a\\nINFO forged\\u{1b}[31m\\r\n"
        );
        assert_eq!(escape_controls("tab\tok", false), "tab\tok");
        assert_eq!(
            escape_controls("\u{1b}[2mcolour\u{1b}[0m\n", true),
            "\u{1b}[2mcolour\u{1b}[0m\n"
        );
    }
}
