//! `Idempotency-Key` on creating POSTs: replay, reuse with another body, concurrent requests
//! with one key, keys per token, and keys that outlive a restart.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::harness::{expect, options, token_manifest, TestServer};
use claw::auth::token;

async fn post(
    s: &TestServer,
    token: &str,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> Response {
    let mut request = s.request(Method::POST, path, Some(token)).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

async fn task_total(s: &TestServer) -> u64 {
    let list = expect(
        s.get("/api/v1/tasks?limit=1", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    list["total"].as_u64().unwrap()
}

fn replayed(r: &Response) -> Option<&str> {
    r.headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_and_body_answer_the_first_response_and_create_once() {
    let s = TestServer::start().await;
    let body = json!({"prompt": "summarise the latest commits"});
    let first = post(&s, &s.admin, "/api/v1/tasks", Some("ci-run-41"), &body).await;
    assert_eq!(replayed(&first), None);
    let location = first.headers()["location"].clone();
    let first = expect(first, StatusCode::CREATED).await;

    let again = post(&s, &s.admin, "/api/v1/tasks", Some("ci-run-41"), &body).await;
    assert_eq!(replayed(&again), Some("true"));
    assert_eq!(again.headers()["location"], location);
    assert_eq!(
        again.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    // The rate-limit headers are the replaying request's own.
    assert!(again.headers().contains_key("x-ratelimit-remaining"));
    let again = expect(again, StatusCode::CREATED).await;
    assert_eq!(again, first, "the stored first response, byte for byte");
    assert_eq!(task_total(&s).await, 1);

    // Without a key, or with another key, the same body creates again.
    expect(
        post(&s, &s.admin, "/api/v1/tasks", None, &body).await,
        StatusCode::CREATED,
    )
    .await;
    let other = expect(
        post(&s, &s.admin, "/api/v1/tasks", Some("ci-run-42"), &body).await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(other["id"], first["id"]);
    assert_eq!(task_total(&s).await, 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_another_body_or_route_is_422_and_creates_nothing() {
    let s = TestServer::start().await;
    let key = Some("deploy-2026-12-01");
    expect(
        post(&s, &s.admin, "/api/v1/tasks", key, &json!({"prompt": "a"})).await,
        StatusCode::CREATED,
    )
    .await;
    let reused = post(&s, &s.admin, "/api/v1/tasks", key, &json!({"prompt": "b"})).await;
    assert_eq!(replayed(&reused), None);
    let reused = expect(reused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");
    // Another create route is another request too.
    let webhook =
        json!({"url": "https://x.example/h", "events": ["task.failed"], "secret": "s3cret-value"});
    let elsewhere = expect(
        post(&s, &s.admin, "/api/v1/webhooks", key, &webhook).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(elsewhere["error"]["code"], "idempotency_key_reused");
    assert!(
        !s.path("webhooks").exists() || std::fs::read_dir(s.path("webhooks")).unwrap().count() == 0
    );
    assert_eq!(task_total(&s).await, 1);

    // A malformed key is refused before anything runs.
    let bad = expect(
        post(
            &s,
            &s.admin,
            "/api/v1/tasks",
            Some(&"k".repeat(256)),
            &json!({"prompt": "c"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(bad["error"]["code"], "invalid_idempotency_key");
    assert_eq!(task_total(&s).await, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_requests_with_one_key_create_one_task() {
    let s = TestServer::start().await;
    let body = json!({"prompt": "nightly report"});
    let answers = futures_util::future::join_all((0..20).map(|_| async {
        let r = post(
            &s,
            &s.admin,
            "/api/v1/tasks",
            Some("nightly-2026-12-01"),
            &body,
        )
        .await;
        let replay = replayed(&r).map(str::to_owned);
        (replay, expect(r, StatusCode::CREATED).await)
    }))
    .await;
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|(_, b)| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one task for one key: {ids:?}");
    let fresh = answers.iter().filter(|(r, _)| r.is_none()).count();
    assert_eq!(fresh, 1, "exactly one answer is not a replay");
    assert_eq!(task_total(&s).await, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_per_token() {
    let other = token::generate();
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("tokens/ci.yaml"),
            token_manifest("ci", &other, "execute", ""),
        )
        .unwrap();
    })
    .await;
    let body = json!({"prompt": "same prompt"});
    let mine = expect(
        post(&s, &s.admin, "/api/v1/tasks", Some("shared-key"), &body).await,
        StatusCode::CREATED,
    )
    .await;
    let theirs = post(&s, &other, "/api/v1/tasks", Some("shared-key"), &body).await;
    assert_eq!(replayed(&theirs), None);
    let theirs = expect(theirs, StatusCode::CREATED).await;
    assert_ne!(mine["id"], theirs["id"]);
    // Another body under the other token's key space is no reuse of the admin's key.
    expect(
        post(
            &s,
            &other,
            "/api/v1/tasks",
            Some("admin-only"),
            &json!({"prompt": "x"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    expect(
        post(
            &s,
            &s.admin,
            "/api/v1/tasks",
            Some("admin-only"),
            &json!({"prompt": "y"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(task_total(&s).await, 4);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_outlives_a_restart() {
    let s = TestServer::start().await;
    let admin = s.admin.clone();
    let body = json!({"url": "https://hooks.example/claw", "events": ["task.completed"], "secret": "restart-secret-1"});
    let first = post(&s, &admin, "/api/v1/webhooks", Some("hook-create-1"), &body).await;
    let first = expect(first, StatusCode::CREATED).await;
    let (manifests, data) = s.stop().await;

    let server = claw::server::start(options(manifests.path(), data.path()))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let again = http
        .post(format!("{}/api/v1/webhooks", server.url()))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "hook-create-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed(&again), Some("true"));
    assert_eq!(expect(again, StatusCode::CREATED).await, first);
    let list = http
        .get(format!("{}/api/v1/webhooks", server.url()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(expect(list, StatusCode::OK).await["total"], 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_abandoned_keys_are_not_honoured_and_expired_ones_are_pruned() {
    use claw::store::idempotency as keys;
    use claw::tasks::service::timestamp;
    let s = TestServer::start().await;
    let url = crate::harness::database_url(s.data.path());
    let store = claw::store::Store::open_with(s.data.path(), url.as_deref())
        .await
        .unwrap();
    let mine = token::hash_hex(&s.admin);
    let now = time::OffsetDateTime::now_utc();
    // A key first used 25 hours ago (with another body), and one whose first request began
    // 11 minutes ago and never answered (its process died).
    let expired = timestamp(now - time::Duration::hours(25));
    assert!(
        keys::reserve(&store, &mine, "old", "other-request", &expired)
            .await
            .unwrap()
    );
    let abandoned = timestamp(now - time::Duration::minutes(11));
    assert!(
        keys::reserve(&store, &mine, "stuck", "other-request", &abandoned)
            .await
            .unwrap()
    );

    for key in ["old", "stuck"] {
        let r = post(
            &s,
            &s.admin,
            "/api/v1/tasks",
            Some(key),
            &json!({"prompt": key}),
        )
        .await;
        assert_eq!(replayed(&r), None, "{key}");
        expect(r, StatusCode::CREATED).await;
        let row = keys::get(&store, &mine, key).await.unwrap().unwrap();
        assert_eq!(
            row.status,
            Some(201),
            "{key}: the new first response is stored"
        );
    }
    assert_eq!(task_total(&s).await, 2);

    assert!(keys::reserve(&store, &mine, "old-again", "x", &expired)
        .await
        .unwrap());
    let cutoff = timestamp(now - time::Duration::hours(24));
    // (The server prunes too, in the background, at most every 10 minutes: count nothing.)
    keys::prune(&store, &cutoff).await.unwrap();
    assert!(keys::get(&store, &mine, "old-again")
        .await
        .unwrap()
        .is_none());
    assert!(keys::get(&store, &mine, "old").await.unwrap().is_some());
    store.close().await;
    s.stop().await;
}
