//! Schedules end to end on a manual clock (no sleeping through real minutes): `every`, cron
//! across daylight-saving changes in a named zone, concurrency forbid / replace with a long
//! task, suspend, restarts (mid-slot, and after downtime with missed slots), the manual run,
//! write-back through the API, and `claw validate` errors for bad timing fields.

use std::path::Path;
use std::sync::Arc;

use claw::schedules::timing::parse_stamp;
use claw::server;
use claw::webhooks::clock::{Clock, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{claw_in, expect, options, stdout, TestServer, BOUND};

/// A Config running tasks with the command provider: a prompt starting with `sleep` runs for
/// 30 s, one starting with `fail` fails after 0.2 s, anything else completes at once.
const CONFIG: &str = r#"apiVersion: openclaw.dev/v1
kind: Config
metadata:
  name: default
spec:
  model:
    provider: command
    command: ["sh", "-c", "read -r p; case \"$p\" in sleep*) exec sleep 30;; fail*) sleep 0.2; exit 3;; esac; echo done"]
  tasks:
    concurrency: 4
"#;

fn schedule(name: &str, spec: &str) -> String {
    format!("apiVersion: openclaw.dev/v1\nkind: Schedule\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn ms(s: &str) -> i64 {
    parse_stamp(s).unwrap()
}

fn write_all(dir: &Path, files: &[(&str, String)]) {
    std::fs::write(dir.join("configs/default.yaml"), CONFIG).unwrap();
    std::fs::create_dir_all(dir.join("schedules")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(format!("schedules/{name}.yaml")), text).unwrap();
    }
}

async fn start(at: &str, files: &[(&str, String)]) -> (TestServer, Arc<ManualClock>) {
    let clock = ManualClock::new(ms(at));
    let c: Arc<dyn Clock> = clock.clone();
    let s = TestServer::start_custom(|dir| write_all(dir, files), move |o| o.clock = c).await;
    settle(&s, &clock).await;
    (s, clock)
}

/// Starts a server again on a stopped one's dirs, its clock at `at`.
async fn restart(
    (manifests, data): (tempfile::TempDir, tempfile::TempDir),
    admin: String,
    at: i64,
) -> (TestServer, Arc<ManualClock>) {
    let clock = ManualClock::new(at);
    let mut o = options(manifests.path(), data.path());
    o.clock = clock.clone();
    let server = server::start(o).await.unwrap();
    let base = server.url();
    let s = TestServer {
        server: Some(server),
        manifests,
        data,
        admin,
        http: reqwest::Client::new(),
        base,
    };
    settle(&s, &clock).await;
    (s, clock)
}

/// Waits until the schedule runner has finished a whole pass begun after this call (so at the
/// clock's current time, and after whatever the test changed before).
async fn settle(s: &TestServer, clock: &ManualClock) {
    let target = clock.now_ms();
    let runner = s.server.as_ref().unwrap().schedules.clone();
    let mut passes = runner.passes.subscribe();
    let (begun, _, _) = *passes.borrow_and_update();
    // Passes begun so far may have missed the change; the next one will not, and the notify
    // makes sure there is one.
    s.live().schedules.notify_one();
    tokio::time::timeout(
        BOUND,
        passes.wait_for(|(_, finished, at)| *finished > begun && *at >= target),
    )
    .await
    .expect("the schedule runner made no pass")
    .unwrap();
}

async fn advance_to(s: &TestServer, clock: &ManualClock, at: &str) {
    clock.set(ms(at));
    settle(s, clock).await;
}

async fn get(s: &TestServer, name: &str) -> Value {
    expect(
        s.get(&format!("/api/v1/schedules/{name}"), &s.admin).await,
        StatusCode::OK,
    )
    .await
}

fn slots(v: &Value) -> Vec<String> {
    v["status"]["last_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slot"].as_str().unwrap_or("manual").to_owned())
        .collect()
}

async fn task(s: &TestServer, id: &str) -> Value {
    expect(
        s.get(&format!("/api/v1/tasks/{id}"), &s.admin).await,
        StatusCode::OK,
    )
    .await
}

