//! GitOps depth against real git: revisions are commits, write-backs are commits, metrics.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{expect, git, token_manifest, TestServer};

/// Makes the manifests dir a repository with everything committed, after `setup`.
fn repo(dir: &Path, setup: impl FnOnce(&Path)) {
    setup(dir);
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "initial"]);
}

/// A repository whose Config has `git.auto_commit: true` (author `robot <robot@example.com>`),
/// plus a committed README that tests edit without committing.
fn auto_commit_repo(dir: &Path) {
    repo(dir, |dir| {
        let config = dir.join("configs/default.yaml");
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("auto_commit: false", "auto_commit: true")
            .replace("author_name: claw ", "author_name: robot")
            .replace(
                "author_email: claw@localhost",
                "author_email: robot@example.com",
            );
        std::fs::write(&config, text).unwrap();
        std::fs::write(dir.join("README.md"), "notes\n").unwrap();
    });
}

#[tokio::test]
async fn revision_is_the_head_commit_and_dirty_after_an_uncommitted_edit() {
    let server = TestServer::start_with(|dir| repo(dir, |_| {})).await;
    let head = git(server.manifests.path(), &["rev-parse", "HEAD"]);
    assert_eq!(server.live().summary.load().revision, head);
    let body = expect(
        server
            .get("/api/v1/resources?kind=Token", &server.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["items"][0]["applied_revision"], head.as_str());

    server.write(
        "tokens/ci.yaml",
        &token_manifest("ci", &claw::auth::token::generate(), "read", ""),
    );
    let dirty = format!("{head}-dirty");
    server
        .wait_for("the dirty revision", |live| {
            live.summary.load().revision == dirty
        })
        .await;
    let body = expect(
        server
            .get("/api/v1/resources?kind=Token", &server.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    let ci = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "ci")
        .unwrap();
    assert_eq!(ci["applied_revision"], dirty.as_str());
}

#[tokio::test]
async fn revision_is_a_content_digest_outside_git() {
    let server = TestServer::start().await;
    assert!(server.live().summary.load().revision.starts_with("sha256:"));
}

#[tokio::test]
async fn a_write_back_is_one_commit_of_that_file_only() {
    let server = TestServer::start_with(auto_commit_repo).await;
    let dir = server.manifests.path();
    std::fs::write(dir.join("README.md"), "edited, not committed\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "staged, not committed\n").unwrap();
    git(dir, &["add", "notes.txt"]);

    expect(
        server
            .patch_config(&server.admin, json!({"tasks": {"concurrency": 2}}))
            .await,
        StatusCode::OK,
    )
    .await;

    assert_eq!(git(dir, &["rev-list", "--count", "HEAD"]), "2");
    assert_eq!(
        git(dir, &["log", "-1", "--format=%B"]),
        "PATCH /api/v1/config\n\nClaw-Token: admin"
    );
    assert_eq!(
        git(dir, &["log", "-1", "--format=%an <%ae>|%cn <%ce>"]),
        "robot <robot@example.com>|robot <robot@example.com>"
    );
    assert_eq!(
        git(dir, &["show", "--name-only", "--format=", "HEAD"]),
        "configs/default.yaml"
    );
    assert!(git(dir, &["show", "HEAD"]).contains("+    concurrency: 2"));
    // The unrelated edits are still there, still uncommitted, still (un)staged as they were.
    assert_eq!(
        git(dir, &["status", "--porcelain"]),
        "M README.md\nA  notes.txt"
    );
    let head = git(dir, &["rev-parse", "HEAD"]);
    assert_eq!(
        server.live().summary.load().revision,
        format!("{head}-dirty")
    );
}

#[tokio::test]
async fn created_and_deleted_resources_are_committed_too() {
    let server = TestServer::start_with(auto_commit_repo).await;
    let dir = server.manifests.path();
    expect(
        server
            .request(Method::POST, "/api/v1/webhooks", Some(&server.admin))
            .json(&json!({
                "name": "slack",
                "url": "http://127.0.0.1:9/hook",
                "events": ["*"],
                "secret": "s3cr3t-value"
            }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        git(dir, &["show", "--name-only", "--format=%s", "HEAD"]),
        "POST /api/v1/webhooks\n\nwebhooks/slack.yaml"
    );
    expect(
        server
            .request(
                Method::DELETE,
                "/api/v1/webhooks/slack",
                Some(&server.admin),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        git(dir, &["show", "--name-status", "--format=%s", "HEAD"]),
        "DELETE /api/v1/webhooks/slack\n\nD\twebhooks/slack.yaml"
    );
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn concurrent_write_backs_make_two_commits_and_keep_both_changes() {
    let server = TestServer::start_with(auto_commit_repo).await;
    let dir = server.manifests.path();
    let (a, b) = tokio::join!(
        server.patch_config(&server.admin, json!({"tasks": {"concurrency": 3}})),
        server.patch_config(&server.admin, json!({"rate_limit": {"burst": 7}})),
    );
    expect(a, StatusCode::OK).await;
    expect(b, StatusCode::OK).await;
    assert_eq!(git(dir, &["rev-list", "--count", "HEAD"]), "3");
    let committed = git(dir, &["show", "HEAD:configs/default.yaml"]);
    assert!(committed.contains("concurrency: 3"), "{committed}");
    assert!(committed.contains("burst: 7"), "{committed}");
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn a_failed_commit_fails_the_call_and_changes_nothing() {
    let server = TestServer::start_with(auto_commit_repo).await;
    let dir = server.manifests.path();
    let hook = dir.join(".git/hooks/pre-commit");
    std::fs::write(&hook, "#!/bin/sh\necho 'refused by hook' >&2\nexit 1\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let before = std::fs::read(dir.join("configs/default.yaml")).unwrap();
    let head = git(dir, &["rev-parse", "HEAD"]);

    let body = expect(
        server
            .patch_config(&server.admin, json!({"tasks": {"concurrency": 2}}))
            .await,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert_eq!(body["error"]["code"], "git_commit_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("refused by hook"), "{message}");

    assert_eq!(
        std::fs::read(dir.join("configs/default.yaml")).unwrap(),
        before
    );
    assert_eq!(git(dir, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
    assert_eq!(server.live().config.load().spec.tasks.concurrency, 4);
}

#[tokio::test]
async fn metrics_expose_every_family() {
    let server = TestServer::start().await;
    // One delivered webhook attempt, to a receiver that answers 200.
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    expect(
        server
            .request(Method::POST, "/api/v1/webhooks", Some(&server.admin))
            .json(&json!({"name": "m", "url": format!("http://{addr}/hook"), "events": ["*"], "secret": "x"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let mut recorded = server.server.as_ref().unwrap().webhooks.recorded();
    expect(
        server
            .request(Method::POST, "/api/v1/webhooks/m/test", Some(&server.admin))
            .send()
            .await
            .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    tokio::time::timeout(crate::harness::BOUND, recorded.wait_for(|n| *n >= 1))
        .await
        .expect("the test delivery was not attempted in time")
        .unwrap();
    expect(
        server.get("/api/v1/status", &server.admin).await,
        StatusCode::OK,
    )
    .await;
    let response = server
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = server.get("/metrics", &server.admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for family in [
        "# TYPE claw_reconciles_total counter",
        "# TYPE claw_reconcile_duration_seconds histogram",
        "# TYPE claw_resources gauge",
        "# TYPE claw_tasks gauge",
        "# TYPE claw_webhook_deliveries gauge",
        "# TYPE claw_webhook_delivery_attempts_total counter",
        "# TYPE claw_http_requests_total counter",
        "# TYPE claw_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(family), "missing {family} in:\n{text}");
    }
    assert!(
        text.contains("claw_resources{kind=\"Token\",ready=\"true\"} 1"),
        "{text}"
    );
    assert!(text.contains("claw_tasks{status=\"queued\"} 0"), "{text}");
    assert!(
        text.contains(
            "claw_http_requests_total{method=\"GET\",route=\"/api/v1/status\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("claw_reconcile_duration_seconds_count "),
        "{text}"
    );
    assert!(
        text.contains("claw_webhook_delivery_attempts_total{outcome=\"delivered\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("claw_webhook_deliveries{outcome=\"delivered\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn claw_get_and_claw_reconcile_speak_to_the_server() {
    let server = TestServer::start_with(|dir| repo(dir, |_| {})).await;
    let head = git(server.manifests.path(), &["rev-parse", "HEAD"]);
    let claw = |args: &'static [&'static str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_claw"))
            .args(args)
            .env("CLAW_URL", &server.base)
            .env("CLAW_TOKEN", &server.admin)
            .env_remove("OPENCLAW_TOKEN")
            .output()
    };
    let out = claw(&["get", "Token"]).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("KIND   NAME   READY  REASON"));
    let row = lines.next().unwrap();
    assert!(row.starts_with("Token  admin  True"), "{row}");
    assert!(row.contains(&head[..12]), "{row}");
    assert!(row.ends_with("tokens/admin.yaml:1"), "{row}");
    assert_eq!(lines.next(), None);

    let out = claw(&["get", "-o", "json"]).await.unwrap();
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2, "{items}");

    let out = claw(&["reconcile"]).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with(&format!("revision {head}: 0 applied, 0 failed")),
        "{text}"
    );
}

#[tokio::test]
async fn a_write_back_that_changes_nothing_makes_no_commit() {
    let server = TestServer::start_with(auto_commit_repo).await;
    let dir = server.manifests.path();
    expect(
        server
            .patch_config(&server.admin, json!({"tasks": {"concurrency": 4}}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(git(dir, &["rev-list", "--count", "HEAD"]), "1");
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
}

/// SPEC §5a: a write-back is the smallest edit, so the commit's diff is the change itself.
#[tokio::test]
async fn a_write_back_commit_is_the_smallest_diff() {
    let server = TestServer::start_with(auto_commit_repo).await;
    let dir = server.manifests.path();
    let before = std::fs::read_to_string(dir.join("configs/default.yaml")).unwrap();
    let numstat = || git(dir, &["diff", "--numstat", "HEAD~1", "HEAD"]);

    // One field changed: one line out, one line in; its aligned comment stays where it was.
    expect(
        server
            .patch_config(&server.admin, json!({"tasks": {"timeout_seconds": 900}}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(numstat(), "1\t1\tconfigs/default.yaml");
    let diff = git(dir, &["show", "--format=", "-U0", "HEAD"]);
    assert!(
        diff.contains("\n-    timeout_seconds: 600         # per task;")
            && diff.contains("\n+    timeout_seconds: 900         # per task;"),
        "{diff}"
    );

    // A field added: one line in.
    expect(
        server
            .patch_config(&server.admin, json!({"tasks": {"max_turns": 20}}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(numstat(), "1\t0\tconfigs/default.yaml");

    // A flow mapping stays a flow mapping on its line.
    expect(
        server
            .patch_config(
                &server.admin,
                json!({"model": {"api_key": {"fromEnv": "OTHER_KEY"}}}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(numstat(), "1\t1\tconfigs/default.yaml");
    let after = std::fs::read_to_string(dir.join("configs/default.yaml")).unwrap();
    assert!(
        after.contains("\n    api_key: {fromEnv: OTHER_KEY}\n"),
        "{after}"
    );
    // Everything else, comments and alignment included, byte for byte.
    let unchanged = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                ![
                    "timeout_seconds: 600 ",
                    "timeout_seconds: 900 ",
                    "api_key:",
                    "max_turns:",
                ]
                .iter()
                .any(|k| l.contains(k))
            })
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(unchanged(&after), unchanged(&before));
    assert!(after.contains("    allow_commands: false        # offer the agent a shell tool in the working directory\n    max_turns: 20\n  rate_limit:"), "{after}");
}
