//! Replicas (SPEC §6): real `claw serve` processes on one throwaway PostgreSQL database, in pull
//! mode from one bare git remote over `file://`, with the command provider running a small
//! shell script that logs each run. Tasks and deliveries are shared, each run and sent once;
//! one leader, replaced after a kill -9; a killed replica's task ends failed; cancel, SSE and
//! write-backs reach across replicas; a token's rate limit holds across them.
//!
//! The database comes from `postgres.rs`'s throwaway cluster; skipped (with a line on stderr)
//! where no PostgreSQL server binaries are installed.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::harness::{git, token_manifest, Child};
use crate::postgres;

const HOOK_SECRET: &str = "replicas hook secret";

/// The task script: logs `<task id> <claw pid> <process group>` when it starts and `<task id>`
/// when it ends; `sleep` prompts sleep (and can be killed), `ticks` prompts print slowly.
const SCRIPT: &str = r#"p=$(cat); echo "$CLAW_TASK_ID $PPID $$" >> "$CLAW_TEST_LOG.started"
case "$p" in
  sleep*) sleep 30 ;;
  ticks*) for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "tick$i"; sleep 0.25; done ;;
esac
echo "$CLAW_TASK_ID" >> "$CLAW_TEST_LOG.done"
echo "ran $p""#;

/// A deployment: one database, one remote, N replicas.
struct Deployment {
    dir: TempDir,
    database_url: String,
    remote_url: String,
    admin: String,
    limited: String,
    replicas: Vec<Replica>,
    log: PathBuf,
    hook_port: u16,
}

struct Replica {
    child: Child,
    url: String,
    pid: u32,
    tail: Arc<Mutex<Vec<String>>>,
}

impl Deployment {
    /// `None` where PostgreSQL is not installed.
    async fn start(n: usize, hook_port: u16) -> Option<Deployment> {
        if postgres::bin_dir().is_none() {
            eprintln!("skipped: no PostgreSQL server binaries (initdb, pg_ctl) installed");
            return None;
        }
        if postgres::selected() {
            // Always on PostgreSQL: the suite's second run (CLAW_TEST_DATABASE) adds nothing.
            eprintln!("skipped: already run in the suite's first run");
            return None;
        }
        let database_url = tokio::task::spawn_blocking(postgres::fresh_database)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let admin = claw::auth::token::generate();
        let limited = claw::auth::token::generate();
        let dev = dir.path().join("dev");
        for sub in ["configs", "tokens", "webhooks"] {
            std::fs::create_dir_all(dev.join(sub)).unwrap();
        }
        let config = format!(
            "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: command\n    command: [\"sh\", \"-c\", {}]\n  tasks:\n    concurrency: 8\n",
            serde_json::to_string(SCRIPT).unwrap()
        );
        std::fs::write(dev.join("configs/default.yaml"), config).unwrap();
        std::fs::write(
            dev.join("tokens/admin.yaml"),
            token_manifest("admin", &admin, "full", "  rate_limit: unlimited\n"),
        )
        .unwrap();
        std::fs::write(
            dev.join("tokens/limited.yaml"),
            token_manifest(
                "limited",
                &limited,
                "read",
                "  rate_limit: {requests_per_minute: 60, burst: 30}\n",
            ),
        )
        .unwrap();
        std::fs::write(
            dev.join("webhooks/counter.yaml"),
            format!(
                "apiVersion: openclaw.dev/v1\nkind: Webhook\nmetadata:\n  name: counter\nspec:\n  url: http://127.0.0.1:{hook_port}/hook\n  events: [\"task.completed\"]\n  secret: {{fromEnv: CLAW_TEST_HOOK_SECRET}}\n"
            ),
        )
        .unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        let remote_url = format!("file://{}", dir.path().join("remote.git").display());
        git(&dev, &["init", "-q", "-b", "main"]);
        git(&dev, &["add", "-A"]);
        git(&dev, &["commit", "-q", "-m", "initial"]);
        git(&dev, &["remote", "add", "origin", &remote_url]);
        git(&dev, &["push", "-q", "origin", "main"]);
        let log = dir.path().join("runs");
        let mut deployment = Deployment {
            dir,
            database_url,
            remote_url,
            admin,
            limited,
            replicas: Vec::new(),
            log,
            hook_port,
        };
        // One at a time: the first migrates the database.
        for i in 0..n {
            let replica = deployment.spawn(i);
            deployment.replicas.push(replica);
        }
        Some(deployment)
    }

