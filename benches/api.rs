//! API benchmark: authenticated `GET /api/v1/tasks/:id` and `GET /api/v1/status` throughput
//! against a bare axum handler measured in the same run (the ratio is the figure), and the
//! latency of filtered task lists over 100,000 stored tasks.
//!
//! ```sh
//! cargo bench --bench api
//! cargo bench --bench api -- --tasks 100000 --rounds 5 --seconds 1 --connections 32
//! cargo bench --bench api -- --only lists        # or --only throughput
//! ```
//!
//! Targets: task read >= 50% of the bare handler's rate, status >= 70%, filtered list
//! p99 < 10 ms. The load generator runs in the same process on the same cores as the server,
//! for the bare handler too, so the ratios compare like with like. Throughput is measured in
//! rounds (bare, task read, status; the order rotating) and each figure is the median over
//! the rounds, ratios taken within a round: a shared machine's speed drifts over seconds, and a
//! ratio of measurements taken far apart would measure the drift.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use claw::server::{self, ServeOptions};
use claw::store::tasks::{insert_many, NewTask};
use claw::store::Store;
use serde_json::json;

struct Args {
    tasks: usize,
    /// Length of one throughput measurement.
    seconds: u64,
    /// Throughput rounds; each measures the bare handler, task reads and status once.
    rounds: usize,
    connections: usize,
    /// `throughput` or `lists`: measure only that half.
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        tasks: 100_000,
        seconds: 1,
        rounds: 5,
        connections: 32,
        only: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match argv[i].as_str() {
            "--tasks" => a.tasks = value().expect("--tasks N") as usize,
            "--seconds" => a.seconds = value().expect("--seconds N"),
            "--rounds" => a.rounds = value().expect("--rounds N").max(1) as usize,
            "--connections" => a.connections = value().expect("--connections N") as usize,
            "--only" => a.only = argv.get(i + 1).cloned(),
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    a
}

/// Requests per second of GET `url` with `connections` concurrent clients for `seconds`; client
/// `i` sends `tokens[i % len]` (one token per client keeps each under its own rate limit).
async fn rate(url: String, tokens: &[String], connections: usize, seconds: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let mut workers = Vec::new();
    for i in 0..connections {
        let token = (!tokens.is_empty()).then(|| tokens[i % tokens.len()].clone());
        let (client, url, stop, done) = (client.clone(), url.clone(), stop.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut req = client.get(&url);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let r = req.send().await.expect("request");
                assert!(r.status().is_success(), "{} answered {}", url, r.status());
                r.bytes().await.expect("body");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Warm-up, then measure.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_count = done.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    count as f64 / elapsed
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    // The server's logging as `claw serve` sets it up: its cost is part of every request.
    claw::cli::init_logging(false);
    let dir = tempfile::tempdir().unwrap();
    let (manifests, data) = (dir.path().join("m"), dir.path().join("data"));
    let token = claw::manifest::scaffold::init(&manifests)
        .unwrap()
        .admin_token
        .unwrap();
    // One read token per client connection: the per-token limit stays in the measured path
    // without the load generator tripping it.
    let tokens: Vec<String> = (0..a.connections)
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

    eprintln!("storing {} tasks ...", a.tasks);
    let store = Store::open(&data).await.unwrap();
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
    let mut rows = Vec::with_capacity(a.tasks);
    for i in 0..a.tasks {
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
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
    for status in statuses.iter().collect::<std::collections::BTreeSet<_>>() {
        let batch: Vec<NewTask> = rows
            .iter()
            .filter(|r| r.3 == *status)
            .map(|r| NewTask {
                id: &r.0,
                prompt: &r.1,
                options: "{}",
                model: "claude-sonnet-4-20250514",
                max_tokens: 4096,
                working_directory: None,
                timeout_seconds: 600,
                created_by: "bench",
                created_at: &r.2,
            })
            .collect();
        insert_many(&mut conn, &batch, status).await.unwrap();
    }
    sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
    drop(conn);
    store.close().await;

    let mut options = ServeOptions::new(&manifests, &data);
    options.listen = "127.0.0.1:0".into();
    let server = server::start(options).await.unwrap();
    let url = server.url();

    println!("{:<58} {:>14}  {:<10} result", "figure", "value", "target");
    let mut report = json!({
        "bench": "api", "tasks": a.tasks, "seconds": a.seconds, "rounds": a.rounds,
        "connections": a.connections,
    });
    if a.only.as_deref() != Some("lists") {
        let task_url = format!("{url}/api/v1/tasks/{}", rows[a.tasks / 2].0);
        let status_url = format!("{url}/api/v1/status");
        throughput(&a, &tokens, &task_url, &status_url, &mut report).await;
    }
    if a.only.as_deref() != Some("throughput") {
        lists(&a, &url, &token, base, &mut report).await;
    }
    server.shutdown().await;
    println!("{report}");
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Authenticated task reads and status calls against a bare axum handler in the same run.
async fn throughput(
    a: &Args,
    tokens: &[String],
    task_url: &str,
    status_url: &str,
    report: &mut serde_json::Value,
) {
    let bare = Router::new().route(
        "/bare",
        get(|| async { Json(json!({"id": "task_x", "status": "completed", "prompt": "a prompt of ordinary length"})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!("http://{}/bare", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, bare).await.unwrap() });

    eprintln!(
        "measuring throughput ({} rounds of {} s per figure, {} connections) ...",
        a.rounds, a.seconds, a.connections
    );
    let (mut bare, mut task, mut status) = (Vec::new(), Vec::new(), Vec::new());
    let (mut task_ratios, mut status_ratios) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let mut rps = [0.0; 3];
        for k in 0..3 {
            let which = (round + k) % 3;
            rps[which] = match which {
                0 => rate(bare_url.clone(), &[], a.connections, a.seconds).await,
                1 => rate(task_url.to_owned(), tokens, a.connections, a.seconds).await,
                _ => rate(status_url.to_owned(), tokens, a.connections, a.seconds).await,
            };
        }
        bare.push(rps[0]);
        task.push(rps[1]);
        status.push(rps[2]);
        task_ratios.push(rps[1] / rps[0]);
        status_ratios.push(rps[2] / rps[0]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        percentile(v, 0.5)
    };
    let (bare_rps, task_rps, status_rps) =
        (median(&mut bare), median(&mut task), median(&mut status));
    let (task_ratio, status_ratio) = (median(&mut task_ratios), median(&mut status_ratios));
    println!(
        "{:<58} {:>14.0}  {:<10}",
        "bare axum handler, req/s", bare_rps, ""
    );
    println!(
        "{:<58} {:>14.0}  {:<10}",
        "GET /api/v1/tasks/:id (authenticated), req/s", task_rps, ""
    );
    println!(
        "{:<58} {:>13.0}%  {:<10} {}",
        "  ratio to bare",
        task_ratio * 100.0,
        ">= 50%",
        verdict(task_ratio >= 0.5)
    );
    println!(
        "{:<58} {:>14.0}  {:<10}",
        "GET /api/v1/status (authenticated), req/s", status_rps, ""
    );
    println!(
        "{:<58} {:>13.0}%  {:<10} {}",
        "  ratio to bare",
        status_ratio * 100.0,
        ">= 70%",
        verdict(status_ratio >= 0.7)
    );
    report["bare_rps"] = json!(bare_rps);
    report["task_rps"] = json!(task_rps);
    report["status_rps"] = json!(status_rps);
    report["task_ratio"] = json!(task_ratio);
    report["status_ratio"] = json!(status_ratio);
    report["task_ratios"] = json!(task_ratios);
    report["status_ratios"] = json!(status_ratios);
}

/// Latency of filtered task lists, one request at a time.
async fn lists(
    a: &Args,
    url: &str,
    token: &str,
    base: time::OffsetDateTime,
    report: &mut serde_json::Value,
) {
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
    let mut all = Vec::new();
    let mut per_filter = Vec::new();
    for f in &filters {
        let mut times = Vec::new();
        for _ in 0..200 {
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
    let list_p50 = percentile(&all, 0.5);
    let list_p99 = percentile(&all, 0.99);
    for (f, p50, p99) in &per_filter {
        println!(
            "{:<58} {:>6.2} / {:>5.2}  {:<10}",
            format!("  list ?{f} p50/p99 ms"),
            p50,
            p99,
            ""
        );
    }
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
    report["filters"] = per_filter
        .iter()
        .map(|(f, p50, p99)| json!({"filter": f, "p50_ms": p50, "p99_ms": p99}))
        .collect();
}