async fn wait_task(s: &TestServer, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let t = task(s, id).await;
        if t["status"] == status {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} never became {status}: {t}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn every_fires_each_slot_once_on_the_manual_clock() {
    let t0 = "2026-06-01T08:00:00Z";
    let spec = "  every: 1m\n  prompt: Summarize the latest git commits\n";
    let (s, clock) = start(t0, &[("minutely", schedule("minutely", spec))]).await;
    let v = get(&s, "minutely").await;
    assert_eq!(v["status"]["since"], "2026-06-01T08:00:00.000Z");
    assert_eq!(v["status"]["condition"]["reason"], "Scheduled");
    assert_eq!(
        v["status"]["next_runs"],
        json!([
            "2026-06-01T08:01:00.000Z",
            "2026-06-01T08:02:00.000Z",
            "2026-06-01T08:03:00.000Z",
            "2026-06-01T08:04:00.000Z",
            "2026-06-01T08:05:00.000Z"
        ])
    );
    assert!(slots(&v).is_empty());

    advance_to(&s, &clock, "2026-06-01T08:00:59Z").await;
    assert!(slots(&get(&s, "minutely").await).is_empty(), "fired early");
    advance_to(&s, &clock, "2026-06-01T08:01:00Z").await;
    // More passes at the same time fire nothing more.
    settle(&s, &clock).await;
    let v = get(&s, "minutely").await;
    assert_eq!(slots(&v), ["2026-06-01T08:01:00.000Z"]);
    let run = &v["status"]["last_runs"][0];
    assert_eq!(run["trigger"], "slot");
    let id = run["task_id"].as_str().unwrap().to_owned();
    let t = wait_task(&s, &id, "completed").await;
    assert_eq!(t["schedule"], "minutely");
    assert_eq!(t["schedule_slot"], "2026-06-01T08:01:00.000Z");
    assert_eq!(t["created_by"], "schedule:minutely");
    assert_eq!(t["prompt"], "Summarize the latest git commits");

    advance_to(&s, &clock, "2026-06-01T08:02:00Z").await;
    let v = get(&s, "minutely").await;
    assert_eq!(
        slots(&v),
        ["2026-06-01T08:02:00.000Z", "2026-06-01T08:01:00.000Z"]
    );
    assert_eq!(v["status"]["skipped"], 0);
    assert_eq!(v["status"]["next_runs"][0], "2026-06-01T08:03:00.000Z");
    let first = v["status"]["last_runs"][1]["outcome"].clone();
    assert_eq!(first, "completed");

    // The task's webhook events name the schedule and slot too.
    let (_, data) = s.stop().await;
    let url = crate::harness::database_url(data.path());
    let store = claw::store::Store::open_existing(data.path(), url.as_deref())
        .await
        .unwrap()
        .unwrap();
    let events = claw::store::outbox::after(&store, 0, 1000).await.unwrap();
    store.close().await;
    let completed: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.payload).unwrap())
        .filter(|e| e["event"] == "task.completed" && e["data"]["task_id"] == id.as_str())
        .collect();
    assert_eq!(completed.len(), 1, "{events:?}");
    assert_eq!(completed[0]["data"]["schedule"], "minutely");
    assert_eq!(
        completed[0]["data"]["schedule_slot"],
        "2026-06-01T08:01:00.000Z"
    );
}

