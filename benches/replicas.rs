//! Replicas benchmark (issue 14): tasks/s (the command provider running a trivial command)
//! and webhook deliveries/s to a loopback receiver, for one `claw serve` on SQLite and for 1
//! and 3 `claw serve` processes on one PostgreSQL; then the leader failover time (kill -9 of
//! the leader until another replica's `GET /status` names a new one). Each process's CPU is
//! read from `/proc/<pid>/stat` (user + system) over each phase, and PostgreSQL's (the
//! postmaster and its live backends).
//!
//! Every setup runs real `claw serve` child processes in pull mode from one bare git remote
//! (`file://`), on a throwaway PostgreSQL cluster (`tests/it/postgres.rs`: `initdb` +
//! `pg_ctl`, fsync off). `--tasks` tasks are created over HTTP across the replicas (32 in
//! flight); each task's script appends its id to a log. `--endpoints` Webhooks subscribe to
//! `task.completed`, so each task makes that many deliveries; the receiver answers 200 and
//! counts each delivery id.
//!
//! - warm-up: `--warmup` tasks (default 200) are created, run and delivered before the clock
//!   starts, so each replica's connections have prepared their statements and its workers have
//!   started: a fixed cost per process, not the steady state a long-running replica is in;
//! - tasks/s: from the first create to the last task's log line;
//! - deliveries/s: all deliveries over the time from the first create to the last delivery
//!   received (fan-out, claims and sends of every replica inside);
//! - checks: no task run twice, no delivery id received twice (every attempt answers 200, so
//!   a second request would be a second send within one attempt), failover < 10 s (in every
//!   round), 3 replicas not slower in total than 1 (the medians of tasks/s and deliveries/s).
//!
//! A shared machine's speed drifts over seconds, so the setups run in `--rounds` rounds
//! (default 3), their order rotating from one round to the next, and the table shows each
//! setup's medians; every round's figures are printed too.
//!
//! ```text
//! cargo bench --bench replicas
//! cargo bench --bench replicas -- --tasks 2000 --endpoints 10 --rounds 5
//! cargo bench --bench replicas -- --statements --rounds 1
//! CLAW_BENCH_BIN=path/to/claw cargo bench --bench replicas   # another build of claw
//! ```
//!
//! `--statements` loads `pg_stat_statements` into the cluster and prints, per PostgreSQL
//! setup, the statements that took the most server time during the load (calls, rows, ms):
//! where the coordination's cost goes.
//!
//! This machine's cores are shared by every process (and PostgreSQL): 3 replicas cannot
//! triple anything here; the figure to watch is that coordination does not make them slower.
//! A missed target exits 0 (a report); something broken (a task lost or run twice, a
//! delivery lost or sent twice) exits 1.

#[path = "../tests/it/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};

const USAGE: &str = "usage: cargo bench --bench replicas -- [--tasks N] [--endpoints N] [--rounds N] [--warmup N] [--statements]";

const SCRIPT: &str = r#"cat >/dev/null; echo "$CLAW_TASK_ID" >> "$CLAW_BENCH_LOG"; echo ok"#;

struct Args {
    tasks: usize,
    endpoints: usize,
    rounds: usize,
    /// Tasks run (with their deliveries) before the clock starts.
    warmup: usize,
    statements: bool,
}

fn args() -> Args {
    let mut a = Args {
        tasks: 1000,
        endpoints: 5,
        rounds: 3,
        warmup: 200,
        statements: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--tasks" => a.tasks = value("--tasks"),
            "--endpoints" => a.endpoints = value("--endpoints"),
            "--rounds" => a.rounds = value("--rounds").max(1),
            "--warmup" => a.warmup = value("--warmup"),
            "--statements" => a.statements = true,
            "--bench" => {}
            other => panic!("unknown argument {other}\n{USAGE}"),
        }
    }
    a
}

