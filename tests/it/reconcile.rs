//! The reconciler seen from outside: edits on disk, invalid edits, prune guard, statuses.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{expect, token_manifest, TestServer};

const CONFIG: &str = "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  tasks:\n    concurrency: CONCURRENCY\n";

fn config(concurrency: &str) -> String {
    CONFIG.replace("CONCURRENCY", concurrency)
}

async fn concurrency_via_api(s: &TestServer) -> Value {
    let body = expect(s.get("/api/v1/config", &s.admin).await, StatusCode::OK).await;
    body["tasks"]["concurrency"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_edited_on_disk_is_reflected_by_the_api_within_a_bound() {
    let s = TestServer::start().await;
    let started = Instant::now();
    s.write("configs/default.yaml", &config("7"));
    s.wait_for("the edit", |l| l.config.load().spec.tasks.concurrency == 7)
        .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "converged in {took:?}");
    assert_eq!(concurrency_via_api(&s).await, 7);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_last_good_state_and_is_reported() {
    let s = TestServer::start().await;
    s.write("configs/default.yaml", &config("7"));
    s.wait_for("the good edit", |l| {
        l.config.load().spec.tasks.concurrency == 7
    })
    .await;

    s.write("configs/default.yaml", &config("lots"));
    s.wait_for("the error", |l| !l.summary.load().errors.is_empty())
        .await;
    assert_eq!(
        concurrency_via_api(&s).await,
        7,
        "last good config still in force"
    );
    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    assert_eq!(status["status"], "degraded");
    let error = &status["reconciler"]["errors"][0];
    assert_eq!(error["file"], "configs/default.yaml");
    assert_eq!(error["line"], 7);
    assert_eq!(error["pointer"], "/spec/tasks/concurrency");
    assert_eq!(error["kind"], "Config");
    assert!(
        error["text"]
            .as_str()
            .unwrap()
            .starts_with("configs/default.yaml:7:"),
        "{error}"
    );
    let resources = expect(
        s.get("/api/v1/resources?kind=Config", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(resources["items"][0]["ready"], false);
    assert_eq!(resources["items"][0]["reason"], "InvalidManifest");

    // Fixing the file clears the error.
    s.write("configs/default.yaml", &config("9"));
    s.wait_for("the fix", |l| l.summary.load().errors.is_empty())
        .await;
    assert_eq!(concurrency_via_api(&s).await, 9);
    let resources = expect(
        s.get("/api/v1/resources?kind=Config", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(resources["items"][0]["ready"], true);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_in_a_token_file_does_not_revoke_the_token() {
    let token = claw::auth::token::generate();
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("tokens/ci.yaml"),
            token_manifest("ci", &token, "read", ""),
        )
        .unwrap();
    })
    .await;
    expect(s.get("/api/v1/status", &token).await, StatusCode::OK).await;
    s.write("tokens/ci.yaml", &token_manifest("ci", &token, "raed", ""));
    s.wait_for("the error", |l| !l.summary.load().errors.is_empty())
        .await;
    expect(s.get("/api/v1/status", &token).await, StatusCode::OK).await;
    // Not even YAML: still no delete of anything.
    s.write("tokens/ci.yaml", "kind: Token\nmetadata: {name: [ci\n");
    s.wait_for("the YAML error", |l| {
        l.summary
            .load()
            .errors
            .iter()
            .any(|e| e.message.starts_with("invalid YAML"))
    })
    .await;
    expect(s.get("/api/v1/status", &token).await, StatusCode::OK).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_manifest_vanishes_nothing_is_deleted_until_confirmed() {
    // Every manifest in one dir, which then vanishes in one step (renamed into a hidden dir,
    // which is not read): two removals could be seen by two passes.
    let s = TestServer::start_with(|dir| {
        std::fs::create_dir(dir.join("all")).unwrap();
        for sub in ["tokens", "configs"] {
            std::fs::rename(dir.join(sub), dir.join("all").join(sub)).unwrap();
        }
    })
    .await;
    std::fs::rename(s.path("all"), s.path(".gone")).unwrap();
    s.wait_for("the prune guard", |l| l.summary.load().prune_blocked > 0)
        .await;
    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    assert_eq!(status["status"], "degraded");
    assert_eq!(status["reconciler"]["prune_blocked"], 1);
    let messages: Vec<&str> = status["reconciler"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("prune guard")),
        "{messages:?}"
    );

    let r = s
        .request(Method::POST, "/api/v1/reconcile", Some(&s.admin))
        .json(&json!({"confirm_prune": true}))
        .send()
        .await
        .unwrap();
    let report = expect(r, StatusCode::OK).await;
    assert_eq!(report["applied"][0]["action"], "delete");
    expect(
        s.get("/api/v1/status", &s.admin).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_reported_and_other_kinds_are_accepted_with_a_status() {
    // A local path source, so the Skill installs without a registry.
    let skill = "apiVersion: openclaw.dev/v1\nkind: Skill\nmetadata:\n  name: git-helper\nspec:\n  version: latest\n  source:\n    path: ../skill-src\n";
    let s = TestServer::start_with(|dir| {
        std::fs::create_dir_all(dir.join("skills")).unwrap();
        std::fs::create_dir_all(dir.join("skill-src")).unwrap();
        std::fs::write(
            dir.join("skill-src/SKILL.md"),
            "---\nname: git-helper\ndescription: Git help\n---\nUse git.\n",
        )
        .unwrap();
        std::fs::write(dir.join("skills/a.yaml"), skill).unwrap();
        std::fs::write(dir.join("skills/b.yaml"), skill).unwrap();
    })
    .await;
    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    let error = &status["reconciler"]["errors"][0];
    assert_eq!(error["file"], "skills/b.yaml");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("already declared at skills/a.yaml"));
    let all = expect(
        s.get("/api/v1/resources?limit=100", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all["total"], 3, "{all}");
    let skill = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "Skill")
        .unwrap();
    assert_eq!(skill["ready"], true);
    assert_eq!(skill["file"], "skills/a.yaml");
    assert!(skill["applied_revision"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    expect(
        s.get("/api/v1/resources?limit=500", &s.admin).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect(
        s.get("/api/v1/resources?kind=Gizmo", &s.admin).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_manifests_does_not_make_the_server_reconcile() {
    use std::sync::atomic::Ordering;
    let s = TestServer::start().await;
    let before = s.live().reconcile_requests.load(Ordering::Relaxed);
    for _ in 0..3 {
        for file in ["configs/default.yaml", "tokens/admin.yaml"] {
            std::fs::read_to_string(s.path(file)).unwrap();
        }
        std::fs::read_dir(s.path("tokens")).unwrap().for_each(drop);
    }
    // Nothing happens, so there is no event to await: give the watcher many debounce windows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        s.live().reconcile_requests.load(Ordering::Relaxed),
        before,
        "reads are not changes"
    );
    s.write("configs/default.yaml", &config("3"));
    s.wait_for("the edit", |l| l.config.load().spec.tasks.concurrency == 3)
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_resource_whose_file_is_removed_leaves_no_status_or_error() {
    let s = TestServer::start().await;
    // Two Tokens with one digest: the second cannot be applied (DuplicateDigest).
    let token = claw::auth::token::generate();
    s.write(
        "tokens/first.yaml",
        &token_manifest("first", &token, "read", ""),
    );
    s.write(
        "tokens/second.yaml",
        &token_manifest("second", &token, "read", ""),
    );
    let failing = |l: &claw::live::Live| {
        l.resources
            .status(claw::manifest::Kind::Token, "second")
            .is_some_and(|st| st.reason == "DuplicateDigest")
            || l.resources
                .status(claw::manifest::Kind::Token, "first")
                .is_some_and(|st| st.reason == "DuplicateDigest")
    };
    s.wait_for("the duplicate digest reported", failing).await;
    let loser = if s
        .live()
        .resources
        .status(claw::manifest::Kind::Token, "second")
        .is_some_and(|st| st.reason == "DuplicateDigest")
    {
        "second"
    } else {
        "first"
    };
    std::fs::remove_file(s.path(&format!("tokens/{loser}.yaml"))).unwrap();
    s.wait_for("the failed token forgotten", |l| {
        l.resources
            .status(claw::manifest::Kind::Token, loser)
            .is_none()
            && l.summary.load().errors.is_empty()
    })
    .await;
    let all = expect(
        s.get("/api/v1/resources?kind=Token&limit=100", &s.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["name"] != loser),
        "{all}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_digest_among_many_tokens_fails_only_the_duplicate() {
    // Applied together at start-up (tokens are written in batches): one duplicate must not
    // fail the others.
    let shared = claw::auth::token::generate();
    let mut others = Vec::new();
    let s = TestServer::start_with(|dir| {
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        for i in 0..600 {
            let token = claw::auth::token::generate();
            std::fs::write(
                dir.join(format!("tokens/t{i:03}.yaml")),
                token_manifest(&format!("t{i:03}"), &token, "read", ""),
            )
            .unwrap();
            others.push(token);
        }
        for name in ["dup-a", "dup-b"] {
            std::fs::write(
                dir.join(format!("tokens/{name}.yaml")),
                token_manifest(name, &shared, "read", ""),
            )
            .unwrap();
        }
    })
    .await;
    let statuses = s.live().resources.statuses();
    let failed: Vec<_> = statuses
        .iter()
        .filter(|st| st.kind == claw::manifest::Kind::Token && !st.ready)
        .map(|st| (&*st.name, st.reason))
        .collect();
    assert_eq!(failed, [("dup-b", "DuplicateDigest")]);
    for token in [&others[0], &others[599], &shared] {
        expect(s.get("/api/v1/status", token).await, StatusCode::OK).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_created_after_start_are_watched_too() {
    // Each directory has a watch of its own (start-up lists directories instead of letting
    // notify stat every file): a new one gets its watch when its creation is seen, and the
    // resync is minutes away, so only that watch can report the second file.
    let s = TestServer::start().await;
    let before = s.live().tokens.len();
    std::fs::create_dir_all(s.path("teams/new")).unwrap();
    s.write(
        "teams/new/a.yaml",
        &token_manifest("new-a", &claw::auth::token::generate(), "read", ""),
    );
    s.wait_for("the token in the new directory", |l| {
        l.tokens.len() == before + 1
    })
    .await;
    s.write(
        "teams/new/b.yaml",
        &token_manifest("new-b", &claw::auth::token::generate(), "read", ""),
    );
    s.wait_for("the token added to the new directory later", |l| {
        l.tokens.len() == before + 2
    })
    .await;
    s.stop().await;
}
