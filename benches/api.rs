//! API benchmark, measured the way a user would: an external HTTP load generator (`wrk`)
//! against a real `claw serve` child process and against a bare axum JSON handler (this bench
//! binary re-run as a child process in `--bare-server` mode, built from the same dependencies
//! with the same allocator), alternated in rounds; plus the latency of filtered task lists over
//! 100,000 stored tasks (in-process), each filter asked repeatedly (the target) and then with a
//! task added before each request (every total counted again; reported, no target).
//!
//! ```sh
//! cargo bench --bench api
//! cargo bench --bench api -- --rounds 5 --seconds 3 --connections 64 --threads 2
//! cargo bench --bench api -- --only lists        # or --only throughput
//! ```
//!
//! Targets: authenticated `GET /api/v1/status` >= 70% of the bare handler's rate,
//! `GET /api/v1/tasks/:id` >= 60%, p99 latency at 64 connections <= 2x the bare handler's;
//! filtered list p99 < 10 ms. Each round measures bare, status and task read once, the order
//! rotating; every figure is a median over the rounds and each ratio a ratio of medians (see
//! `support/stats.rs`). Every answer must be a 2xx: a round with any non-2xx answer or socket
//! error fails the bench. `wrk` (Debian package `wrk`, a few hundred kB, C) was chosen over
//! `oha` (a crates.io build of several minutes on two cores); the bench installs it with
//! apt-get when it is missing and it runs as root.
//!
//! Why `wrk` in its own process: a load generator inside the server's process shares its
//! runtime and allocator and hid half of the overhead (76-79% measured in-process vs 47-50%
//! from outside before the fixes of issue 17).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use axum::routing::get;
use axum::{Json, Router};
use claw::server::{self, ServeOptions};
use claw::store::tasks::{insert_many, NewTask};
use claw::store::Store;
use serde_json::json;

// `allow`: its unit tests (run by `tests/it`) are compiled but not run under `cargo test`.
#[allow(unused)]
#[path = "support/stats.rs"]
mod stats;

/// The same allocator as the `claw` binary, so the bare handler is measured like for like.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Read tokens the load generator rotates through (each its own rate-limit budget).
const TOKENS: usize = 16;

struct Args {
    tasks: usize,
    /// Length of one `wrk` run.
    seconds: u64,
    /// Rounds; each measures the bare handler, status and task reads once.
    rounds: usize,
    connections: usize,
    /// `wrk` threads.
    threads: usize,
    /// `throughput` or `lists`: measure only that half.
    only: Option<String>,
    /// Run as the bare handler's server (internal).
    bare_server: bool,
}