    fn spawn(&self, i: usize) -> Replica {
        let data = self.dir.path().join(format!("replica-{i}"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_claw"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--data", data.to_str().unwrap()])
            .args(["--database-url", &self.database_url])
            .args(["--git-url", &self.remote_url, "--git-interval", "1h"])
            .env(
                "CLAW_SECRET_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            )
            .env("CLAW_TEST_HOOK_SECRET", HOOK_SECRET)
            .env("CLAW_TEST_LOG", &self.log)
            .env_remove("CLAW_DATABASE_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let pid = child.id();
        let child = Child(child);
        let mut lines = std::io::BufReader::new(stderr).lines();
        let mut said = Vec::new();
        let url = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| {
                    panic!("replica {i} exited before listening: {}", said.join("\n"))
                })
                .unwrap();
            said.push(line.clone());
            if let Some(url) = line.split("listening on ").nth(1) {
                break url.trim().to_owned();
            }
        };
        // Keep reading its log, so a full pipe never blocks it; the tail is shown when a test
        // fails.
        let tail = Arc::new(Mutex::new(said));
        let keep = tail.clone();
        std::thread::spawn(move || {
            for line in lines.by_ref().map_while(Result::ok) {
                // Per-task and per-request lines would crowd out the rest.
                if line.contains("task_id=") {
                    continue;
                }
                let mut tail = keep.lock().unwrap();
                if tail.len() >= 40 {
                    tail.remove(0);
                }
                tail.push(line);
            }
        });
        Replica {
            child,
            url,
            pid,
            tail,
        }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    async fn status(&self, i: usize) -> Option<Value> {
        let r = Self::client()
            .get(format!("{}/api/v1/status", self.replicas[i].url))
            .bearer_auth(&self.admin)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    async fn create(&self, i: usize, prompt: &str) -> String {
        let r = Self::client()
            .post(format!("{}/api/v1/tasks", self.replicas[i].url))
            .bearer_auth(&self.admin)
            .json(&json!({"prompt": prompt}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    async fn task(&self, i: usize, id: &str) -> Value {
        Self::client()
            .get(format!("{}/api/v1/tasks/{id}", self.replicas[i].url))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until `id` has status `status` (read on replica `i`); returns the task.
    async fn wait_status(&self, i: usize, id: &str, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let task = self.task(i, id).await;
            if task["status"] == status {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} is not {status} after {within:?}: {task}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Lines of the run log `suffix` (`started` or `done`).
    fn log(&self, suffix: &str) -> Vec<String> {
        let path = self.log.with_extension(suffix);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until task `id` has started; returns the pid of the claw process running it and
    /// the script's process group.
    async fn started(&self, id: &str) -> (u32, i32) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.log("started").iter().find(|l| l.starts_with(id)) {
                let mut parts = line.split(' ').skip(1);
                let pid = parts.next().unwrap().parse().unwrap();
                let group = parts.next().unwrap().parse().unwrap();
                return (pid, group);
            }
            assert!(Instant::now() < deadline, "task {id} never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn index_of_pid(&self, pid: u32) -> usize {
        self.replicas
            .iter()
            .position(|r| r.pid == pid)
            .unwrap_or_else(|| panic!("no replica has pid {pid}"))
    }

    /// The replica index the status of replica `i` names as leader, once exactly one of the
    /// live replicas does.
    async fn leader(&self, i: usize) -> Option<usize> {
        let status = self.status(i).await?;
        let leaders: Vec<&Value> = status["replicas"]
            .as_array()?
            .iter()
            .filter(|r| r["leader"] == true)
            .collect();
        if leaders.len() != 1 {
            return None;
        }
        let address = leaders[0]["address"].as_str()?;
        self.replicas.iter().position(|r| r.url.ends_with(address))
    }

    /// The leader as the first replica names it, once it names exactly one (10 s at most).
    async fn wait_for_leader(&self) -> usize {
        let mut leader = None;
        eventually("a leader", Duration::from_secs(10), async || {
            leader = self.leader(0).await;
            leader.is_some()
        })
        .await;
        leader.expect("a leader within the bound")
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, r) in self.replicas.iter().enumerate() {
                let tail = r.tail.lock().map(|t| t.join("\n")).unwrap_or_default();
                eprintln!("--- replica {i} ({}), last lines:\n{tail}", r.url);
            }
        }
        // Any script still sleeping belongs to a test that failed: end its process group.
        for line in self.log("started") {
            if let Some(group) = line.split(' ').nth(2).and_then(|g| g.parse::<i32>().ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(group),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A webhook receiver on loopback counting deliveries per delivery id.
async fn receiver() -> (u16, Arc<Mutex<HashMap<String, u32>>>) {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let counts = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap| {
            let counts = counts.clone();
            async move {
                let id = headers
                    .get("x-openclaw-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                *counts.lock().unwrap().entry(id).or_default() += 1;
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

/// Waits (polling, bounded) for `done`.
async fn eventually(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_run_each_task_once_send_each_delivery_once_and_share_a_rate_limit() {
    let (port, deliveries) = receiver().await;
    let Some(d) = Deployment::start(3, port).await else {
        return;
    };

    // Every replica lists all three, one leader, and they agree.
    eventually(
        "three replicas, one leader",
        Duration::from_secs(10),
        async || {
            let mut leaders = Vec::new();
            for i in 0..3 {
                let Some(status) = d.status(i).await else {
                    return false;
                };
                if status["replicas"].as_array().map(Vec::len) != Some(3) {
                    return false;
                }
                leaders.push(d.leader(i).await);
            }
            leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0])
        },
    )
    .await;
    let status = d.status(0).await.unwrap();
    for r in status["replicas"].as_array().unwrap() {
        assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
        assert!(r["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(r["last_seen"].as_str().is_some());
    }

    // 300 tasks created across the three.
    let mut ids = Vec::new();
    for chunk in 0..30 {
        let prompts: Vec<String> = (0..10).map(|j| format!("task {chunk}-{j}")).collect();
        let mut created = Vec::new();
        for (j, prompt) in prompts.iter().enumerate() {
            created.push(d.create((chunk * 10 + j) % 3, prompt));
        }
        ids.extend(futures_util::future::join_all(created).await);
    }
    eventually(
        "300 tasks completed",
        Duration::from_secs(180),
        async || d.log("done").len() >= 300,
    )
    .await;
    for (n, id) in ids.iter().enumerate() {
        d.wait_status(n % 3, id, "completed", Duration::from_secs(30))
            .await;
    }
    let mut runs: HashMap<String, usize> = HashMap::new();
    for line in d.log("started") {
        *runs
            .entry(line.split(' ').next().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(runs.len(), 300, "every task ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "tasks run more than once: {twice:?}");
    // More than one replica did the work.
    let mut by_replica: HashMap<String, usize> = HashMap::new();
    for line in d.log("started") {
        *by_replica
            .entry(line.split(' ').nth(1).unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        by_replica.len() >= 2,
        "one replica ran everything: {by_replica:?}"
    );

    // One delivery per task.completed, each sent once.
    eventually("300 deliveries", Duration::from_secs(60), async || {
        deliveries.lock().unwrap().len() >= 300
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = deliveries.lock().unwrap().clone();
    assert_eq!(seen.len(), 300, "one delivery per completed task");
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "deliveries sent twice: {dup:?}");

    // Every replica counts the whole deployment's tasks, not its own.
    for i in 0..3 {
        let status = d.status(i).await.unwrap();
        assert_eq!(
            (&status["tasks"]["completed"], &status["tasks"]["running"]),
            (&json!(300), &json!(0)),
            "replica {i}: {}",
            status["tasks"]
        );
        let metrics = Deployment::client()
            .get(format!("{}/metrics", d.replicas[i].url))
            .bearer_auth(&d.admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("claw_tasks{status=\"completed\"} 300\n"),
            "replica {i}: {metrics}"
        );
    }

    // The limited token (60/min, burst 30): 90 requests over 9 s spread over the three
    // replicas. Alone each replica would let all its 30 through; shared, about 30 + 9.
    let client = Deployment::client();
    let mut allowed = 0;
    for n in 0..90 {
        let r = client
            .get(format!("{}/api/v1/whoami", d.replicas[n % 3].url))
            .bearer_auth(&d.limited)
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("whoami: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("rate limit across three replicas: {allowed} of 90 allowed");
    assert!(
        (30..=46).contains(&allowed),
        "{allowed} of 90 requests allowed across three replicas (the budget is ~39)"
    );
    let _ = d.hook_port;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_leader_is_replaced_and_a_killed_replica_s_task_fails_once() {
    let (port, _) = receiver().await;
    let Some(mut d) = Deployment::start(3, port).await else {
        return;
    };
    let leader = d.wait_for_leader().await;
    let other = (leader + 1) % 3;
    d.replicas[leader].child.0.kill().unwrap();
    d.replicas[leader].child.0.wait().unwrap();
    let killed_at = Instant::now();
    let mut next = None;
    eventually("a new leader", Duration::from_secs(20), async || {
        next = d.leader(other).await.filter(|n| *n != leader);
        next.is_some()
    })
    .await;
    let takeover = killed_at.elapsed();
    eprintln!("leader takeover after kill -9: {takeover:?}");
    assert!(
        takeover < Duration::from_secs(10),
        "takeover took {takeover:?}"
    );
    let alive: Vec<usize> = (0..3).filter(|i| *i != leader).collect();

    // A task running on a replica that is then killed: failed within 30 s, run once.
    let id = d.create(alive[0], "sleep for the kill").await;
    let (pid, group) = d.started(&id).await;
    let runner = d.index_of_pid(pid);
    let survivor = *alive.iter().find(|i| **i != runner).unwrap();
    d.replicas[runner].child.0.kill().unwrap();
    d.replicas[runner].child.0.wait().unwrap();
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(group),
        nix::sys::signal::Signal::SIGKILL,
    );
    let killed_at = Instant::now();
    let task = d
        .wait_status(survivor, &id, "failed", Duration::from_secs(30))
        .await;
    eprintln!(
        "a killed replica's task failed after {:?}",
        killed_at.elapsed()
    );
    assert_eq!(task["error"], "the replica running it stopped");
    let runs = d
        .log("started")
        .iter()
        .filter(|l| l.starts_with(&id))
        .count();
    assert_eq!(runs, 1, "the task ran once");
    // The survivor leads now (it is the only one left) and still runs tasks.
    let id = d.create(survivor, "after the kills").await;
    d.wait_status(survivor, &id, "completed", Duration::from_secs(30))
        .await;
    eventually("the survivor leads", Duration::from_secs(10), async || {
        d.leader(survivor).await == Some(survivor)
    })
    .await;
}

/// Reads the SSE stream of `id` on `url` until a final status; returns the output and the
/// final status.
async fn follow(url: &str, token: &str, id: &str) -> (String, String) {
    follow_until(url, token, id, None).await
}

/// Follows the task's SSE stream until a final status, or until its output contains `until`;
/// returns the output and the last status.
async fn follow_until(url: &str, token: &str, id: &str, until: Option<&str>) -> (String, String) {
    let r = Deployment::client()
        .get(format!("{url}/api/v1/tasks/{id}/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut text = String::new();
    let mut output = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the SSE stream stalled")
            .expect("the SSE stream ended before a final status")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let name = event
                .lines()
                .find_map(|l| l.strip_prefix("event:"))
                .map(str::trim)
                .unwrap_or("");
            let data: Value = event
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .and_then(|d| serde_json::from_str(d.trim()).ok())
                .unwrap_or(Value::Null);
            match name {
                "output" => {
                    output.push_str(data["text"].as_str().unwrap_or(""));
                    if until.is_some_and(|u| output.contains(u)) {
                        return (output, "running".into());
                    }
                }
                "status" => {
                    let status = data["status"].as_str().unwrap_or("").to_owned();
                    if ["completed", "failed", "cancelled"].contains(&status.as_str()) {
                        return (output, status);
                    }
                }
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_sse_and_write_backs_reach_across_replicas() {
    let (port, _) = receiver().await;
    let Some(d) = Deployment::start(2, port).await else {
        return;
    };

    // SSE on the replica that does not run the task: its output and final status.
    let id = d.create(0, "ticks").await;
    let (pid, _) = d.started(&id).await;
    let elsewhere = 1 - d.index_of_pid(pid);
    let (output, status) = follow(&d.replicas[elsewhere].url, &d.admin, &id).await;
    assert_eq!(status, "completed");
    assert!(output.contains("tick12"), "output relayed: {output:?}");

    // Opened elsewhere once the task has printed: what it printed before is replayed, then
    // the rest follows, each line once.
    let id = d.create(0, "ticks").await;
    let (pid, _) = d.started(&id).await;
    let runner = d.index_of_pid(pid);
    follow_until(&d.replicas[runner].url, &d.admin, &id, Some("tick2\n")).await;
    let (output, status) = follow(&d.replicas[1 - runner].url, &d.admin, &id).await;
    assert_eq!(status, "completed");
    let ticks: Vec<&str> = output.lines().filter(|l| l.starts_with("tick")).collect();
    let expected: Vec<String> = (1..=12).map(|i| format!("tick{i}")).collect();
    assert_eq!(ticks, expected, "output: {output:?}");

    // Cancel on the replica that does not run the task: stopped where it runs.
    let id = d.create(1, "sleep until cancelled").await;
    let (pid, group) = d.started(&id).await;
    let elsewhere = 1 - d.index_of_pid(pid);
    let started = Instant::now();
    let r = Deployment::client()
        .post(format!(
            "{}/api/v1/tasks/{id}/cancel",
            d.replicas[elsewhere].url
        ))
        .bearer_auth(&d.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let task: Value = r.json().await.unwrap();
    assert_eq!(task["status"], "cancelled", "{task}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Its process group is gone.
    eventually("the script killed", Duration::from_secs(5), async || {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), None).is_err()
    })
    .await;
    assert!(!d.log("done").iter().any(|l| l == &id));

    // A write-back on replica 0 is in force on replica 1 within a second.
    let r = Deployment::client()
        .patch(format!("{}/api/v1/config", d.replicas[0].url))
        .bearer_auth(&d.admin)
        .json(&json!({"tasks": {"concurrency": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let written = Instant::now();
    let mut seen_after = None;
    while written.elapsed() < Duration::from_secs(5) {
        let config: Value = Deployment::client()
            .get(format!("{}/api/v1/config", d.replicas[1].url))
            .bearer_auth(&d.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if config["tasks"]["concurrency"] == 3 || config["spec"]["tasks"]["concurrency"] == 3 {
            seen_after = Some(written.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen_after = seen_after.expect("replica 1 never saw the write-back");
    eprintln!("a write-back on one replica was in force on the other after {seen_after:?}");
    assert!(seen_after < Duration::from_secs(1), "{seen_after:?}");
}

/// Tasks a Schedule named `name` started, read on replica `i`: (slot, task id) pairs.
async fn scheduled(d: &Deployment, i: usize, name: &str) -> Vec<(String, String)> {
    let page: Value = Deployment::client()
        .get(format!("{}/api/v1/tasks?limit=100", d.replicas[i].url))
        .bearer_auth(&d.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["schedule"] == name)
        .map(|t| {
            (
                t["schedule_slot"].as_str().unwrap_or_default().to_owned(),
                t["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Two replicas and a Schedule firing every second: each slot starts one task, before and
/// after the leader (which fires slots) is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_fire_each_schedule_slot_once_and_a_new_leader_goes_on() {
    let (port, _) = receiver().await;
    let Some(mut d) = Deployment::start(2, port).await else {
        return;
    };
    let r = Deployment::client()
        .post(format!("{}/api/v1/schedules", d.replicas[1].url))
        .bearer_auth(&d.admin)
        .json(&json!({"name": "tick", "every": "1s", "prompt": "scheduled tick"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);

    let leader = d.wait_for_leader().await;
    let other = 1 - leader;
    eventually("three slots fired", Duration::from_secs(20), async || {
        scheduled(&d, other, "tick").await.len() >= 3
    })
    .await;
    d.replicas[leader].child.0.kill().unwrap();
    d.replicas[leader].child.0.wait().unwrap();
    let before = scheduled(&d, other, "tick").await.len();
    eventually(
        "slots fired by the new leader",
        Duration::from_secs(30),
        async || scheduled(&d, other, "tick").await.len() >= before + 3,
    )
    .await;

    let runs = scheduled(&d, other, "tick").await;
    let mut slots: Vec<&str> = runs.iter().map(|(slot, _)| slot.as_str()).collect();
    assert!(
        slots.iter().all(|s| !s.is_empty()),
        "every run names its slot: {runs:?}"
    );
    slots.sort_unstable();
    let all = slots.len();
    slots.dedup();
    assert_eq!(slots.len(), all, "a slot started two tasks: {runs:?}");
}

/// The leader's advisory lock key (`cluster/leader.rs`).
const LEADER_LOCK: i64 = 0x636c_6177_6c65_6164;

/// Rows of `table` in the deployment's database.
async fn count_rows(db: &mut sqlx::PgConnection, table: &str) -> i64 {
    // `table` is one of the test's own names.
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(db)
        .await
        .unwrap()
}

/// The applied Config's `tasks.concurrency` in the shared `resources` row, if any.
async fn stored_concurrency(db: &mut sqlx::PgConnection) -> Option<i64> {
    let spec: Option<String> =
        sqlx::query_scalar("SELECT spec FROM resources WHERE kind = 'Config' AND name = 'default'")
            .fetch_optional(db)
            .await
            .unwrap();
    let spec: Value = serde_json::from_str(&spec?).ok()?;
    spec["tasks"]["concurrency"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_writes_resource_rows_and_a_new_leader_writes_them_all_at_once() {
    use sqlx::Connection as _;
    let (port, _) = receiver().await;
    let Some(mut d) = Deployment::start(0, port).await else {
        return;
    };
    // The test holds the leader's lock: the replicas all follow.
    let mut holder = sqlx::PgConnection::connect(&d.database_url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LEADER_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    for i in 0..2 {
        let replica = d.spawn(i);
        d.replicas.push(replica);
    }
    let mut db = sqlx::PgConnection::connect(&d.database_url).await.unwrap();

    // Each converged on its own (the admin token works, the webhook is Ready) ...
    for i in 0..2 {
        eventually("the webhook ready", Duration::from_secs(20), async || {
            let r = Deployment::client()
                .get(format!("{}/api/v1/webhooks/counter", d.replicas[i].url))
                .bearer_auth(&d.admin)
                .send()
                .await
                .unwrap();
            r.status() == StatusCode::OK
                && r.json::<Value>().await.unwrap()["status"]["ready"] == true
        })
        .await;
        let status = d.status(i).await.unwrap();
        let leaders = status["replicas"].as_array().unwrap().iter();
        assert_eq!(leaders.filter(|r| r["leader"] == true).count(), 0);
    }
    // ... and a write-back on one is in force on it ...
    let r = Deployment::client()
        .patch(format!("{}/api/v1/config", d.replicas[1].url))
        .bearer_auth(&d.admin)
        .json(&json!({"tasks": {"concurrency": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // ... but no follower wrote a shared row.
    for table in ["resources", "tokens", "webhook_endpoints"] {
        assert_eq!(
            count_rows(&mut db, table).await,
            0,
            "{table}: a follower wrote"
        );
    }

    // The lock is free: a replica leads and writes the whole current picture at once, the
    // write-back made while nobody led included.
    holder.close().await.unwrap();
    eventually("a leader", Duration::from_secs(10), async || {
        d.leader(0).await.is_some()
    })
    .await;
    eventually(
        "the new leader's rows",
        Duration::from_secs(10),
        async || {
            count_rows(&mut db, "resources").await == 4
                && count_rows(&mut db, "tokens").await == 2
                && count_rows(&mut db, "webhook_endpoints").await == 1
                && stored_concurrency(&mut db).await == Some(3)
        },
    )
    .await;

    // A write-back on the follower: the leader writes the row once it has the revision.
    let leader = d.leader(0).await.unwrap();
    let follower = 1 - leader;
    let r = Deployment::client()
        .patch(format!("{}/api/v1/config", d.replicas[follower].url))
        .bearer_auth(&d.admin)
        .json(&json!({"tasks": {"concurrency": 5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    eventually("the leader's row", Duration::from_secs(5), async || {
        stored_concurrency(&mut db).await == Some(5)
    })
    .await;
}

/// A write-back on a replica that does not lead is read there at once: the shared rows are
/// the leader's to write once it has fetched the pushed revision, and the follower's write
/// returns when they hold it (before, `POST /schedules/:name/run` right after
/// `POST /schedules` on the follower answered 404 until the leader caught up).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_back_on_a_follower_is_read_there_at_once() {
    let (port, _) = receiver().await;
    let Some(d) = Deployment::start(2, port).await else {
        return;
    };
    let follower = 1 - d.wait_for_leader().await;
    let url = &d.replicas[follower].url;
    for i in 0..3 {
        let name = format!("by-hand-{i}");
        let r = Deployment::client()
            .post(format!("{url}/api/v1/schedules"))
            .bearer_auth(&d.admin)
            .json(&json!({"name": name, "every": "1h", "prompt": "run by hand"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
        let r = Deployment::client()
            .post(format!("{url}/api/v1/schedules/{name}/run"))
            .bearer_auth(&d.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    }
}