fn main() -> ExitCode {
    let a = args();
    if a.statements && std::env::var_os("CLAW_TEST_PG_OPTIONS").is_none() {
        // Read by `postgres::cluster` when it starts the server (set before any thread runs).
        std::env::set_var(
            "CLAW_TEST_PG_OPTIONS",
            "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on",
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(bench(a)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("replicas bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The `claw` binary measured: `CLAW_BENCH_BIN` (another build, e.g. before a change), else
/// the one `cargo bench` built.
fn binary() -> std::ffi::OsString {
    std::env::var_os("CLAW_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_claw").into())
}

/// A `claw serve` child, killed on drop.
struct Replica {
    child: std::process::Child,
    url: String,
    pid: u32,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of `pid` so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the command.
    // In USER_HZ, which Linux fixes at 100 for what /proc reports.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU time so far of the PostgreSQL server whose data dir is `data` (the postmaster and its
/// live backends; backends that ended are not counted), in seconds.
fn postgres_cpu(data: &Path) -> f64 {
    let Some(postmaster) = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
    else {
        return 0.0;
    };
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if pid == postmaster || ppid == Some(postmaster) {
            total += cpu_seconds(pid);
        }
    }
    total
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(["-c", "commit.gpgSign=false"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .context("git")?;
    ensure!(status.success(), "git {args:?} failed");
    Ok(())
}

/// A bare remote with the Config (command provider), an unlimited admin token and
/// `endpoints` Webhooks to `port`; its URL.
fn remote(dir: &Path, admin: &str, endpoints: usize, port: u16) -> Result<String> {
    let dev = dir.join("dev");
    for sub in ["configs", "tokens", "webhooks"] {
        std::fs::create_dir_all(dev.join(sub))?;
    }
    std::fs::write(
        dev.join("configs/default.yaml"),
        format!(
            "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: command\n    command: [\"sh\", \"-c\", {}]\n  tasks:\n    concurrency: 8\n",
            serde_json::to_string(SCRIPT)?
        ),
    )?;
    std::fs::write(
        dev.join("tokens/admin.yaml"),
        format!(
            "apiVersion: openclaw.dev/v1\nkind: Token\nmetadata:\n  name: admin\nspec:\n  scope: full\n  sha256: \"{}\"\n  rate_limit: unlimited\n",
            claw::auth::token::hash_hex(admin)
        ),
    )?;
    for i in 0..endpoints {
        std::fs::write(
            dev.join(format!("webhooks/hook-{i}.yaml")),
            format!(
                "apiVersion: openclaw.dev/v1\nkind: Webhook\nmetadata:\n  name: hook-{i}\nspec:\n  url: http://127.0.0.1:{port}/hook\n  events: [\"task.completed\"]\n  secret: {{fromEnv: CLAW_BENCH_HOOK_SECRET}}\n"
            ),
        )?;
    }
    git(dir, &["init", "-q", "--bare", "-b", "main", "remote.git"])?;
    let url = format!("file://{}", dir.join("remote.git").display());
    git(&dev, &["init", "-q", "-b", "main"])?;
    git(&dev, &["add", "-A"])?;
    git(&dev, &["commit", "-q", "-m", "bench"])?;
    git(&dev, &["remote", "add", "origin", &url])?;
    git(&dev, &["push", "-q", "origin", "main"])?;
    Ok(url)
}

fn spawn(
    dir: &Path,
    i: usize,
    remote: &str,
    database: Option<&str>,
    log: &Path,
) -> Result<Replica> {
    let mut cmd = std::process::Command::new(binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data")
        .arg(dir.join(format!("replica-{i}")))
        .args(["--git-url", remote, "--git-interval", "1h"])
        .env("CLAW_SECRET_KEY", postgres::SECRET_KEY)
        .env("CLAW_BENCH_HOOK_SECRET", "bench hook secret")
        .env("CLAW_BENCH_LOG", log)
        .env("RUST_LOG", "warn")
        .env_remove("CLAW_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(url) = database {
        cmd.args(["--database-url", url]);
    }
    let mut child = cmd.spawn().context("spawning claw serve")?;
    let stderr = child.stderr.take().context("stderr")?;
    let pid = child.id();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut said = Vec::new();
    let url = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            bail!("replica {i} exited before listening: {}", said.join("\n"));
        };
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_owned();
        }
        said.push(line);
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok(Replica { child, url, pid })
}

type Counts = Arc<Mutex<(HashMap<String, u32>, Option<Instant>)>>;

async fn receiver() -> Result<(u16, Counts)> {
    let counts: Counts = Arc::default();
    let c = counts.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap| {
            let c = c.clone();
            async move {
                let id = headers
                    .get("x-openclaw-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let mut c = c.lock().unwrap();
                *c.0.entry(id).or_default() += 1;
                c.1 = Some(Instant::now());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((port, counts))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

/// One setup's figures (one round's, or the medians of all rounds).
struct Run {
    name: String,
    tasks_per_s: f64,
    deliveries_per_s: f64,
    /// CPU of every claw process and PostgreSQL per task (tasks and their deliveries), ms.
    cpu_ms_per_task: f64,
    cpu: Vec<f64>,
    /// PostgreSQL's CPU over the same time (None on SQLite).
    postgres_cpu: Option<f64>,
    wall: f64,
    run_twice: usize,
    sent_twice: usize,
    failover: Option<f64>,
}

impl Run {
    /// CPU of every claw process and PostgreSQL per task (tasks and their deliveries), ms.
    fn cpu_per_task_ms(&self, tasks: usize) -> f64 {
        let total: f64 = self.cpu.iter().sum::<f64>() + self.postgres_cpu.unwrap_or(0.0);
        1000.0 * total / tasks.max(1) as f64
    }

    /// One setup's rounds in one: the median of each figure (of each process's CPU), the
    /// duplicates of all rounds, the longest failover.
    fn median(rounds: &[Run], tasks: usize) -> Run {
        let of = |f: &dyn Fn(&Run) -> f64| median(rounds.iter().map(f).collect());
        let processes = rounds.iter().map(|r| r.cpu.len()).max().unwrap_or(0);
        Run {
            name: rounds.first().map_or_else(String::new, |r| r.name.clone()),
            tasks_per_s: of(&|r| r.tasks_per_s),
            deliveries_per_s: of(&|r| r.deliveries_per_s),
            cpu_ms_per_task: of(&|r| r.cpu_per_task_ms(tasks)),
            cpu: (0..processes)
                .map(|i| of(&|r| r.cpu.get(i).copied().unwrap_or(0.0)))
                .collect(),
            postgres_cpu: rounds
                .iter()
                .all(|r| r.postgres_cpu.is_some())
                .then(|| of(&|r| r.postgres_cpu.unwrap_or(0.0))),
            wall: of(&|r| r.wall),
            run_twice: rounds.iter().map(|r| r.run_twice).sum(),
            sent_twice: rounds.iter().map(|r| r.sent_twice).sum(),
            failover: rounds.iter().filter_map(|r| r.failover).reduce(f64::max),
        }
    }
}

/// The median of `values` (the mean of the middle two when their number is even).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

async fn setup(
    a: &Args,
    name: &str,
    replicas: usize,
    database: Option<String>,
    pg_data: &Path,
    failover: bool,
) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let (port, counts) = receiver().await?;
    let admin = claw::auth::token::generate();
    let remote = remote(dir.path(), &admin, a.endpoints, port)?;
    let log = dir.path().join("runs.log");
    let mut procs = Vec::new();
    for i in 0..replicas {
        procs.push(spawn(dir.path(), i, &remote, database.as_deref(), &log)?);
    }
    // Ready: every replica lists them all.
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = http
            .get(format!("{}/api/v1/status", procs[0].url))
            .bearer_auth(&admin)
            .send()
            .await?
            .json()
            .await?;
        if status["replicas"].as_array().map(Vec::len) == Some(replicas) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{name}: replicas never all listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let urls: Vec<String> = procs.iter().map(|p| p.url.clone()).collect();
    let create = |n: usize| {
        let http = http.clone();
        let url = urls[n % urls.len()].clone();
        let admin = admin.clone();
        async move {
            let r = http
                .post(format!("{url}/api/v1/tasks"))
                .bearer_auth(&admin)
                .json(&json!({"prompt": format!("bench task {n}")}))
                .send()
                .await?;
            ensure!(r.status() == StatusCode::CREATED, "create: {}", r.status());
            Ok(())
        }
    };
    let lines = |log: &Path| -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    // Creates tasks `from..to` (32 in flight) and waits until they have run.
    let run_tasks = |from: usize, to: usize| {
        let (create, log) = (&create, &log);
        async move {
            let results: Vec<Result<()>> = futures_util::stream::iter(from..to)
                .map(create)
                .buffer_unordered(32)
                .collect()
                .await;
            for r in results {
                r?;
            }
            let deadline = Instant::now() + Duration::from_secs(600);
            while lines(log).len() < to {
                ensure!(
                    Instant::now() < deadline,
                    "{name}: tasks not all run within 600 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }
    };
    // Waits until the receiver has counted `want` deliveries.
    let delivered = |want: usize| {
        let counts = &counts;
        async move {
            let deadline = Instant::now() + Duration::from_secs(600);
            while counts.lock().unwrap().0.len() < want {
                ensure!(
                    Instant::now() < deadline,
                    "{name}: {} of {want} deliveries within 600 s",
                    counts.lock().unwrap().0.len()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }
    };
    if a.warmup > 0 {
        run_tasks(0, a.warmup).await?;
        delivered(a.warmup * a.endpoints).await?;
    }
    let stats = match (&database, a.statements) {
        (Some(url), true) => Some(Statements::reset(url).await?),
        _ => None,
    };
    let cpu_before: Vec<f64> = procs.iter().map(|p| cpu_seconds(p.pid)).collect();
    let pg_before = postgres_cpu(pg_data);
    let started = Instant::now();
    run_tasks(a.warmup, a.warmup + a.tasks).await?;
    let tasks_elapsed = started.elapsed().as_secs_f64();
    let want = a.tasks * a.endpoints;
    delivered((a.warmup + a.tasks) * a.endpoints).await?;
    // A moment for any duplicate to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (sent_twice, last) = {
        let c = counts.lock().unwrap();
        (c.0.values().filter(|n| **n > 1).count(), c.1)
    };
    let deliveries_elapsed = last.map_or(0.0, |l| (l - started).as_secs_f64());
    let wall = started.elapsed().as_secs_f64();
    let cpu: Vec<f64> = procs
        .iter()
        .zip(&cpu_before)
        .map(|(p, before)| cpu_seconds(p.pid) - before)
        .collect();
    let pg_cpu = database.as_ref().map(|_| postgres_cpu(pg_data) - pg_before);
    if let Some(stats) = stats {
        stats.print(name).await?;
    }
    let mut runs: HashMap<String, usize> = HashMap::new();
    for id in lines(&log) {
        *runs.entry(id).or_default() += 1;
    }
    let run_twice = runs.values().filter(|n| **n > 1).count();
    ensure!(
        runs.len() == a.warmup + a.tasks,
        "{name}: {} of {} tasks ran",
        runs.len(),
        a.warmup + a.tasks
    );

    let failover = if failover {
        Some(measure_failover(&mut procs, &admin).await?)
    } else {
        None
    };
    drop(procs);
    let mut run = Run {
        name: name.to_owned(),
        tasks_per_s: a.tasks as f64 / tasks_elapsed,
        deliveries_per_s: want as f64 / deliveries_elapsed.max(1e-9),
        cpu_ms_per_task: 0.0,
        cpu,
        postgres_cpu: pg_cpu,
        wall,
        run_twice,
        sent_twice,
        failover,
    };
    run.cpu_ms_per_task = run.cpu_per_task_ms(a.tasks);
    Ok(run)
}

/// `pg_stat_statements` of one setup's database.
struct Statements {
    pool: sqlx::PgPool,
}

impl Statements {
    /// Connects to the setup's database and forgets what was counted so far.
    async fn reset(url: &str) -> Result<Statements> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&pool)
            .await?;
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&pool)
            .await?;
        Ok(Statements { pool })
    }

    /// Prints the statements that took the most time since the reset.
    async fn print(&self, name: &str) -> Result<()> {
        let rows: Vec<(String, i64, i64, f64)> = sqlx::query_as(
            "SELECT query, calls, rows, total_exec_time FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC LIMIT 20",
        )
        .fetch_all(&self.pool)
        .await?;
        let (calls, ms, plans, plan_ms): (i64, f64, i64, f64) = sqlx::query_as(
            "SELECT COALESCE(SUM(calls), 0)::BIGINT, COALESCE(SUM(total_exec_time), 0),
                    COALESCE(SUM(plans), 0)::BIGINT, COALESCE(SUM(total_plan_time), 0)
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&self.pool)
        .await?;
        println!(
            "\n{name}: {calls} statements, {ms:.0} ms of execution, {plans} plans made in {plan_ms:.0} ms; the costliest:"
        );
        println!("{:>8} {:>8} {:>9}  statement", "calls", "rows", "ms");
        for (query, calls, rows, ms) in rows {
            let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = query.chars().take(110).collect();
            println!("{calls:>8} {rows:>8} {ms:>9.1}  {short}");
        }
        Ok(())
    }
}

/// Kills the leader (-9) and times until another replica names a new one.
async fn measure_failover(procs: &mut [Replica], admin: &str) -> Result<f64> {
    let http = client();
    let leader_of = |url: String| {
        let http = http.clone();
        let admin = admin.to_owned();
        async move {
            let status: Value = http
                .get(format!("{url}/api/v1/status"))
                .bearer_auth(&admin)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            status["replicas"]
                .as_array()?
                .iter()
                .find(|r| r["leader"] == true)
                .and_then(|r| r["address"].as_str())
                .map(str::to_owned)
        }
    };
    let address = leader_of(procs[0].url.clone())
        .await
        .context("no leader listed")?;
    let leader = procs
        .iter()
        .position(|p| p.url.ends_with(&address))
        .context("the leader is none of the replicas")?;
    let witness = procs[(leader + 1) % procs.len()].url.clone();
    procs[leader].child.kill()?;
    procs[leader].child.wait()?;
    let killed = Instant::now();
    loop {
        if let Some(now) = leader_of(witness.clone()).await {
            if now != address {
                return Ok(killed.elapsed().as_secs_f64());
            }
        }
        ensure!(
            killed.elapsed() < Duration::from_secs(60),
            "no new leader within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bench(a: Args) -> Result<bool> {
    if postgres::bin_dir().is_none() {
        println!("replicas bench skipped: no PostgreSQL server binaries (initdb, pg_ctl)");
        return Ok(true);
    }
    let cluster = tokio::task::spawn_blocking(postgres::cluster).await?;
    let fresh = || cluster.create_database();
    println!(
        "replicas bench: {} tasks, {} webhook endpoints ({} deliveries) per setup; binary {}",
        a.tasks,
        a.endpoints,
        a.tasks * a.endpoints,
        binary().to_string_lossy()
    );
    let pg_data = cluster.dir.join("data");
    // (name, replicas, on PostgreSQL)
    let setups = [
        ("sqlite, 1 process", 1, false),
        ("postgres, 1 replica", 1, true),
        ("postgres, 3 replicas", 3, true),
    ];
    let mut rounds: Vec<Vec<Run>> = setups.iter().map(|_| Vec::new()).collect();
    for round in 0..a.rounds {
        // The order rotates, so no setup always runs first (or last) in a round.
        for k in 0..setups.len() {
            let which = (round + k) % setups.len();
            let (name, replicas, on_postgres) = setups[which];
            let database = on_postgres.then(fresh);
            let run = setup(&a, name, replicas, database, &pg_data, replicas > 1).await?;
            println!(
                "round {}/{}  {:<22} {:>7.1} tasks/s {:>8.1} deliveries/s {:>5.1} ms CPU/task{}",
                round + 1,
                a.rounds,
                name,
                run.tasks_per_s,
                run.deliveries_per_s,
                run.cpu_per_task_ms(a.tasks),
                run.failover
                    .map_or(String::new(), |f| format!(", failover {f:.2} s"))
            );
            rounds[which].push(run);
        }
    }
    let runs: Vec<Run> = rounds.iter().map(|r| Run::median(r, a.tasks)).collect();
    println!(
        "\n{} round(s), setups alternating; medians (run twice / sent twice: all rounds; failover: the longest):",
        a.rounds
    );
    println!(
        "{:<22} {:>9} {:>13} {:>7} {:>12}  {:<36} {:>13} {:>9} {:>10}",
        "setup",
        "tasks/s",
        "deliveries/s",
        "wall s",
        "CPU ms/task",
        "claw CPU s per process (% wall)",
        "postgres CPU",
        "run twice",
        "sent twice"
    );
    for r in &runs {
        let cpu: Vec<String> = r
            .cpu
            .iter()
            .map(|c| format!("{c:.1} ({:.0}%)", 100.0 * c / r.wall))
            .collect();
        let pg = r.postgres_cpu.map_or("-".to_owned(), |c| {
            format!("{c:.1} ({:.0}%)", 100.0 * c / r.wall)
        });
        println!(
            "{:<22} {:>9.1} {:>13.1} {:>7.1} {:>12.1}  {:<36} {:>13} {:>9} {:>10}",
            r.name,
            r.tasks_per_s,
            r.deliveries_per_s,
            r.wall,
            r.cpu_ms_per_task,
            cpu.join(", "),
            pg,
            r.run_twice,
            r.sent_twice
        );
    }
    let one = &runs[1];
    let three = &runs[2];
    let failover = three.failover.unwrap_or(f64::INFINITY);
    let broken = runs.iter().any(|r| r.run_twice > 0 || r.sent_twice > 0);
    let checks = [
        (
            "0 tasks run twice",
            runs.iter().all(|r| r.run_twice == 0),
            String::new(),
        ),
        (
            "0 deliveries sent twice within one attempt",
            runs.iter().all(|r| r.sent_twice == 0),
            String::new(),
        ),
        (
            "leader failover < 10 s (every round)",
            failover < 10.0,
            format!("{failover:.2} s"),
        ),
        (
            "3 replicas not slower than 1 (medians): tasks/s",
            three.tasks_per_s >= one.tasks_per_s,
            format!("{:.1} vs {:.1}", three.tasks_per_s, one.tasks_per_s),
        ),
        (
            "3 replicas not slower than 1 (medians): deliveries/s",
            three.deliveries_per_s >= one.deliveries_per_s,
            format!(
                "{:.1} vs {:.1}",
                three.deliveries_per_s, one.deliveries_per_s
            ),
        ),
    ];
    println!();
    for (what, ok, detail) in &checks {
        println!("{:<4} {what} {detail}", if *ok { "PASS" } else { "FAIL" });
    }
    let json = json!({
        "tasks": a.tasks,
        "endpoints": a.endpoints,
        "rounds": a.rounds,
        "per_round": rounds.iter().map(|r| json!({
            "setup": r[0].name,
            "tasks_per_s": r.iter().map(|x| x.tasks_per_s).collect::<Vec<_>>(),
            "deliveries_per_s": r.iter().map(|x| x.deliveries_per_s).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "runs": runs.iter().map(|r| json!({
            "setup": r.name,
            "tasks_per_s": r.tasks_per_s,
            "deliveries_per_s": r.deliveries_per_s,
            "cpu_s": r.cpu,
            "postgres_cpu_s": r.postgres_cpu,
            "wall_s": r.wall,
            "cpu_ms_per_task": r.cpu_ms_per_task,
            "run_twice": r.run_twice,
            "sent_twice": r.sent_twice,
        })).collect::<Vec<_>>(),
        "failover_s": failover,
    });
    println!("{json}");
    Ok(!broken)
}