#[tokio::test]
async fn cron_in_a_named_zone_skips_the_missing_hour_and_fires_the_repeated_one_once() {
    // Europe/Berlin springs forward on 2026-03-29 (02:00 CET → 03:00 CEST): 02:30 does not
    // exist that day. It falls back on 2026-10-25 (03:00 CEST → 02:00 CET): 02:30 happens
    // twice.
    let spec = "  cron: \"30 2 * * *\"\n  timezone: Europe/Berlin\n  prompt: nightly\n";
    let (s, clock) = start(
        "2026-03-28T12:00:00Z",
        &[("nightly", schedule("nightly", spec))],
    )
    .await;
    let v = get(&s, "nightly").await;
    // The 29th has no 02:30.
    assert_eq!(
        v["status"]["next_runs"],
        json!([
            "2026-03-30T00:30:00.000Z",
            "2026-03-31T00:30:00.000Z",
            "2026-04-01T00:30:00.000Z",
            "2026-04-02T00:30:00.000Z",
            "2026-04-03T00:30:00.000Z"
        ])
    );
    // Through the whole night of the change: nothing fires.
    advance_to(&s, &clock, "2026-03-29T00:30:00Z").await; // 01:30 CET
    advance_to(&s, &clock, "2026-03-29T01:30:00Z").await; // 03:30 CEST
    advance_to(&s, &clock, "2026-03-29T22:00:00Z").await;
    assert!(slots(&get(&s, "nightly").await).is_empty());
    advance_to(&s, &clock, "2026-03-30T00:30:00Z").await; // 02:30 CEST
    let v = get(&s, "nightly").await;
    assert_eq!(slots(&v), ["2026-03-30T00:30:00.000Z"]);
    assert_eq!(
        v["status"]["skipped"], 0,
        "a slot that does not exist is no missed slot"
    );
    s.stop().await;

    let spec = "  cron: \"30 2 * * *\"\n  timezone: Europe/Berlin\n  prompt: nightly\n";
    let (s, clock) = start(
        "2026-10-24T12:00:00Z",
        &[("nightly", schedule("nightly", spec))],
    )
    .await;
    advance_to(&s, &clock, "2026-10-25T00:30:00Z").await; // the first 02:30 (CEST)
    assert_eq!(
        slots(&get(&s, "nightly").await),
        ["2026-10-25T00:30:00.000Z"]
    );
    advance_to(&s, &clock, "2026-10-25T01:30:00Z").await; // the second 02:30 (CET)
    advance_to(&s, &clock, "2026-10-25T12:00:00Z").await;
    let v = get(&s, "nightly").await;
    assert_eq!(
        slots(&v),
        ["2026-10-25T00:30:00.000Z"],
        "the repeated hour fired twice"
    );
    assert_eq!(v["status"]["next_runs"][0], "2026-10-26T01:30:00.000Z");
    assert_eq!(v["status"]["skipped"], 0);
}