fn args() -> Args {
    let mut a = Args {
        tasks: 100_000,
        seconds: 3,
        rounds: 5,
        connections: 64,
        threads: 2,
        only: None,
        bare_server: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match argv[i].as_str() {
            "--tasks" => a.tasks = value().expect("--tasks N") as usize,
            "--seconds" => a.seconds = value().expect("--seconds N").max(1),
            "--rounds" => a.rounds = value().expect("--rounds N").max(1) as usize,
            "--connections" => a.connections = value().expect("--connections N") as usize,
            "--threads" => a.threads = value().expect("--threads N").max(1) as usize,
            "--only" => a.only = argv.get(i + 1).cloned(),
            "--bare-server" => a.bare_server = true,
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    a
}

fn main() {
    let a = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if a.bare_server {
        runtime.block_on(bare_server());
    } else {
        runtime.block_on(bench(a));
    }
}

/// The bare handler: a JSON body of a task's size on the same paths, nothing else. Prints
/// `listening on http://ADDR` on stderr, like `claw serve`, and serves until killed.
async fn bare_server() {
    async fn answer() -> Json<serde_json::Value> {
        Json(
            json!({"id": "task_x", "status": "completed", "prompt": "a prompt of ordinary length"}),
        )
    }
    let app = Router::new()
        .route("/api/v1/status", get(answer))
        .route("/api/v1/tasks/{id}", get(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    eprintln!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}

/// A child server process, killed when dropped.
struct ChildServer {
    child: std::process::Child,
    url: String,
}

impl ChildServer {
    /// Starts `command` (stderr piped) and waits for its `listening on URL` line; the rest of
    /// its stderr is drained by a thread.
    fn start(mut command: Command) -> ChildServer {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(at) = line.find("listening on ") {
                        break line[at + "listening on ".len()..].trim().to_owned();
                    }
                }
                _ => panic!("{command:?} exited before listening"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        ChildServer { child, url }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes sure `wrk` can be run: installs the Debian package when missing (as root).
fn ensure_wrk() {
    let runs = || {
        Command::new("wrk")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("wrk"))
            .unwrap_or(false)
    };
    if runs() {
        return;
    }
    eprintln!("wrk is missing; installing it (apt-get install -y wrk) ...");
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-qq", "wrk"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    assert!(
        runs(),
        "the API bench needs the `wrk` load generator: install it (Debian/Ubuntu: apt-get install wrk) and run again"
    );
}

/// A wrk Lua script sending each request with the next of `tokens` (none for an empty list).
fn wrk_script(dir: &Path, tokens: &[String]) -> std::path::PathBuf {
    let list: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
    let script = format!(
        r#"local tokens = {{ {} }}
local requests = {{}}
local n = 0
init = function(args)
  for i, t in ipairs(tokens) do
    requests[i] = wrk.format("GET", nil, {{ ["Authorization"] = "Bearer " .. t }})
  end
  if #requests == 0 then requests[1] = wrk.format("GET") end
  n = math.random(#requests)
end
request = function()
  n = n % #requests + 1
  return requests[n]
end
"#,
        list.join(", ")
    );
    let path = dir.join("rotate.lua");
    std::fs::write(&path, script).unwrap();
    path
}

/// One `wrk` run; panics (failing the bench) on any non-2xx answer or socket error.
fn wrk(a: &Args, script: &Path, url: &str, seconds: u64) -> stats::WrkRun {
    let out = Command::new("wrk")
        .args([
            "-t",
            &a.threads.to_string(),
            "-c",
            &a.connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("running wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = stats::parse_wrk(&text).unwrap_or_else(|e| panic!("wrk's report: {e}\n{text}"));
    assert!(
        run.non_2xx == 0 && run.socket_errors == 0,
        "{url}: {} non-2xx answers and {} socket errors in one round; every answer must be a 2xx\n{text}",
        run.non_2xx,
        run.socket_errors
    );
    run
}

async fn bench(a: Args) {
    let dir = tempfile::tempdir().unwrap();
    let (manifests, data) = (dir.path().join("m"), dir.path().join("data"));
    let token = claw::manifest::scaffold::init(&manifests)
        .unwrap()
        .admin_token
        .unwrap();
    // Read tokens rotated by the load generator: the per-token limit stays in the measured
    // path without the load generator tripping it.
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| {
            let new = claw::auth::issue::NewToken {
                name: &format!("bench-{i}"),
                scope: claw::auth::Scope::Read,
                expires_at: None,
                description: None,
                rate_limit: None,
            };
            claw::auth::issue::create(&manifests, &new).unwrap().token
        })
        .collect();
    // A limit high enough to measure the server, not the limiter's refusals.
    std::fs::write(
        manifests.join("configs/default.yaml"),
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata: {name: default}\nspec:\n  rate_limit: {requests_per_minute: 1000000, burst: 100000}\n  tasks: {concurrency: 1}\n",
    )
    .unwrap();
    let rows = store_tasks(&data, a.tasks).await;
    let base = rows.1;
    let task_id = rows.0;

    println!("{:<58} {:>14}  {:<10} result", "figure", "value", "target");
    let mut report = json!({
        "bench": "api", "tasks": a.tasks, "seconds": a.seconds, "rounds": a.rounds,
        "connections": a.connections, "threads": a.threads, "load_generator": "wrk",
        "allocator": if cfg!(feature = "mimalloc") { "mimalloc" } else { "system" },
    });
    let mut ok = true;
    if a.only.as_deref() != Some("lists") {
        ok &= throughput(
            &a,
            dir.path(),
            &manifests,
            &data,
            &tokens,
            &task_id,
            &mut report,
        )
        .await;
    }
    if a.only.as_deref() != Some("throughput") {
        // In-process: the lists' latency is the store's, not the HTTP stack's.
        claw::cli::init_logging(false);
        let mut options = ServeOptions::new(&manifests, &data);
        options.listen = "127.0.0.1:0".into();
        let server = server::start(options).await.unwrap();
        ok &= lists(&a, &server.url(), &token, &data, base, &mut report).await;
        server.shutdown().await;
    }
    report["pass"] = json!(ok);
    println!("{report}");
}

/// Stores `n` finished tasks; returns the id of the middle one and the first's creation time.
async fn store_tasks(data: &Path, n: usize) -> (String, time::OffsetDateTime) {
    eprintln!("storing {n} tasks ...");
    let store = Store::open(data).await.unwrap();
    let words = [
        "deploy",
        "report",
        "summarize",
        "refactor",
        "test",
        "review",
        "migrate",
        "audit",
    ];
    let statuses = ["completed", "completed", "completed", "failed", "cancelled"];
    let base = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    let mut rows = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let created = base + time::Duration::seconds((i as i64) * 25);
        rows.push((
            format!("task_{i:032}"),
            format!(
                "{} the {} service, run {i}",
                words[i % words.len()],
                words[(i / 7) % words.len()]
            ),
            claw::tasks::service::timestamp(created),
            statuses[i % statuses.len()],
        ));
    }
    let mut tx = store.begin().await.unwrap();
    for status in statuses.iter().collect::<std::collections::BTreeSet<_>>() {
        let batch: Vec<NewTask> = rows
            .iter()
            .filter(|r| r.3 == *status)
            .map(|r| bench_task(&r.0, &r.1, &r.2))
            .collect();
        insert_many(&mut tx, &batch, status.parse().expect("a task status"))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    store.close().await;
    (rows[rows.len() / 2].0.clone(), base)
}

/// A finished task as the bench stores it.
fn bench_task<'a>(id: &'a str, prompt: &'a str, created_at: &'a str) -> NewTask<'a> {
    NewTask {
        id,
        prompt,
        options: "{}",
        model: "claude-sonnet-4-20250514",
        max_tokens: 4096,
        working_directory: None,
        timeout_seconds: 600,
        created_by: "bench",
        created_at,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Authenticated status and task reads from `claw serve` against the bare handler.
async fn throughput(
    a: &Args,
    tmp: &Path,
    manifests: &Path,
    data: &Path,
    tokens: &[String],
    task_id: &str,
    report: &mut serde_json::Value,
) -> bool {
    ensure_wrk();
    // `CLAW_BENCH_BIN` measures another build of `claw` (e.g. before a change) against the same
    // bare handler; by default the one `cargo bench` built.
    let bin = std::env::var_os("CLAW_BENCH_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_claw").into());
    let mut serve = Command::new(&bin);
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--manifests"])
        .arg(manifests)
        .arg("--data")
        .arg(data)
        .env_remove("RUST_LOG");
    let claw = ChildServer::start(serve);
    let mut bare = Command::new(std::env::current_exe().unwrap());
    bare.arg("--bare-server");
    let bare = ChildServer::start(bare);
    eprintln!(
        "{} serve (pid {}) at {}, bare handler (pid {}) at {}",
        bin.display(),
        claw.pid(),
        claw.url,
        bare.pid(),
        bare.url
    );

    // Every answer a 2xx, checked once directly as well (wrk counts 3xx as success).
    let client = reqwest::Client::new();
    let status_url = format!("{}/api/v1/status", claw.url);
    let task_url = format!("{}/api/v1/tasks/{task_id}", claw.url);
    let bare_url = format!("{}/api/v1/status", bare.url);
    for url in [&status_url, &task_url, &bare_url] {
        let r = client
            .get(url)
            .bearer_auth(&tokens[0])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{url} answered {}", r.status());
    }
    let script = wrk_script(tmp, tokens);
    let targets = [
        ("bare", &bare_url),
        ("status", &status_url),
        ("task", &task_url),
    ];
    eprintln!(
        "measuring throughput with wrk ({} rounds of {} s per figure, {} connections, {} threads) ...",
        a.rounds, a.seconds, a.connections, a.threads
    );
    for (_, url) in &targets {
        wrk(a, &script, url, 1); // warm-up
    }
    let mut runs: [Vec<stats::WrkRun>; 3] = Default::default();
    for round in 0..a.rounds {
        for k in 0..3 {
            let which = (round + k) % 3;
            let run = wrk(a, &script, targets[which].1, a.seconds);
            runs[which].push(run);
        }
    }
    let rps = |i: usize| runs[i].iter().map(|r| r.rps).collect::<Vec<_>>();
    let p99 = |i: usize| runs[i].iter().map(|r| r.p99_ms).collect::<Vec<_>>();
    let med = |v: Vec<f64>| stats::median(&v).unwrap_or(f64::NAN);
    let (bare_rps, status_rps, task_rps) = (med(rps(0)), med(rps(1)), med(rps(2)));
    let (bare_p99, status_p99, task_p99) = (med(p99(0)), med(p99(1)), med(p99(2)));
    let ratio = |n: Vec<f64>, d: Vec<f64>| stats::ratio_of_medians(&n, &d).unwrap_or(f64::NAN);
    let status_ratio = ratio(rps(1), rps(0));
    let task_ratio = ratio(rps(2), rps(0));
    let status_p99_ratio = ratio(p99(1), p99(0));
    let task_p99_ratio = ratio(p99(2), p99(0));

    let line = |name: &str, value: String, target: &str, ok: Option<bool>| {
        println!(
            "{name:<58} {value:>14}  {target:<10} {}",
            ok.map(verdict).unwrap_or("")
        );
    };
    line(
        "bare axum handler, req/s",
        format!("{bare_rps:.0}"),
        "",
        None,
    );
    line("  p99 latency, ms", format!("{bare_p99:.2}"), "", None);
    let figures = [
        (
            "GET /api/v1/status (authenticated)",
            status_rps,
            status_ratio,
            0.7,
            status_p99,
            status_p99_ratio,
        ),
        (
            "GET /api/v1/tasks/:id (authenticated)",
            task_rps,
            task_ratio,
            0.6,
            task_p99,
            task_p99_ratio,
        ),
    ];
    let mut ok = true;
    for (name, rps, ratio, target, p99, p99_ratio) in figures {
        line(&format!("{name}, req/s"), format!("{rps:.0}"), "", None);
        line(
            "  ratio to bare (of medians)",
            format!("{:.0}%", ratio * 100.0),
            &format!(">= {:.0}%", target * 100.0),
            Some(ratio >= target),
        );
        line("  p99 latency, ms", format!("{p99:.2}"), "", None);
        line(
            "  p99 ratio to bare",
            format!("{p99_ratio:.2}x"),
            "<= 2x",
            Some(p99_ratio <= 2.0),
        );
        ok &= ratio >= target && p99_ratio <= 2.0;
    }
    report["bare_rps"] = json!(bare_rps);
    report["status_rps"] = json!(status_rps);
    report["task_rps"] = json!(task_rps);
    report["status_ratio"] = json!(status_ratio);
    report["task_ratio"] = json!(task_ratio);
    report["bare_p99_ms"] = json!(bare_p99);
    report["status_p99_ms"] = json!(status_p99);
    report["task_p99_ms"] = json!(task_p99);
    report["status_p99_ratio"] = json!(status_p99_ratio);
    report["task_p99_ratio"] = json!(task_p99_ratio);
    report["rounds_rps"] = json!({"bare": rps(0), "status": rps(1), "task": rps(2)});
    drop(claw);
    drop(bare);
    ok
}

/// Latency of filtered task lists, one request at a time: each filter asked repeatedly (the
/// target), then asked again with a task added before each request (untimed), so that no
/// total can be reused and every answer counts its matches.
async fn lists(
    a: &Args,
    url: &str,
    token: &str,
    data: &Path,
    base: time::OffsetDateTime,
    report: &mut serde_json::Value,
) -> bool {
    eprintln!("measuring filtered lists ...");
    let from = claw::tasks::service::timestamp(base + time::Duration::days(10));
    let to = claw::tasks::service::timestamp(base + time::Duration::days(12));
    let filters = [
        "status=completed&limit=20".to_owned(),
        "status=failed&q=deploy".to_owned(),
        "q=refactor".to_owned(),
        format!("created_after={from}&created_before={to}"),
        "limit=100&offset=5000".to_owned(),
        format!("status=completed&created_after={from}&q=audit"),
        "status=queued,running".to_owned(),
    ];
    let client = reqwest::Client::new();
    let (list_p50, list_p99, per_filter) =
        time_lists(&client, url, token, &filters, 200, None).await;
    print_lists(&per_filter);
    println!(
        "{:<58} {:>14.2}  {:<10}",
        format!("filtered list p50 over {} tasks, ms", a.tasks),
        list_p50,
        ""
    );
    println!(
        "{:<58} {:>14.2}  {:<10} {}",
        format!("filtered list p99 over {} tasks, ms", a.tasks),
        list_p99,
        "< 10 ms",
        verdict(list_p99 < 10.0)
    );
    report["list_p50_ms"] = json!(list_p50);
    report["list_p99_ms"] = json!(list_p99);
    report["filters"] = filters_json(&per_filter);

    eprintln!("measuring filtered lists while tasks are added ...");
    let writer = Store::open(data).await.unwrap();
    let (p50, p99, per_filter) = time_lists(&client, url, token, &filters, 50, Some(&writer)).await;
    writer.close().await;
    print_lists(&per_filter);
    println!(
        "{:<58} {:>6.2} / {:>5.2}  {:<10}",
        "filtered list p50/p99, a task added before each, ms", p50, p99, ""
    );
    report["changing_list_p50_ms"] = json!(p50);
    report["changing_list_p99_ms"] = json!(p99);
    report["changing_filters"] = filters_json(&per_filter);
    list_p99 < 10.0
}

/// Per filter: the filter, p50 and p99 in ms.
type FilterTimes = Vec<(String, f64, f64)>;

/// Times `n` sequential requests of each filter; with `writer`, a finished task is added
/// (untimed) before each request. Overall p50 and p99, and each filter's.
async fn time_lists(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    filters: &[String],
    n: usize,
    writer: Option<&Store>,
) -> (f64, f64, FilterTimes) {
    let mut all = Vec::new();
    let mut per_filter = Vec::new();
    let mut added = 0;
    for f in filters {
        let mut times = Vec::new();
        for _ in 0..n {
            if let Some(store) = writer {
                let (id, created) = (
                    format!("added_{added:026}"),
                    claw::tasks::service::timestamp(time::OffsetDateTime::now_utc()),
                );
                added += 1;
                let task = bench_task(&id, "added while listing", &created);
                let mut tx = store.begin().await.unwrap();
                insert_many(&mut tx, &[task], "cancelled".parse().unwrap())
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
            let started = Instant::now();
            let r = client
                .get(format!("{url}/api/v1/tasks?{f}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{f}: {}", r.status());
            r.bytes().await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        per_filter.push((f.clone(), percentile(&times, 0.5), percentile(&times, 0.99)));
        all.extend(times);
    }
    all.sort_by(f64::total_cmp);
    (percentile(&all, 0.5), percentile(&all, 0.99), per_filter)
}

fn print_lists(per_filter: &FilterTimes) {
    for (f, p50, p99) in per_filter {
        println!(
            "{:<58} {:>6.2} / {:>5.2}  {:<10}",
            format!("  list ?{f} p50/p99 ms"),
            p50,
            p99,
            ""
        );
    }
}

fn filters_json(per_filter: &FilterTimes) -> serde_json::Value {
    per_filter
        .iter()
        .map(|(f, p50, p99)| json!({"filter": f, "p50_ms": p50, "p99_ms": p99}))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
