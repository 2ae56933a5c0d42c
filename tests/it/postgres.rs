//! A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` from the system's PostgreSQL
//! binaries (`/usr/lib/postgresql/*/bin`, or `PG_BIN`), in a temp dir, listening on
//! 127.0.0.1 at a free port (its unix socket in the temp dir too), with one fresh database per
//! test (`CREATE DATABASE` through `createdb`). As root the cluster runs as user `postgres`
//! (`runuser -u postgres --`); otherwise as the current user.
//!
//! One cluster per test process, started the first time a test asks for a database. Nothing
//! runs at process exit in a Rust test binary (statics are never dropped, and a panic or a
//! SIGKILL skips any hook), so the cluster is stopped by a watchdog: a small shell process,
//! in a process group of its own (so Ctrl-C on the test run does not kill it first), that
//! blocks reading a pipe whose only writer is this test process. However the test process
//! ends — normally, by a panic, by a signal — the kernel closes its end, the read returns, and
//! the watchdog runs `pg_ctl stop -m immediate` and removes the temp dir. The pipe is
//! close-on-exec, so no other child (a `claw serve`, git) keeps it open.
//!
//! Also compiled into the library's unit tests (`#[path]`), so store tests run on both engines.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The env var that switches every harness-started server to PostgreSQL.
pub const SWITCH: &str = "CLAW_TEST_DATABASE";

/// The key test servers on PostgreSQL are given (32 bytes of `*`, base64).
pub const SECRET_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// True when `CLAW_TEST_DATABASE=postgres`.
pub fn selected() -> bool {
    std::env::var(SWITCH).is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}

/// A running cluster.
pub struct Cluster {
    /// The temp dir (data dir, socket, log, key file); removed by the watchdog.
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// The write end of the watchdog's pipe: held until the process ends.
    _watchdog: Mutex<std::process::ChildStdin>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// The directory holding `initdb` and `pg_ctl`, if PostgreSQL is installed.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    // The newest major version.
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A command for a PostgreSQL binary, run as `postgres` when we are root.
fn pg_command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

fn run(mut c: Command, what: &str) -> Result<(), String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The cluster, started on first use; panics with the reason when it cannot start.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("cannot start a test PostgreSQL cluster: {e}"),
    }
}

fn start() -> Result<Cluster, String> {
    let bin = bin_dir().ok_or(
        "no PostgreSQL binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql, or set PG_BIN)",
    )?;
    let dir = std::env::temp_dir().join(format!(
        "claw-test-pg-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres:").arg(&dir);
                c
            },
            "chown the cluster dir to postgres",
        )?;
    }
    // The watchdog first: from here on, however this process ends, the cluster goes with it.
    let data = dir.join("data");
    let stop = format!(
        "{runas}'{pg_ctl}' stop -D '{data}' -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
        runas = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    let mut watchdog = {
        use std::os::unix::process::CommandExt as _;
        Command::new("sh")
            .args(["-c", &format!("read _ignored; {stop}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the watchdog: {e}"))?
    };
    let watchdog_pipe = watchdog.stdin.take().ok_or("the watchdog has no stdin")?;
    // Reaped by init once it ends (we never wait on it).
    std::mem::forget(watchdog);

    let mut initdb = pg_command(&bin, "initdb");
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8"])
        .args(["--locale=C.UTF-8", "--no-sync"]);
    run(initdb, "initdb")?;
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let mut options = format!(
            "-p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=500 \
             -c shared_buffers=32MB",
            dir.display()
        );
        // More server settings, for investigations (e.g. the replicas bench's `--statements`
        // wants `-c shared_preload_libraries=pg_stat_statements`).
        if let Ok(extra) = std::env::var("CLAW_TEST_PG_OPTIONS") {
            options.push(' ');
            options.push_str(&extra);
        }
        let mut pg_ctl = pg_command(&bin, "pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-o", &options, "-w", "-t", "60", "start"]);
        match run(pg_ctl, "pg_ctl start") {
            Ok(()) => {
                std::fs::write(dir.join("secret.key"), SECRET_KEY)
                    .map_err(|e| format!("cannot write the key file: {e}"))?;
                return Ok(Cluster {
                    dir,
                    port,
                    bin,
                    _watchdog: Mutex::new(watchdog_pipe),
                });
            }
            Err(e) => last = e,
        }
    }
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    Err(format!("{last}\n{log}"))
}

impl Cluster {
    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A key file every test server on this cluster is given.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("secret.key")
    }

    /// Creates a fresh, empty database; its URL.
    pub fn create_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = Command::new(self.bin.join("createdb"));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ])
        .arg(&name);
        if let Err(e) = run(c, "createdb") {
            panic!("{e}");
        }
        self.url(&name)
    }
}

/// A fresh database on the shared cluster; its URL.
pub fn fresh_database() -> String {
    cluster().create_database()
}
