//! Slow work never holds up fast work: a skill archive host that never answers while tokens
//! are revoked, the Config is patched and webhooks are created; five MCP servers that are slow
//! to initialise start side by side; a spec that changes while its install is in flight ends
//! with the new version installed and the old one never published.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::harness::{expect, token_manifest, TestServer};

/// A host that accepts connections and never answers; returns its address. The accepted
/// sockets are kept open for as long as the test runs.
async fn stalled_host() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

fn archive_skill(name: &str, url: &str, sha256: &str) -> String {
    format!(
        "apiVersion: openclaw.dev/v1\nkind: Skill\nmetadata:\n  name: {name}\nspec:\n  source:\n    archive:\n      url: {url}\n      sha256: \"{sha256}\"\n"
    )
}

fn skill_archive(tmp: &Path, name: &str, version: &str) -> Vec<u8> {
    let dir = tmp.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: The {name} skill\nversion: {version}\n---\n# {name} {version}\n"),
    )
    .unwrap();
    claw::skills::pack::archive_dir(&dir).unwrap()
}

fn skill_status(s: &TestServer, name: &str) -> Option<(bool, &'static str)> {
    s.live()
        .resources
        .status(claw::manifest::Kind::Skill, name)
        .map(|st| (st.ready, st.reason))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_download_holds_up_no_token_config_or_webhook_change() {
    let host = stalled_host().await;
    let s = TestServer::start().await;
    s.write(
        "skills/stalled.yaml",
        &archive_skill(
            "stalled",
            &format!("{host}/stalled.tar.gz"),
            &"ab".repeat(32),
        ),
    );
    s.wait_for("the stalled skill to be Progressing", |live| {
        live.resources
            .status(claw::manifest::Kind::Skill, "stalled")
            .is_some_and(|st| !st.ready && st.reason == "Progressing")
    })
    .await;

    // A token declared, used, then revoked while the download hangs.
    let token = claw::auth::token::generate();
    s.write("tokens/ci.yaml", &token_manifest("ci", &token, "read", ""));
    s.wait_for("the new token", |live| live.tokens.len() >= 2)
        .await;
    expect(s.get("/api/v1/status", &token).await, StatusCode::OK).await;
    let revoked = Instant::now();
    std::fs::remove_file(s.path("tokens/ci.yaml")).unwrap();
    loop {
        let status = s.get("/api/v1/status", &token).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "the revoked token still works after {:?}",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let revoke = revoked.elapsed();

    // API writes answer without waiting for the download.
    let t = Instant::now();
    expect(
        s.patch_config(&s.admin, json!({"tasks": {"concurrency": 3}}))
            .await,
        StatusCode::OK,
    )
    .await;
    let patch = t.elapsed();
    assert_eq!(s.live().config.load().spec.tasks.concurrency, 3);
    let t = Instant::now();
    expect(
        s.request(Method::POST, "/api/v1/webhooks", Some(&s.admin))
            .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["task.completed"], "secret": "s3cret"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let create = t.elapsed();
    let t = Instant::now();
    let skills = expect(s.get("/api/v1/skills", &s.admin).await, StatusCode::OK).await;
    let list = t.elapsed();
    let item = &skills["items"][0];
    assert_eq!(item["name"], "stalled");
    assert_eq!(item["status"]["ready"], false, "{item}");
    assert_eq!(item["status"]["reason"], "Progressing", "{item}");
    eprintln!("with a stalled download: revoke {revoke:?}, PATCH /config {patch:?}, POST /webhooks {create:?}, GET /skills {list:?}");
    // Bounds with room for a loaded CI machine; `cargo bench --bench manifests` measures.
    for (what, took) in [
        ("revoke", revoke),
        ("PATCH", patch),
        ("POST", create),
        ("GET", list),
    ] {
        assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    }
    // And the skill is still waiting, not failed, not installed.
    assert_eq!(skill_status(&s, "stalled"), Some((false, "Progressing")));
    s.stop().await;
}

/// An MCP server over stdio that waits `argv[1]` seconds before answering `initialize`.
const SLOW_MCP: &str = include_str!("../fixtures/slow_mcp.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_slow_mcp_servers_start_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("slow_mcp.py");
    std::fs::write(&script, SLOW_MCP).unwrap();
    let s = TestServer::start().await;
    let started = Instant::now();
    for i in 0..5 {
        s.write(
            &format!("mcp/slow-{i}.yaml"),
            &format!(
                "apiVersion: openclaw.dev/v1\nkind: McpServer\nmetadata:\n  name: slow-{i}\nspec:\n  command: python3\n  args: [{}, \"3\"]\n  timeout_seconds: 20\n",
                script.display()
            ),
        );
    }
    let connected = |live: &claw::live::Live| {
        (0..5).all(|i| {
            live.resources
                .status(claw::manifest::Kind::McpServer, &format!("slow-{i}"))
                .is_some_and(|st| st.ready && st.reason == "Connected")
        })
    };
    s.wait_for("five slow MCP servers connected", connected)
        .await;
    let took = started.elapsed();
    eprintln!("five MCP servers answering initialize after 3 s: all connected in {took:?}");
    // In series this takes 15 s; side by side a little over 3 s (the < 5 s target is
    // measured by `cargo bench --bench manifests`; the suite runs beside other tests).
    assert!(took < Duration::from_secs(9), "took {took:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_changed_during_an_install_installs_the_new_one_and_never_the_old() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = skill_archive(tmp.path(), "lib", "1.0.0");
    let v2 = skill_archive(tmp.path(), "lib", "2.0.0");
    let (v1_sha, v2_sha) = (claw::skills::sha256_hex(&v1), claw::skills::sha256_hex(&v2));
    // v1 is served only once `release` fires; v2 at once.
    let release = Arc::new(tokio::sync::Notify::new());
    let v1_asked = Arc::new(tokio::sync::Notify::new());
    let app = {
        let (release, v1_asked) = (release.clone(), v1_asked.clone());
        Router::new()
            .route(
                "/v1.tar.gz",
                get(move || {
                    let (release, v1_asked, v1) = (release.clone(), v1_asked.clone(), v1.clone());
                    async move {
                        v1_asked.notify_one();
                        release.notified().await;
                        v1
                    }
                }),
            )
            .route("/v2.tar.gz", get(move || std::future::ready(v2.clone())))
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let s = TestServer::start().await;
    s.write(
        "skills/lib.yaml",
        &archive_skill("lib", &format!("{base}/v1.tar.gz"), &v1_sha),
    );
    tokio::time::timeout(Duration::from_secs(10), v1_asked.notified())
        .await
        .expect("the v1 download starts");
    s.write(
        "skills/lib.yaml",
        &archive_skill("lib", &format!("{base}/v2.tar.gz"), &v2_sha),
    );
    let installed = |data: &Path| -> Option<String> {
        let text = std::fs::read(data.join("skills/lib/.claw-skill.json")).ok()?;
        let v: Value = serde_json::from_slice(&text).ok()?;
        v["version"].as_str().map(str::to_owned)
    };
    let data = s.data.path().to_path_buf();
    s.wait_for("v2 installed and Ready", |live| {
        live.resources
            .status(claw::manifest::Kind::Skill, "lib")
            .is_some_and(|st| st.ready)
    })
    .await;
    assert_eq!(installed(&data).as_deref(), Some("2.0.0"));
    // Let the old download finish now: its job was cancelled, so nothing may come of it.
    release.notify_waiters();
    let report = s
        .server
        .as_ref()
        .unwrap()
        .controller
        .reconcile(claw::reconcile::Scope::Full)
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(installed(&data).as_deref(), Some("2.0.0"));
    let store = crate::harness::open_store(&data).await;
    let events = claw::store::outbox::after(&store, 0, 1000).await.unwrap();
    store.close().await;
    let installs: Vec<String> = events
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.payload).unwrap())
        .filter(|e| e["event"] == "skill.installed")
        .map(|e| e["data"]["version"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        installs,
        vec!["2.0.0".to_owned()],
        "v1 must never be announced"
    );
    s.stop().await;
}