#[tokio::test]
async fn forbid_skips_a_slot_while_the_last_run_is_going_and_replace_cancels_it() {
    let t0 = "2026-06-01T08:00:00Z";
    let forbid = "  every: 1m\n  prompt: sleep forbid\n  concurrency: forbid\n";
    let replace = "  every: 1m\n  prompt: sleep replace\n  concurrency: replace\n";
    let (s, clock) = start(
        t0,
        &[
            ("forbid", schedule("forbid", forbid)),
            ("replace", schedule("replace", replace)),
        ],
    )
    .await;
    advance_to(&s, &clock, "2026-06-01T08:01:00Z").await;
    let f1 = get(&s, "forbid").await["status"]["last_runs"][0]["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r1 = get(&s, "replace").await["status"]["last_runs"][0]["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_task(&s, &f1, "running").await;
    wait_task(&s, &r1, "running").await;

    advance_to(&s, &clock, "2026-06-01T08:02:00Z").await;
    let v = get(&s, "forbid").await;
    let last = &v["status"]["last_runs"][0];
    assert_eq!(last["slot"], "2026-06-01T08:02:00.000Z");
    assert_eq!(last["outcome"], "skipped");
    assert!(last["task_id"].is_null());
    assert!(last["message"].as_str().unwrap().contains(&f1), "{last}");
    assert_eq!(v["status"]["skipped"], 1);
    assert_eq!(task(&s, &f1).await["status"], "running");

    let v = get(&s, "replace").await;
    let r2 = v["status"]["last_runs"][0]["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(r1, r2);
    let cancelled = wait_task(&s, &r1, "cancelled").await;
    assert!(
        cancelled["error"]
            .as_str()
            .unwrap()
            .contains("schedule:replace"),
        "{cancelled}"
    );
    wait_task(&s, &r2, "running").await;
    assert_eq!(v["status"]["skipped"], 0);
    s.stop().await;
}

#[tokio::test]
async fn failed_runs_back_off_as_openclaws_cron_and_show_it() {
    let spec = "  every: 1m\n  prompt: fail always\n";
    let (s, clock) = start(
        "2026-06-01T08:00:00Z",
        &[("flaky", schedule("flaky", spec))],
    )
    .await;
    advance_to(&s, &clock, "2026-06-01T08:01:00Z").await;
    let id = get(&s, "flaky").await["status"]["last_runs"][0]["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_task(&s, &id, "failed").await;
    let v = get(&s, "flaky").await;
    assert_eq!(v["status"]["consecutive_failures"], 1);
    // 30 s after the failed run ended (it ran at least 0.2 s).
    let until = ms(v["status"]["backoff_until"].as_str().unwrap());
    assert!(
        (ms("2026-06-01T08:01:30.2Z")..ms("2026-06-01T08:01:35Z")).contains(&until),
        "{v}"
    );
    assert_eq!(v["status"]["last_runs"][0]["outcome"], "failed");

    advance_to(&s, &clock, "2026-06-01T08:02:00Z").await;
    let id = get(&s, "flaky").await["status"]["last_runs"][0]["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_task(&s, &id, "failed").await;
    let v = get(&s, "flaky").await;
    assert_eq!(v["status"]["consecutive_failures"], 2);
    // 60 s after the second.
    let until = ms(v["status"]["backoff_until"].as_str().unwrap());
    assert!(
        (ms("2026-06-01T08:03:00.2Z")..ms("2026-06-01T08:03:05Z")).contains(&until),
        "{v}"
    );
    // The 08:03 slot is due but waits for the backoff's end, then fires (once).
    advance_to(&s, &clock, "2026-06-01T08:03:00Z").await;
    assert_eq!(slots(&get(&s, "flaky").await).len(), 2);
    advance_to(&s, &clock, "2026-06-01T08:03:05Z").await;
    let v = get(&s, "flaky").await;
    assert_eq!(
        slots(&v),
        [
            "2026-06-01T08:03:00.000Z",
            "2026-06-01T08:02:00.000Z",
            "2026-06-01T08:01:00.000Z"
        ]
    );
    assert_eq!(v["status"]["skipped"], 0);
    s.stop().await;
}

#[tokio::test]
async fn suspend_stops_the_clock_and_a_manual_run_still_starts_a_task() {
    let t0 = "2026-06-01T08:00:00Z";
    let spec = "  every: 1m\n  prompt: paused\n  suspend: true\n";
    let (s, clock) = start(t0, &[("paused", schedule("paused", spec))]).await;
    let v = get(&s, "paused").await;
    assert_eq!(v["status"]["suspended"], true);
    assert_eq!(v["status"]["next_runs"], json!([]));
    assert_eq!(v["status"]["condition"]["reason"], "Suspended");
    advance_to(&s, &clock, "2026-06-01T08:10:00Z").await;
    assert!(slots(&get(&s, "paused").await).is_empty());

    // The manual run: an execute token may start it; a read token may not.
    let exec = claw::auth::token::generate();
    let read = claw::auth::token::generate();
    s.write(
        "tokens/exec.yaml",
        &crate::harness::token_manifest("exec", &exec, "execute", ""),
    );
    s.write(
        "tokens/read.yaml",
        &crate::harness::token_manifest("read", &read, "read", ""),
    );
    s.wait_for("tokens", |l| l.tokens.len() >= 3).await;
    let r = s
        .request(Method::POST, "/api/v1/schedules/paused/run", Some(&read))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .request(Method::POST, "/api/v1/schedules/paused/run", Some(&exec))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/api/v1/tasks/task_"));
    let created = expect(r, StatusCode::CREATED).await;
    let id = created["id"].as_str().unwrap();
    let t = wait_task(&s, id, "completed").await;
    assert_eq!(t["schedule"], "paused");
    assert!(t.get("schedule_slot").is_none(), "{t}");
    assert_eq!(t["created_by"], "exec");
    let v = get(&s, "paused").await;
    assert_eq!(v["status"]["last_runs"][0]["trigger"], "manual");
    assert!(v["status"]["last_runs"][0]["slot"].is_null());
    assert_eq!(v["status"]["last_runs"][0]["task_id"], id);
    let r = s
        .request(Method::POST, "/api/v1/schedules/nope/run", Some(&exec))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Resuming restarts the clock: the ten minutes passed while suspended never fire.
    let r = s
        .request(Method::PATCH, "/api/v1/schedules/paused", Some(&s.admin))
        .json(&json!({"suspend": false}))
        .send()
        .await
        .unwrap();
    let v = expect(r, StatusCode::OK).await;
    assert_eq!(v["status"]["suspended"], false);
    assert!(std::fs::read_to_string(s.path("schedules/paused.yaml"))
        .unwrap()
        .contains("suspend: false"));
    settle(&s, &clock).await;
    assert_eq!(
        get(&s, "paused").await["status"]["next_runs"][0],
        "2026-06-01T08:11:00.000Z"
    );
    advance_to(&s, &clock, "2026-06-01T08:11:00Z").await;
    let v = get(&s, "paused").await;
    assert_eq!(slots(&v), ["2026-06-01T08:11:00.000Z", "manual"]);
    assert_eq!(v["status"]["skipped"], 0);
    s.stop().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_slot_does_not_fire_it_again() {
    let t0 = "2026-06-01T08:00:00Z";
    let spec = "  every: 1m\n  prompt: sleep long\n";
    let (s, clock) = start(t0, &[("long", schedule("long", spec))]).await;
    advance_to(&s, &clock, "2026-06-01T08:01:00Z").await;
    let id = get(&s, "long").await["status"]["last_runs"][0]["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_task(&s, &id, "running").await;
    let admin = s.admin.clone();
    let mut dirs = s.stop().await;

    // Same data dir, the same second of the slot, twice.
    for _ in 0..2 {
        let (s, _clock) = restart(dirs, admin.clone(), ms("2026-06-01T08:01:00.500Z")).await;
        let v = get(&s, "long").await;
        assert_eq!(slots(&v), ["2026-06-01T08:01:00.000Z"]);
        let t = task(&s, &id).await;
        assert_eq!(
            t["status"], "failed",
            "the restart ended the running task: {t}"
        );
        let all = expect(s.get("/api/v1/tasks", &s.admin).await, StatusCode::OK).await;
        assert_eq!(all["total"], 1, "one task in all: {all}");
        dirs = s.stop().await;
    }
}

#[tokio::test]
async fn missed_slots_after_downtime_fire_once_within_the_deadline_and_are_counted() {
    let t0 = "2026-06-01T08:00:00Z";
    let within = "  every: 1m\n  prompt: within\n  starting_deadline_seconds: 600\n";
    let late = "  every: 10m\n  prompt: late\n  starting_deadline_seconds: 60\n";
    let (s, _clock) = start(
        t0,
        &[
            ("within", schedule("within", within)),
            ("late", schedule("late", late)),
        ],
    )
    .await;
    let admin = s.admin.clone();
    let dirs = s.stop().await;

    // Down from 08:00 to 08:35:30.
    let (s, clock) = restart(dirs, admin, ms("2026-06-01T08:35:30Z")).await;
    let v = get(&s, "within").await;
    assert_eq!(slots(&v), ["2026-06-01T08:35:00.000Z"], "one fire, not 35");
    assert_eq!(v["status"]["skipped"], 34);
    let v = get(&s, "late").await;
    assert!(
        slots(&v).is_empty(),
        "08:30 is 5 min late, past the 60 s deadline"
    );
    assert_eq!(v["status"]["skipped"], 3);
    assert_eq!(v["status"]["next_runs"][0], "2026-06-01T08:40:00.000Z");
    advance_to(&s, &clock, "2026-06-01T08:40:00Z").await;
    assert_eq!(slots(&get(&s, "late").await), ["2026-06-01T08:40:00.000Z"]);
    s.stop().await;
}

#[tokio::test]
async fn schedules_are_written_back_and_refused_when_invalid() {
    let (s, clock) = start("2026-06-01T08:00:00Z", &[]).await;
    let post = |body: Value| {
        s.request(Method::POST, "/api/v1/schedules", Some(&s.admin))
            .json(&body)
            .send()
    };
    let r = post(
        json!({"name": "bad", "cron": "61 * * * *", "timezone": "Mars/Olympus", "prompt": "p"}),
    )
    .await
    .unwrap();
    let e = expect(r, StatusCode::BAD_REQUEST).await;
    let text = e.to_string();
    assert!(
        text.contains("/spec/cron") && text.contains("Mars/Olympus"),
        "{text}"
    );
    assert!(!s.path("schedules/bad.yaml").exists());
    let r =
        post(json!({"name": "both", "every": "1m", "at": "2026-06-01T09:00:00Z", "prompt": "p"}))
            .await
            .unwrap();
    let e = expect(r, StatusCode::BAD_REQUEST).await;
    assert!(
        e.to_string().contains("exactly one of cron, every or at"),
        "{e}"
    );

    let r = post(json!({"name": "once", "at": "2026-06-01T08:30:00Z", "prompt": "one shot"}))
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/api/v1/schedules/once");
    let v = expect(r, StatusCode::CREATED).await;
    assert_eq!(v["spec"]["at"], "2026-06-01T08:30:00Z");
    let text = std::fs::read_to_string(s.path("schedules/once.yaml")).unwrap();
    assert!(
        text.contains("kind: Schedule") && text.contains("one shot"),
        "{text}"
    );
    settle(&s, &clock).await;
    assert_eq!(
        get(&s, "once").await["status"]["next_runs"],
        json!(["2026-06-01T08:30:00.000Z"])
    );
    advance_to(&s, &clock, "2026-06-01T09:00:00Z").await;
    let v = get(&s, "once").await;
    assert_eq!(slots(&v), ["2026-06-01T08:30:00.000Z"]);
    assert_eq!(v["status"]["next_runs"], json!([]));

    let list = expect(s.get("/api/v1/schedules", &s.admin).await, StatusCode::OK).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["name"], "once");
    let r = s
        .request(Method::DELETE, "/api/v1/schedules/once", Some(&s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!s.path("schedules/once.yaml").exists());
    let r = s.get("/api/v1/schedules/once", &s.admin).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn claw_get_schedules_shows_timing_next_and_last_run() {
    let spec = "  cron: \"0 9 * * 1-5\"\n  timezone: America/New_York\n  prompt: standup\n";
    let (s, clock) = start(
        "2026-06-01T12:00:00Z",
        &[("standup", schedule("standup", spec))],
    )
    .await;
    advance_to(&s, &clock, "2026-06-01T13:00:00Z").await; // 09:00 EDT, a Monday
    let claw = |args: &'static [&'static str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_claw"))
            .args(args)
            .env("CLAW_URL", &s.base)
            .env("CLAW_TOKEN", &s.admin)
            .env_remove("OPENCLAW_TOKEN")
            .output()
    };
    let out = claw(&["get", "schedules"]).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME     WHEN"), "{text}");
    let row: Vec<&str> = lines[1]
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        row[..5],
        [
            "standup",
            "cron 0 9 * * 1-5 (America/New_York)",
            "False",
            "2026-06-02T13:00:00.000Z",
            "2026-06-01T13:00:00.000Z"
        ],
        "{text}"
    );
    let out = claw(&["get", "Schedule", "-o", "json"]).await.unwrap();
    let items: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items[0]["name"], "standup");
    s.stop().await;
}

#[test]
fn validate_names_file_line_and_field_of_a_bad_cron_or_zone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(
        &file,
        schedule(
            "bad",
            "  cron: \"61 * * * *\"\n  timezone: Mars/Olympus\n  prompt: p\n",
        ) + "---\n"
            + &schedule("worse", "  every: 0s\n  prompt: p\n"),
    )
    .unwrap();
    let out = claw_in(dir.path(), &["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let f = file.display();
    assert!(
        text.contains(&format!(
            "{f}:6:3: Schedule/bad: /spec/cron: invalid cron expression"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{f}:7:3: Schedule/bad: /spec/timezone: unknown time zone \"Mars/Olympus\""
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{f}:15:3: Schedule/worse: /spec/every:")),
        "{text}"
    );
}
