//! A throwaway PostgreSQL cluster for the replica tests: `initdb` + `pg_ctl` from the system's
//! PostgreSQL binaries (`/usr/lib/postgresql/*/bin`, or on `PATH`), in a temp dir, on a free
//! loopback port, as user `postgres` (via `runuser`) when running as root. One cluster per
//! test process, one fresh database per call of [`database`]. A watcher process stops the
//! cluster when the test process is gone.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

struct Cluster {
    _dir: tempfile::TempDir,
    port: u16,
}

static CLUSTER: OnceCell<Option<Cluster>> = OnceCell::const_new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The directory holding `initdb` and `pg_ctl`, if PostgreSQL is installed.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    if let Some(newest) = versions.pop() {
        return Some(newest);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    path.parent().map(PathBuf::from).filter(|_| out.status.success())
}

fn is_root() -> bool {
    // /proc/self is owned by the process's effective uid.
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// Runs a PostgreSQL program as the user that may run it.
fn pg_command(bin: &std::path::Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> Option<Cluster> {
    let Some(bin) = bin_dir() else {
        eprintln!("skipped: no PostgreSQL server binaries (initdb, pg_ctl) installed");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(&sockets).unwrap();
    if is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "chown of the cluster dir to postgres failed");
    }
    let out = pg_command(&bin, "initdb")
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
        .arg(&data)
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        sockets.display()
    );
    let out = pg_command(&bin, "pg_ctl")
        .args(["-w", "-t", "60", "-l"])
        .arg(dir.path().join("log"))
        .args(["-o", &options, "-D"])
        .arg(&data)
        .arg("start")
        .output()
        .expect("pg_ctl start");
    assert!(
        out.status.success(),
        "pg_ctl start failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
    );
    // Stops the cluster once this test process has exited (however it exits).
    let stop = pg_command(&bin, "pg_ctl")
        .args(["-m", "immediate", "-D"])
        .arg(&data)
        .arg("stop")
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    let program = if is_root() { "runuser".to_owned() } else { bin.join("pg_ctl").display().to_string() };
    let quoted: Vec<String> = std::iter::once(program)
        .chain(stop)
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let watcher = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; {} >/dev/null 2>&1; rm -rf '{}'",
        std::process::id(),
        quoted.join(" "),
        dir.path().display()
    );
    Command::new("sh")
        .args(["-c", &watcher])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the cluster's watcher");
    Some(Cluster { _dir: dir, port })
}

/// A fresh database on the test cluster (`postgres://…`), or `None` without PostgreSQL.
pub async fn database() -> Option<String> {
    let cluster = CLUSTER
        .get_or_init(|| async { tokio::task::spawn_blocking(start).await.unwrap() })
        .await
        .as_ref()?;
    let name = format!("claw_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    Some(format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port))
}
