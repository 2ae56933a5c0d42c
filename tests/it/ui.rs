//! The dashboard's serving rules (`/` and `/ui/...`): security headers, caching of hashed
//! assets, client-side routes, JSON 404s elsewhere, and no shadowing of the API; plus the two
//! API calls added for it, `GET /api/v1/whoami` and `GET /api/v1/stats/hourly`. The dashboard
//! itself runs in a real Chromium in `tests/ui/` (see `.ci/run`).

use claw::auth::token;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{expect, token_manifest, TestServer};

/// The assets' base URL named by the index page (`/ui/assets/<build>`).
fn assets_base(index: &str) -> String {
    let start = index
        .find("/ui/assets/")
        .expect("the index names its assets")
        + 11;
    let build = &index[start..];
    let build = &build[..build.find('/').expect("a build id, then the asset")];
    assert!(
        build.len() >= 12 && build.bytes().all(|b| b.is_ascii_hexdigit()),
        "{build}"
    );
    assert!(index.contains(&format!("/ui/assets/{build}/style.css")));
    format!("/ui/assets/{build}")
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn assert_secure(r: &reqwest::Response) {
    let csp = header(r, "content-security-policy");
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "CSP lacks {part}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header(r, "x-frame-options"), "DENY");
    assert_eq!(header(r, "x-content-type-options"), "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_with_a_strict_csp_and_hashed_assets_cached_for_good() {
    let s = TestServer::start().await;
    // No token needed for the page itself: it holds no data, and signs in with the API.
    let root = s.request(Method::GET, "/", None).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::OK);
    assert_secure(&root);
    assert_eq!(header(&root, "cache-control"), "no-cache");
    assert!(header(&root, "content-type").starts_with("text/html"));
    let index = root.text().await.unwrap();
    assert!(!index.contains("<script>"), "no inline script");
    assert!(index.contains("<script type=\"module\" src=\"/ui/assets/"));
    let base = assets_base(&index);

    for (name, mime) in [
        ("app.js", "text/javascript"),
        ("pages/tasks.js", "text/javascript"),
        ("style.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let r = s
            .request(Method::GET, &format!("{base}/{name}"), None)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        assert_secure(&r);
        assert!(header(&r, "content-type").starts_with(mime), "{name}");
        let cache = header(&r, "cache-control");
        assert!(
            cache.contains("immutable") && cache.contains("max-age=31536000"),
            "{name}: {cache}"
        );
    }

    // Client-side routes get the index; the same build id, never a stale one.
    for route in [
        "/ui",
        "/ui/",
        "/ui/tasks",
        "/ui/tasks/task_123",
        "/ui/webhooks/x",
    ] {
        let r = s.request(Method::GET, route, None).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{route}");
        assert_secure(&r);
        assert_eq!(header(&r, "cache-control"), "no-cache", "{route}");
        assert_eq!(assets_base(&r.text().await.unwrap()), base, "{route}");
    }

    // An asset of another build, or no asset at all: a JSON 404, not the index.
    for missing in [
        "/ui/assets/0000000000000000/app.js".to_owned(),
        format!("{base}/nope.js"),
    ] {
        let r = s.request(Method::GET, &missing, None).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
        expect(r, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_never_shadows_the_api_and_unknown_paths_stay_json_404s() {
    let s = TestServer::start().await;
    // Unknown paths outside /ui/: our JSON error, not the page.
    for path in [
        "/nope",
        "/uix",
        "/index.html",
        "/api/v1/nope",
        "/v1/models/x/y",
    ] {
        let r = s.request(Method::GET, path, None).send().await.unwrap();
        assert!(
            header(&r, "content-type").starts_with("application/json"),
            "{path}"
        );
        let body = expect(r, StatusCode::NOT_FOUND).await;
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    // The API's own paths answer as before.
    expect(
        s.request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let r = s
        .request(Method::GET, "/api/v1/status", None)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::UNAUTHORIZED).await;
    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    assert!(status["version"].is_string());
    let r = s
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::UNAUTHORIZED).await;
    // Writing to the page is not a thing.
    let r = s
        .request(Method::POST, "/ui/tasks", None)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_names_the_token_and_its_scope_for_any_valid_token() {
    let read = token::generate();
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("tokens/viewer.yaml"),
            token_manifest(
                "viewer",
                &read,
                "read",
                "  expiresAt: \"2099-01-01T00:00:00Z\"\n",
            ),
        )
        .unwrap();
    })
    .await;
    let me = expect(s.get("/api/v1/whoami", &read).await, StatusCode::OK).await;
    assert_eq!(me["name"], "viewer");
    assert_eq!(me["scope"], "read");
    assert_eq!(me["expires_at"], "2099-01-01T00:00:00Z");
    let me = expect(s.get("/api/v1/whoami", &s.admin).await, StatusCode::OK).await;
    assert_eq!(
        me,
        json!({ "name": "admin", "scope": "full", "expires_at": null })
    );
    let r = s
        .request(Method::GET, "/api/v1/whoami", None)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_stats_count_finished_tasks_by_status_in_hour_buckets() {
    let config = "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: command\n    command: [\"cat\"]\n";
    let s = TestServer::start_with(|dir| {
        std::fs::write(dir.join("configs/default.yaml"), config).unwrap()
    })
    .await;
    let mut ids = Vec::new();
    for prompt in ["one", "two"] {
        let r = s
            .request(Method::POST, "/api/v1/tasks", Some(&s.admin))
            .json(&json!({ "prompt": prompt }))
            .send()
            .await
            .unwrap();
        ids.push(
            expect(r, StatusCode::CREATED).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let client = claw::client::Client::new(s.base.clone(), s.admin.clone());
    for id in &ids {
        let done = tokio::time::timeout(crate::harness::BOUND, client.wait_for_completion(id))
            .await
            .expect("the task finished in time")
            .unwrap();
        assert_eq!(done["status"], "completed", "{done}");
    }

    let stats = expect(
        s.get("/api/v1/stats/hourly?hours=24", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    let buckets = stats["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24);
    assert_eq!(stats["hours"], 24);
    // Oldest first, one per hour, every series present.
    let hours: Vec<&str> = buckets
        .iter()
        .map(|b| b["hour"].as_str().unwrap())
        .collect();
    let mut sorted = hours.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, hours);
    assert!(hours.iter().all(|h| h.ends_with(":00:00Z")));
    for b in buckets {
        for key in ["completed", "failed", "cancelled"] {
            assert!(b["tasks"][key].is_u64(), "{b}");
        }
        for key in ["succeeded", "failed", "error"] {
            assert!(b["deliveries"][key].is_u64(), "{b}");
        }
    }
    let completed: u64 = buckets
        .iter()
        .map(|b| b["tasks"]["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(completed, 2);
    // Both finished just now: in the newest bucket (or the one before, at an hour's turn).
    let recent = buckets[22]["tasks"]["completed"].as_u64().unwrap()
        + buckets[23]["tasks"]["completed"].as_u64().unwrap();
    assert_eq!(recent, 2);

    for bad in ["hours=0", "hours=169", "hours=x"] {
        let body = expect(
            s.get(&format!("/api/v1/stats/hourly?{bad}"), &s.admin)
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body["error"]["code"], "invalid_parameter", "{bad}");
    }
    let _: Value = expect(
        s.get("/api/v1/stats/hourly", &s.admin).await,
        StatusCode::OK,
    )
    .await;
}
