//! `GET` / `PATCH /api/v1/config`: the tutorial's body, write-back, ETags, refusals.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{expect, TestServer};

const CONFIG_FILE: &str = "configs/default.yaml";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorials_patch_is_written_back_and_in_force_when_it_returns() {
    let s = TestServer::start().await;
    let before = s.get("/api/v1/config", &s.admin).await;
    let etag = before.headers()["etag"].to_str().unwrap().to_owned();
    let body = expect(before, StatusCode::OK).await;
    assert_eq!(body["model"]["provider"], "anthropic");

    let r = s
        .patch_config(
            &s.admin,
            json!({"model": {"provider": "anthropic", "max_context": 8192}}),
        )
        .await;
    let new_etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body = expect(r, StatusCode::OK).await;
    assert_eq!(body["model"]["max_context"], 8192);
    assert_ne!(etag, new_etag);
    // In force now, no waiting: the live config and a fresh GET agree.
    assert_eq!(s.live().config.load().spec.model.max_context, 8192);
    let again = s.get("/api/v1/config", &s.admin).await;
    assert_eq!(again.headers()["etag"].to_str().unwrap(), new_etag);
    let text = std::fs::read_to_string(s.path(CONFIG_FILE)).unwrap();
    assert!(text.contains("max_context: 8192"), "{text}");
    assert!(
        text.contains("# anthropic | openai | command"),
        "comments kept:\n{text}"
    );
    // The watcher sees our own write as unchanged: no second pass changes anything.
    let r = s
        .request(Method::POST, "/api/v1/reconcile", Some(&s.admin))
        .send()
        .await
        .unwrap();
    let report = expect(r, StatusCode::OK).await;
    assert_eq!(report["applied"], json!([]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_keeps_the_other_documents_and_comments_of_the_file() {
    let other = "# --- a skill living in the same file ---\napiVersion: openclaw.dev/v1\nkind: Skill\nmetadata:\n  name: git-helper   # keep me\nspec:\n  version: \"1.2.0\"\n";
    let s = TestServer::start_with(|dir| {
        std::fs::remove_file(dir.join(CONFIG_FILE)).unwrap();
        let text = format!(
            "# Team config: reviewed in PRs.\napiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  # model settings\n  model:\n    name: claude-sonnet-4-20250514 # pinned\n    max_tokens: 1024\n  rate_limit:\n    burst: 30 # generous\n---\n{other}"
        );
        std::fs::write(dir.join("all.yaml"), text).unwrap();
    })
    .await;
    let r = s
        .patch_config(&s.admin, json!({"model": {"max_tokens": 2048}}))
        .await;
    expect(r, StatusCode::OK).await;
    let text = std::fs::read_to_string(s.path("all.yaml")).unwrap();
    assert!(
        text.ends_with(&format!("---\n{other}")),
        "other document byte-for-byte:\n{text}"
    );
    for kept in [
        "# Team config: reviewed in PRs.",
        "# model settings",
        "# pinned",
        "burst: 30 # generous",
        "max_tokens: 2048",
    ] {
        assert!(text.contains(kept), "missing {kept:?} in:\n{text}");
    }
    assert!(!s.path(CONFIG_FILE).exists(), "edited in place, not moved");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_patch_gets_400_with_field_details_and_writes_nothing() {
    let s = TestServer::start().await;
    let before = std::fs::read(s.path(CONFIG_FILE)).unwrap();
    let secret = "sk-ant-very-secret";
    let r = s
        .patch_config(
            &s.admin,
            json!({"tasks": {"concurrency": 0}, "model": {"api_key": secret, "provider": "gpt"}, "typo": 1}),
        )
        .await;
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(secret),
        "a pasted secret is never echoed: {text}"
    );
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "validation_failed");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    for field in [
        "tasks.concurrency",
        "model.api_key",
        "model.provider",
        "typo",
    ] {
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }
    assert_eq!(
        std::fs::read(s.path(CONFIG_FILE)).unwrap(),
        before,
        "nothing written"
    );

    for bad in ["[1, 2]", "{not json", "\"x\""] {
        let r = s
            .request(Method::PATCH, "/api/v1/config", Some(&s.admin))
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        expect(r, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(std::fs::read(s.path(CONFIG_FILE)).unwrap(), before);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_guards_against_lost_updates() {
    let s = TestServer::start().await;
    let etag = s.get("/api/v1/config", &s.admin).await.headers()["etag"].clone();
    let patch = |tag: &str, n: u32| {
        s.request(Method::PATCH, "/api/v1/config", Some(&s.admin))
            .header("if-match", tag)
            .json(&json!({"tasks": {"concurrency": n}}))
    };
    let r = patch(etag.to_str().unwrap(), 5).send().await.unwrap();
    expect(r, StatusCode::OK).await;
    let before = std::fs::read(s.path(CONFIG_FILE)).unwrap();
    // The same (now stale) tag again: refused, nothing written.
    let r = patch(etag.to_str().unwrap(), 6).send().await.unwrap();
    let body = expect(r, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(body["error"]["code"], "precondition_failed");
    assert_eq!(std::fs::read(s.path(CONFIG_FILE)).unwrap(), before);
    expect(
        patch("\"garbage\"", 6).send().await.unwrap(),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    expect(patch("*", 7).send().await.unwrap(), StatusCode::OK).await;
    // If-None-Match with the current tag: 304.
    let current = s.get("/api/v1/config", &s.admin).await.headers()["etag"].clone();
    let r = s
        .request(Method::GET, "/api/v1/config", Some(&s.admin))
        .header("if-none-match", current)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_path_never_leaves_a_partial_file_visible() {
    let s = TestServer::start().await;
    let path = s.path(CONFIG_FILE);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(&path).expect("the file is always there");
                let docs = claw::manifest::yaml::parse_documents(&text).expect("always whole YAML");
                assert_eq!(docs.len(), 1, "always the whole document:\n{text}");
                assert_eq!(docs[0].value["kind"], "Config");
                reads += 1;
            }
            reads
        })
    };
    for n in 1..=40u32 {
        let r = s
            .patch_config(
                &s.admin,
                json!({"tasks": {"concurrency": n}, "model": {"name": format!("model-{n}")}}),
            )
            .await;
        expect(r, StatusCode::OK).await;
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader saw only whole files");
    assert!(reads > 0);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, vec!["default.yaml"], "no temp files left behind");
    assert_eq!(s.live().config.load().spec.tasks.concurrency, 40);
    s.stop().await;
}
