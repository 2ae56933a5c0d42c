//! Tokens, scopes, rate limits and the error bodies of refused requests.

use claw::auth::token;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{expect, stderr, stdout, token_manifest, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_the_cli_works_without_restart_and_is_refused_soon_after_revoke() {
    let s = TestServer::start().await;
    let out = s.claw(&[
        "token",
        "create",
        "--name",
        "ci-pipeline",
        "--scope",
        "execute",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    assert!(
        token::is_well_formed(&token),
        "stdout is the token alone: {token:?}"
    );
    let manifest = std::fs::read_to_string(s.path("tokens/ci-pipeline.yaml")).unwrap();
    assert!(!manifest.contains(&token), "only the hash is written");
    assert!(manifest.contains(&token::hash_hex(&token)));

    s.wait_for("the new token", |l| {
        l.tokens.authenticate(&token, 0).is_ok()
    })
    .await;
    expect(s.get("/api/v1/status", &token).await, StatusCode::OK).await;

    let out = s.claw(&["token", "revoke", "--name", "ci-pipeline"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!s.path("tokens/ci-pipeline.yaml").exists());
    s.wait_for("the revocation", |l| {
        l.tokens.authenticate(&token, 0).is_err()
    })
    .await;
    let body = expect(
        s.get("/api/v1/status", &token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(body["error"]["code"], "unauthorized");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_matrix_read_execute_full_by_get_and_patch() {
    let (read, execute, full) = (token::generate(), token::generate(), token::generate());
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("tokens/read.yaml"),
            token_manifest("dashboard", &read, "read", ""),
        )
        .unwrap();
        std::fs::write(
            dir.join("tokens/exec.yaml"),
            token_manifest("ci", &execute, "execute", ""),
        )
        .unwrap();
        std::fs::write(
            dir.join("tokens/full.yaml"),
            token_manifest("ops", &full, "full", ""),
        )
        .unwrap();
    })
    .await;
    for (token, patch_allowed) in [(&read, false), (&execute, false), (&full, true)] {
        for path in ["/api/v1/status", "/api/v1/config", "/api/v1/resources"] {
            expect(s.get(path, token).await, StatusCode::OK).await;
        }
        let response = s
            .patch_config(token, json!({"tasks": {"concurrency": 3}}))
            .await;
        if patch_allowed {
            expect(response, StatusCode::OK).await;
        } else {
            let body = expect(response, StatusCode::FORBIDDEN).await;
            assert_eq!(body["error"]["code"], "forbidden");
            assert!(body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("needs full"));
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_unknown_malformed_and_expired_tokens_get_401_and_query_tokens_are_refused() {
    let expired = token::generate();
    let s = TestServer::start_with(|dir| {
        let text = token_manifest(
            "old",
            &expired,
            "full",
            "  expiresAt: 2020-01-01T00:00:00Z\n",
        );
        std::fs::write(dir.join("tokens/old.yaml"), text).unwrap();
    })
    .await;
    let no_token = s
        .request(Method::GET, "/api/v1/status", None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_token.headers()["www-authenticate"].to_str().unwrap(),
        "Bearer realm=\"claw\""
    );
    let body = expect(no_token, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"]["code"], "unauthorized");
    for bad in [token::generate().as_str(), "ocl_nonsense", "", "Basic xyz"] {
        expect(s.get("/api/v1/status", bad).await, StatusCode::UNAUTHORIZED).await;
    }
    let body = expect(
        s.get("/api/v1/status", &expired).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));

    let url = format!("/api/v1/status?access_token={}", s.admin);
    let body = expect(
        s.request(Method::GET, &url, None).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["code"], "token_in_query");
    // Even alongside a valid header.
    expect(
        s.get(&format!("/api/v1/status?t={}", s.admin), &s.admin)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // /healthz needs no token.
    expect(
        s.request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_headers_429_body_and_a_new_limit_on_the_very_next_request() {
    let s = TestServer::start().await;
    let first = s.get("/api/v1/status", &s.admin).await;
    assert_eq!(first.headers()["x-ratelimit-limit"], "60");
    assert_eq!(first.headers()["x-ratelimit-remaining"], "59");
    let reset: u64 = first.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        reset >= now && reset <= now + 61,
        "reset {reset} vs now {now}"
    );

    let body = json!({"rate_limit": {"requests_per_minute": 1, "burst": 2}});
    expect(s.patch_config(&s.admin, body).await, StatusCode::OK).await;
    let next = s.get("/api/v1/status", &s.admin).await;
    assert_eq!(
        next.headers()["x-ratelimit-limit"],
        "2",
        "the new limit applies at once"
    );
    assert_eq!(next.headers()["x-ratelimit-remaining"], "1");
    expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    let limited = s.get("/api/v1/status", &s.admin).await;
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    let body = expect(limited, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["retry_after"], retry);
    assert_eq!(
        body["error"]["message"],
        format!("Rate limit exceeded. Try again in {retry} seconds.")
    );
    s.stop().await;
}

/// A Token's own `rate_limit` overrides the Config's (higher and lower), `unlimited` is never
/// refused, and `claw token list` shows each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_token_rate_limits_override_the_config_and_unlimited_is_never_refused() {
    let (high, low, free) = (token::generate(), token::generate(), token::generate());
    let s = TestServer::start_with(|dir| {
        let tokens = [
            token_manifest(
                "high",
                &high,
                "read",
                "  rate_limit: {requests_per_minute: 6000, burst: 200}\n",
            ),
            token_manifest(
                "low",
                &low,
                "read",
                "  rate_limit: {requests_per_minute: 1, burst: 2}\n",
            ),
            token_manifest("free", &free, "read", "  rate_limit: unlimited\n"),
        ];
        std::fs::write(dir.join("tokens/limits.yaml"), tokens.join("---\n")).unwrap();
    })
    .await;
    // The Config's default (burst 60) still applies to the admin token.
    let admin = s.get("/api/v1/status", &s.admin).await;
    assert_eq!(admin.headers()["x-ratelimit-limit"], "60");

    let first = s.get("/api/v1/status", &high).await;
    assert_eq!(first.headers()["x-ratelimit-limit"], "200");
    assert_eq!(first.headers()["x-ratelimit-remaining"], "199");
    // 100 requests: beyond the Config's burst of 60, within this token's 200.
    for _ in 0..99 {
        expect(s.get("/api/v1/status", &high).await, StatusCode::OK).await;
    }

    let first = s.get("/api/v1/status", &low).await;
    assert_eq!(first.headers()["x-ratelimit-limit"], "2");
    expect(first, StatusCode::OK).await;
    expect(s.get("/api/v1/status", &low).await, StatusCode::OK).await;
    let refused = s.get("/api/v1/status", &low).await;
    assert!(refused.headers().contains_key("retry-after"));
    let body = expect(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["error"]["code"], "rate_limited");

    // Far past any burst, including the Config's. The headers are still sent (every
    // authenticated answer carries them), reporting a budget that is never used up and is
    // full now.
    for _ in 0..300 {
        let r = s.get("/api/v1/status", &free).await;
        let header = |name: &str| r.headers()[name].to_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(header("x-ratelimit-limit"), u64::from(u32::MAX));
        assert_eq!(header("x-ratelimit-remaining"), u64::from(u32::MAX));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(header("x-ratelimit-reset").abs_diff(now) <= 2);
        expect(r, StatusCode::OK).await;
    }

    let out = s.claw(&["token", "list", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let limit_of = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["rate_limit"].clone())
    };
    assert_eq!(limit_of("high"), Some(json!("6000/min, burst 200")));
    assert_eq!(limit_of("low"), Some(json!("1/min, burst 2")));
    assert_eq!(limit_of("free"), Some(json!("unlimited")));
    assert_eq!(limit_of("admin"), Some(json!("config")));
    s.stop().await;
}

/// `claw token create --rate-limit` writes the token's own limit; a running server applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_rate_limit_flag_writes_the_limit() {
    let s = TestServer::start().await;
    let out = s.claw(&[
        "token",
        "create",
        "--name",
        "svc",
        "--scope",
        "read",
        "--rate-limit",
        "120:5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out)
        .split_whitespace()
        .find(|w| w.starts_with(token::PREFIX))
        .expect("the token is printed")
        .to_owned();
    s.wait_for("the token", |live| live.tokens.len() == 2).await;
    let r = s.get("/api/v1/status", &token).await;
    assert_eq!(r.headers()["x-ratelimit-limit"], "5");
    let bad = s.claw(&["token", "create", "--name", "x", "--rate-limit", "0"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_wrong_methods_and_oversized_bodies_answer_json_errors() {
    let s = TestServer::start().await;
    let body = expect(s.get("/api/v1/nope", &s.admin).await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"]["code"], "not_found");
    let r = s
        .request(Method::DELETE, "/api/v1/config", Some(&s.admin))
        .send()
        .await
        .unwrap();
    let body = expect(r, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(body["error"]["code"], "method_not_allowed");
    s.stop().await;

    // A small limit, so the whole oversized body fits in the socket buffers and the client
    // always reads the answer (a huge body can see the connection closed mid-send instead).
    let s = TestServer::start_custom(|_| {}, |o| o.limits.max_body_bytes = 16 * 1024).await;
    let huge = "x".repeat(64 * 1024);
    let r = s
        .request(Method::PATCH, "/api/v1/config", Some(&s.admin))
        .header("content-type", "application/json")
        .body(format!("{{\"model\": {{\"name\": \"{huge}\"}}}}"))
        .send()
        .await
        .unwrap();
    let body = expect(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body["error"]["code"], "payload_too_large");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id_and_a_given_one_is_kept() {
    let s = TestServer::start().await;
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let ok = s.get("/api/v1/status", &s.admin).await;
    let refused = s
        .request(Method::GET, "/api/v1/status", None)
        .send()
        .await
        .unwrap();
    let missing = s.get("/api/v1/nope", &s.admin).await;
    let wrong_method = s
        .request(Method::DELETE, "/api/v1/config", Some(&s.admin))
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = [&ok, &refused, &missing, &wrong_method]
        .iter()
        .map(|r| id_of(r))
        .collect();
    for (id, r) in ids.iter().zip([&ok, &refused, &missing, &wrong_method]) {
        assert!(!id.is_empty(), "{} has no x-request-id", r.status());
    }
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "ids are unique: {ids:?}");
    let given = s
        .request(Method::GET, "/api/v1/status", Some(&s.admin))
        .header("x-request-id", "from-the-caller-42")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&given), "from-the-caller-42");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_a_restart_and_no_second_admin_token_is_made() {
    let s = TestServer::start().await;
    let admin = s.admin.clone();
    let (manifests, data) = s.stop().await;
    let server = claw::server::start(crate::harness::options(manifests.path(), data.path()))
        .await
        .unwrap();
    assert!(server.admin_token.is_none());
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/status", server.url()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.shutdown().await;
}
