//! Hardening (issue 12): bounded parsing, slow and abusive clients, bounded metrics labels,
//! manifest-only privileges, the egress policy on every outbound client, and the smaller
//! items. Each test plays the attacker or the careless operator against a real server.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{expect, token_manifest, TestServer, BOUND};

/// Resident and peak memory of this process (the server runs in it), in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn status_errors(s: &TestServer) -> Vec<Value> {
    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    status["reconciler"]["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_bomb_split_across_documents_is_refused_and_the_server_keeps_serving() {
    let token = claw::auth::token::generate();
    let s = TestServer::start_with(|dir| {
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        std::fs::write(
            dir.join("tokens/team.yaml"),
            token_manifest("team", &token, "read", ""),
        )
        .unwrap();
    })
    .await;
    expect(s.get("/api/v1/status", &token).await, StatusCode::OK).await;
    let (rss_before, _) = memory_kib();

    // 150 small "billion laughs" documents: each one alone expands to 1,110 nodes, far under
    // any per-document bound; before the per-file bound they took the server to gigabytes.
    let mut bomb = token_manifest("team", &token, "read", "");
    let level = |name: &str, of: &str| {
        format!(
            "{name}: &{name} [{}]\n",
            std::iter::repeat_n(format!("*{of}"), 10)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for i in 0..150 {
        bomb.push_str(&format!(
            "---\nlol{i}:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        ));
        let doc = format!("{}{}", level("b", "a"), level("c", "b"));
        for line in doc.lines() {
            bomb.push_str(&format!("  {line}\n"));
        }
    }
    assert!(bomb.len() < 100_000, "a small file: {} bytes", bomb.len());
    s.write("tokens/team.yaml", &bomb);
    s.wait_for("the error", |l| !l.summary.load().errors.is_empty())
        .await;

    let errors = status_errors(&s).await;
    let error = errors
        .iter()
        .find(|e| e["file"] == "tokens/team.yaml")
        .unwrap_or_else(|| panic!("{errors:?}"));
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("aliases expand to more than 100000 nodes"),
        "{error}"
    );
    // Still serving, the last good token still works, memory bounded.
    expect(s.get("/api/v1/status", &token).await, StatusCode::OK).await;
    let (rss_after, _) = memory_kib();
    assert!(
        rss_after.saturating_sub(rss_before) < 400 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cr_only_and_bom_files_read_as_what_they_declare() {
    let cr = claw::auth::token::generate();
    let bom = claw::auth::token::generate();
    let s = TestServer::start().await;
    // A leading comment, then CR-only line ends: once read as one long comment line (empty),
    // so the server deleted the token it declared.
    let text = format!(
        "# team tokens\n{}",
        token_manifest("cr-token", &cr, "read", "")
    )
    .replace('\n', "\r");
    s.write("tokens/cr.yaml", &text);
    s.write(
        "tokens/bom.yaml",
        &format!("\u{feff}{}", token_manifest("bom-token", &bom, "read", "")),
    );
    s.wait_for("both tokens", |l| l.tokens.len() >= 3).await;
    expect(s.get("/api/v1/status", &cr).await, StatusCode::OK).await;
    expect(s.get("/api/v1/status", &bom).await, StatusCode::OK).await;
    assert!(status_errors(&s).await.is_empty());
    // `claw validate` agrees.
    let out = s.claw(&["validate"]);
    assert!(out.status.success(), "{}", crate::harness::stdout(&out));
    s.stop().await;
}

/// Opens a connection and sends a request header that never ends.
fn slow_header(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_and_another_client_is_served() {
    let s = TestServer::start_custom(
        |_| {},
        |o| {
            o.limits.max_connections = 3;
            o.limits.header_read_timeout = Duration::from_millis(500);
        },
    )
    .await;
    // Fill the cap with connections that never finish their header.
    let mut slow: Vec<TcpStream> = (0..3).map(|_| slow_header(&s.base)).collect();
    let started = Instant::now();
    // This client waits in the backlog until the header timeout frees a slot.
    let r = tokio::time::timeout(BOUND, s.http.get(format!("{}/healthz", s.base)).send())
        .await
        .expect("served within the bound")
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "served only after the slow ones were cut: {:?}",
        started.elapsed()
    );
    // Each slow connection was closed by the server.
    for stream in &mut slow {
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let mut buf = Vec::new();
        let read = stream.read_to_end(&mut buf);
        assert!(
            read.is_ok() || buf.is_empty(),
            "closed: {read:?} {:?}",
            String::from_utf8_lossy(&buf)
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_and_bodies_get_json_errors() {
    let s = TestServer::start().await;
    // 101 fields.
    let mut r = s.request(Method::GET, "/api/v1/status", Some(&s.admin));
    for i in 0..101 {
        r = r.header(format!("x-field-{i}"), "v");
    }
    let body = expect(
        r.send().await.unwrap(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    )
    .await;
    assert_eq!(body["error"]["code"], "request_header_fields_too_large");
    // 70 KiB in one field.
    let r = s
        .request(Method::GET, "/healthz", None)
        .header("x-big", "a".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    let body = expect(r, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("65536 bytes"));
    // A body over 1 MiB.
    let r = s
        .request(Method::POST, "/api/v1/tasks", Some(&s.admin))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"prompt\": \"{}\"}}",
            "a".repeat(2 * 1024 * 1024)
        ))
        .send()
        .await
        .unwrap();
    let body = expect(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body["error"]["code"], "payload_too_large");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_do_not_grow_metrics() {
    let s = TestServer::start().await;
    let invented = |i: usize| Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
    // Unauthenticated, as an attacker would (and so not rate limited).
    let send = |m: Method| s.request(m, "/api/v1/status", None).send();
    send(invented(0)).await.unwrap();
    expect(s.get("/metrics", &s.admin).await, StatusCode::OK).await;
    let before = s.get("/metrics", &s.admin).await.text().await.unwrap();
    for i in 1..=200 {
        send(invented(i)).await.unwrap();
    }
    let after = s.get("/metrics", &s.admin).await.text().await.unwrap();
    assert_eq!(before.lines().count(), after.lines().count(), "{after}");
    assert!(
        after.len() < before.len() + 1024,
        "{} -> {}",
        before.len(),
        after.len()
    );
    assert!(after.contains("method=\"OTHER\""), "{after}");
    assert!(!after.contains("FOO"), "{after}");
    s.stop().await;
}

/// A loopback listener counting the connections it receives; with `redirect_to`, it answers
/// every request with a 302 there.
async fn counting_listener(
    ip: &str,
    redirect_to: Option<String>,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let redirect_to = redirect_to.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let answer = match redirect_to {
                    Some(to) => format!(
                        "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                    None => "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
                };
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, count)
}

fn problem(live: &claw::live::Live, name: &str) -> Option<String> {
    live.summary
        .load()
        .errors
        .iter()
        .find(|d| d.name.as_deref() == Some(name))
        .map(|d| d.message.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outbound_client_obeys_the_egress_policy() {
    use std::sync::atomic::Ordering::SeqCst;
    // 127.0.0.1 is refused by this Config; 127.0.0.2 is allowed and redirects to .1.
    let (refused_port, refused) = counting_listener("127.0.0.1", None).await;
    let target = format!("http://127.0.0.1:{refused_port}");
    let (redirect_port, redirected) =
        counting_listener("127.0.0.2", Some(format!("{target}/elsewhere"))).await;
    let redirector = format!("http://127.0.0.2:{redirect_port}");
    let config = format!(
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: openai\n    name: m\n    base_url: {target}/v1\n  skills:\n    registry: {redirector}/registry\n  webhooks:\n    deny_networks: [\"127.0.0.1/32\"]\n"
    );
    let doc = |kind: &str, name: &str, spec: &str| {
        format!("---\napiVersion: openclaw.dev/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}")
    };
    let mut resources = String::new();
    for (name, url) in [
        ("direct", format!("{target}/hook")),
        ("via-redirect", format!("{redirector}/hook")),
    ] {
        resources.push_str(&doc(
            "Webhook",
            name,
            &format!("  url: {url}\n  events: [\"*\"]\n  secret: {{fromFile: hook-secret.txt}}\n"),
        ));
    }
    resources.push_str(&doc(
        "Skill",
        "from-archive",
        &format!(
            "  source:\n    archive:\n      url: {target}/a.tar.gz\n      sha256: \"{}\"\n",
            "0".repeat(64)
        ),
    ));
    resources.push_str(&doc(
        "Skill",
        "from-git",
        &format!("  source:\n    git:\n      url: {target}/repo.git\n"),
    ));
    resources.push_str(&doc("Skill", "from-registry", "  version: latest\n"));
    resources.push_str(&doc(
        "McpServer",
        "remote",
        &format!("  url: {target}/mcp\n"),
    ));

    let s = TestServer::start_with(|dir| {
        std::fs::write(dir.join("configs/default.yaml"), &config).unwrap();
        std::fs::write(dir.join("hook-secret.txt"), "s3cret").unwrap();
        std::fs::write(dir.join("outbound.yaml"), &resources).unwrap();
    })
    .await;
    // Skills (archive, git, registry behind a redirect) and the MCP server: not Ready.
    s.wait_for("skills and MCP refused", |l| {
        ["from-archive", "from-git", "from-registry"]
            .iter()
            .all(|n| problem(l, n).is_some())
    })
    .await;
    for n in ["from-archive", "from-git", "from-registry"] {
        let message = problem(s.live(), n).unwrap();
        assert!(message.contains("refused"), "{n}: {message}");
    }
    // A task: the model provider is refused; its events go to both webhooks.
    let r = s
        .request(Method::POST, "/api/v1/tasks", Some(&s.admin))
        .json(&serde_json::json!({"prompt": "hello"}))
        .send()
        .await
        .unwrap();
    let task = expect(r, StatusCode::CREATED).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + BOUND;
    let task = loop {
        let t = expect(
            s.get(&format!("/api/v1/tasks/{id}"), &s.admin).await,
            StatusCode::OK,
        )
        .await;
        if t["status"] == "failed" {
            break t;
        }
        assert!(Instant::now() < deadline, "task never failed: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(task["error"].to_string().contains("refused"), "{task}");
    // Both webhooks attempted delivery: the direct one refused before connecting, the other
    // got its 302 and did not follow it.
    for hook in ["direct", "via-redirect"] {
        let deadline = Instant::now() + BOUND;
        loop {
            let d = expect(
                s.get(&format!("/api/v1/webhooks/{hook}/deliveries"), &s.admin)
                    .await,
                StatusCode::OK,
            )
            .await;
            if d["items"][0]["attempt_count"].as_u64().unwrap_or(0) > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{hook}: no attempt: {d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mcp = expect(
        s.get("/api/v1/mcp-servers/remote", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_ne!(mcp["status"], "connected", "{mcp}");

    assert!(redirected.load(SeqCst) >= 2, "the redirector was reached");
    assert_eq!(
        refused.load(SeqCst),
        0,
        "the refused address received a connection"
    );
    s.stop().await;
}

/// Each manifest-only setting as a Config merge patch, with the field the refusal names.
fn privileged_patches() -> Vec<(Value, &'static str)> {
    vec![
        (
            serde_json::json!({"model": {"provider": "command", "command": ["true"]}}),
            "model.provider",
        ),
        (
            serde_json::json!({"model": {"command": ["sh", "-c", "id"]}}),
            "model.command",
        ),
        (
            serde_json::json!({"tasks": {"allow_commands": true}}),
            "tasks.allow_commands",
        ),
        (
            serde_json::json!({"tasks": {"allowed_roots": ["/"]}}),
            "tasks.allowed_roots",
        ),
        (
            serde_json::json!({"model": {"api_key": {"fromEnv": null, "fromFile": "/etc/hostname"}}}),
            "model.api_key",
        ),
        (
            serde_json::json!({"skills": {"registry": "/srv/skills"}}),
            "skills.registry",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_only_settings_are_refused_over_the_api_without_the_flag() {
    let s = TestServer::start().await;
    let config_file = s.path("configs/default.yaml");
    let before = std::fs::read_to_string(&config_file).unwrap();
    for (patch, field) in privileged_patches() {
        let body = expect(
            s.patch_config(&s.admin, patch.clone()).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(body["error"]["code"], "manifest_only", "{patch}");
        assert_eq!(body["error"]["details"][0]["field"], field, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-api-privileged"));
    }
    assert_eq!(
        std::fs::read_to_string(&config_file).unwrap(),
        before,
        "nothing written"
    );
    // A local Skill source.
    let r = s
        .request(Method::POST, "/api/v1/skills", Some(&s.admin))
        .json(&serde_json::json!({"name": "local", "source": {"path": "/etc"}}))
        .send()
        .await
        .unwrap();
    let body = expect(r, StatusCode::FORBIDDEN).await;
    assert_eq!(
        body["error"]["details"][0]["field"], "source.path",
        "{body}"
    );
    // Giving privilege up, and unprivileged settings, are fine.
    expect(
        s.patch_config(
            &s.admin,
            serde_json::json!({"tasks": {"allow_commands": false}, "rate_limit": {"burst": 50}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // A webhook's stored secret cannot become the model's key.
    let r = s
        .request(Method::POST, "/api/v1/webhooks", Some(&s.admin))
        .json(&serde_json::json!({"name": "hook", "url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "s3cret"}))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::CREATED).await;
    let hook = std::fs::read_to_string(s.path("webhooks/hook.yaml")).unwrap();
    let stored = hook
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("secret: {ref: ")
                .or_else(|| l.trim().strip_prefix("ref: "))
        })
        .map(|r| r.trim_end_matches('}').trim().to_owned())
        .unwrap_or_else(|| panic!("{hook}"));
    let body = expect(
        s.patch_config(
            &s.admin,
            serde_json::json!({"model": {"api_key": {"fromEnv": null, "ref": stored}}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        body.to_string().contains("belongs to another resource"),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_only_settings_are_accepted_with_the_flag_and_from_manifests() {
    let s = TestServer::start_custom(|_| {}, |o| o.allow_api_privileged = true).await;
    for (patch, field) in privileged_patches() {
        let r = s.patch_config(&s.admin, patch.clone()).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{field}: {body}");
    }
    s.stop().await;

    // The same settings committed in a manifest are in force, without the flag.
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("configs/default.yaml"),
            "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: command\n    command: [\"true\"]\n  tasks:\n    allow_commands: true\n    allowed_roots: [\"/tmp\"]\n",
        )
        .unwrap();
    })
    .await;
    let config = s.live().config.load();
    assert!(config.spec.tasks.allow_commands);
    assert_eq!(config.spec.model.provider.as_str(), "command");
    assert!(status_errors(&s).await.is_empty());
    // Another manifest naming a webhook's stored secret is not Ready, with the reason.
    s.write(
        "webhooks/thief.yaml",
        "apiVersion: openclaw.dev/v1\nkind: Webhook\nmetadata:\n  name: thief\nspec:\n  url: http://127.0.0.1:9/x\n  events: [\"*\"]\n  secret: {ref: webhook-victim-0123abcd}\n",
    );
    s.wait_for("the error", |l| !l.summary.load().errors.is_empty())
        .await;
    let errors = status_errors(&s).await;
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to another resource"),
        "{errors:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_names_are_checked_first_and_long_ones_work() {
    let s = TestServer::start().await;
    let post = |name: String| {
        s.request(Method::POST, "/api/v1/webhooks", Some(&s.admin))
            .json(&serde_json::json!({"name": name, "url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "s3cret"}))
            .send()
    };
    for bad in ["Bad Name!", "../x", &"a".repeat(64), "-x"] {
        let body = expect(post(bad.to_owned()).await.unwrap(), StatusCode::BAD_REQUEST).await;
        assert_eq!(
            body["error"]["details"][0]["field"], "name",
            "{bad}: {body}"
        );
        let stored = crate::harness::stored_secrets(s.data.path()).await;
        assert!(stored.is_empty(), "nothing stored for {bad}");
    }
    for len in [46, 47, 50, 63] {
        let name = "w".repeat(len);
        let r = post(name.clone()).await.unwrap();
        expect(r, StatusCode::CREATED).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_offsets_weak_etags_and_encoded_query_tokens_are_refused() {
    let s = TestServer::start().await;
    for path in [
        "/api/v1/tasks?offset=18446744073709551615",
        "/api/v1/tasks?offset=9223372036854775808",
        "/api/v1/resources?offset=18446744073709551615",
    ] {
        let body = expect(s.get(path, &s.admin).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["code"], "invalid_parameter", "{path}: {body}");
    }
    let page = expect(
        s.get("/api/v1/tasks?offset=9223372036854775807", &s.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"], serde_json::json!([]));

    // If-Match: strong comparison, lists, `*`.
    let etag = s.get("/api/v1/config", &s.admin).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let patch = |if_match: String, burst: u32| {
        s.request(Method::PATCH, "/api/v1/config", Some(&s.admin))
            .header("if-match", if_match)
            .json(&serde_json::json!({"rate_limit": {"burst": burst}}))
            .send()
    };
    let body = expect(
        patch(format!("W/{etag}"), 31).await.unwrap(),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(body["error"]["code"], "precondition_failed");
    let r = patch(format!("\"{}\", {etag}", "0".repeat(64)), 32)
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    expect(r, StatusCode::OK).await;
    expect(
        patch(format!("W/{etag}, \"{}\"", "1".repeat(64)), 33)
            .await
            .unwrap(),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    expect(patch("*".into(), 34).await.unwrap(), StatusCode::OK).await;

    // A token in the query string, percent-encoded, is refused like a plain one.
    for query in [
        format!("x={}", s.admin),
        format!("x=%{:02X}{}", b'o', &s.admin[1..]),
        "%74oken=abc".to_owned(),
    ] {
        let r = s
            .http
            .get(format!("{}/api/v1/status?{query}", s.base))
            .send()
            .await
            .unwrap();
        let body = expect(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["code"], "token_in_query", "{query}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_writes_are_cleaned_and_the_data_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start_custom(
        |dir| {
            std::fs::write(
                dir.join("tokens/.admin.yaml.claw-0123456789abcdef.tmp"),
                "half",
            )
            .unwrap();
        },
        |o| {
            std::fs::create_dir_all(o.data.join("secrets")).unwrap();
            std::fs::write(o.data.join("secrets/.webhook-a-1.0123.tmp"), "half").unwrap();
        },
    )
    .await;
    assert!(!s
        .path("tokens/.admin.yaml.claw-0123456789abcdef.tmp")
        .exists());
    assert!(!s.data.path().join("secrets/.webhook-a-1.0123.tmp").exists());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(s.data.path()), 0o700);
    for file in ["claw.db", "claw.db-wal", "claw.db-shm"] {
        let path = s.data.path().join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    // On PostgreSQL runs the database is elsewhere.
    let sqlite = !crate::postgres::selected();
    assert_eq!(s.data.path().join("claw.db").exists(), sqlite);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whsec_secret_keys_the_standard_webhooks_signature_with_its_decoded_bytes() {
    use base64::Engine as _;
    use hmac::Mac as _;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(axum::http::HeaderMap, Vec<u8>)>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body.to_vec()));
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let key: Vec<u8> = (0u8..24)
        .map(|i| i.wrapping_mul(37).wrapping_add(5))
        .collect();
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(&key)
    );
    let s = TestServer::start().await;
    let r = s
        .request(Method::POST, "/api/v1/webhooks", Some(&s.admin))
        .json(&serde_json::json!({"name": "std", "url": format!("http://127.0.0.1:{port}/hook"), "events": ["*"], "secret": secret}))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::CREATED).await;
    let r = s
        .request(Method::POST, "/api/v1/webhooks/std/test", Some(&s.admin))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (headers, body) = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    // The Standard Webhooks algorithm, written here from its specification.
    let header = |n: &str| headers[n].to_str().unwrap().to_owned();
    let signed = format!("{}.{}.", header("webhook-id"), header("webhook-timestamp"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    mac.update(&body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let signatures = header("webhook-signature");
    assert!(
        signatures.split(' ').any(|sig| sig == expected),
        "{signatures} vs {expected}"
    );
    // X-OpenClaw-Signature stays keyed with the secret as given (the tutorial's check).
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    assert_eq!(
        header("x-openclaw-signature"),
        hex::encode(mac.finalize().into_bytes())
    );
    s.stop().await;
}

#[test]
fn the_log_has_no_colour_off_a_terminal_and_warns_about_a_missing_model_key() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = crate::harness::Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_claw"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--manifests", dir.path().join("m").to_str().unwrap()])
            .args(["--data", dir.path().join("data").to_str().unwrap()])
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("NO_COLOR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let done = line.contains("listening on");
        seen.push(line);
        if done {
            break;
        }
    }
    crate::harness::sigterm(&mut child);
    let log = seen.join("\n");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI codes in a non-terminal log:\n{log}"
    );
    assert!(
        seen.iter().any(|l| l.contains("WARN")
            && l.contains("model.api_key")
            && l.contains("ANTHROPIC_API_KEY")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_duplicate_leaves_no_stale_status() {
    let token = claw::auth::token::generate();
    let s = TestServer::start().await;
    s.write(
        "tokens/a.yaml",
        &token_manifest("dup-a", &token, "read", ""),
    );
    s.write(
        "tokens/b.yaml",
        &token_manifest("dup-b", &token, "read", ""),
    );
    s.wait_for("the duplicate", |l| {
        l.summary
            .load()
            .errors
            .iter()
            .any(|e| e.message.contains("DuplicateDigest"))
    })
    .await;
    let errors = status_errors(&s).await;
    let file = errors
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("DuplicateDigest")
        })
        .map(|e| e["file"].as_str().unwrap().to_owned())
        .unwrap();
    std::fs::remove_file(s.path(&file)).unwrap();
    s.wait_for("no stale error", |l| l.summary.load().errors.is_empty())
        .await;
    let resources = expect(
        s.get("/api/v1/resources?kind=Token", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    let names: Vec<_> = resources["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names.len(), 2, "admin and the remaining one: {names:?}");
    expect(s.get("/api/v1/status", &token).await, StatusCode::OK).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_timeout_never_cuts_a_stream() {
    // A model server that accepts and never answers: the task stays running.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let config = format!(
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: openai\n    name: m\n    base_url: http://127.0.0.1:{port}/v1\n"
    );
    let s = TestServer::start_custom(
        |dir| std::fs::write(dir.join("configs/default.yaml"), &config).unwrap(),
        |o| o.limits.request_timeout = Duration::from_millis(300),
    )
    .await;
    let r = s
        .request(Method::POST, "/api/v1/tasks", Some(&s.admin))
        .json(&serde_json::json!({"prompt": "wait"}))
        .send()
        .await
        .unwrap();
    let task = expect(r, StatusCode::CREATED).await;
    let id = task["id"].as_str().unwrap();
    let mut stream = s.get(&format!("/api/v1/tasks/{id}/events"), &s.admin).await;
    assert_eq!(stream.status(), StatusCode::OK);
    // Well past the request timeout the stream is still open (no end, no error).
    let deadline = Instant::now() + Duration::from_millis(900);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Err(_) => break,
            Ok(Ok(Some(_))) => continue,
            Ok(other) => panic!("the stream ended within the request timeout: {other:?}"),
        }
    }
    s.stop().await;
    held.abort();
}

/// Where this machine allows it (`unshare -n`, as root), runs
/// [`metadata_address_in_a_namespace_inner`] in its own network namespace, whose loopback also
/// carries 169.254.169.254, so a real listener sits where the metadata service would be.
/// Skips cleanly elsewhere.
#[test]
fn a_listener_on_the_metadata_address_receives_nothing() {
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "ip link set lo up && ip addr add 169.254.169.254/32 dev lo && exec '{}' --exact hardening::metadata_address_in_a_namespace_inner --ignored --nocapture",
        exe.display()
    );
    let out = match std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: unshare is not available ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stdout.contains("running 1 test") {
        eprintln!("skipped: no network namespace here ({})", stderr.trim());
        return;
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_listener_on_the_metadata_address_receives_nothing inside a network namespace"]
async fn metadata_address_in_a_namespace_inner() {
    use std::sync::atomic::Ordering::SeqCst;
    let (port, hits) = counting_listener("169.254.169.254", None).await;
    let target = format!("http://169.254.169.254:{port}");
    // Reachable for a client that does not apply the policy: the listener really is there.
    let probe = tokio::net::TcpStream::connect(("169.254.169.254", port)).await;
    assert!(probe.is_ok(), "the namespace's listener is reachable");
    drop(probe);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let baseline = hits.load(SeqCst);

    let config = format!(
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: openai\n    name: m\n    base_url: {target}/v1\n  skills:\n    registry: {target}/registry\n"
    );
    let resources = format!(
        "apiVersion: openclaw.dev/v1\nkind: Webhook\nmetadata:\n  name: meta\nspec:\n  url: {target}/hook\n  events: [\"*\"]\n  secret: {{fromFile: hook-secret.txt}}\n---\napiVersion: openclaw.dev/v1\nkind: Skill\nmetadata:\n  name: meta-skill\nspec:\n  version: latest\n---\napiVersion: openclaw.dev/v1\nkind: McpServer\nmetadata:\n  name: meta-mcp\nspec:\n  url: {target}/mcp\n"
    );
    let s = TestServer::start_with(|dir| {
        std::fs::write(dir.join("configs/default.yaml"), &config).unwrap();
        std::fs::write(dir.join("hook-secret.txt"), "s3cret").unwrap();
        std::fs::write(dir.join("meta.yaml"), &resources).unwrap();
    })
    .await;
    s.wait_for("the skill refused", |l| problem(l, "meta-skill").is_some())
        .await;
    let r = s
        .request(Method::POST, "/api/v1/tasks", Some(&s.admin))
        .json(&serde_json::json!({"prompt": "hello"}))
        .send()
        .await
        .unwrap();
    let id = expect(r, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + BOUND;
    loop {
        let t = expect(
            s.get(&format!("/api/v1/tasks/{id}"), &s.admin).await,
            StatusCode::OK,
        )
        .await;
        if t["status"] == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "{t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + BOUND;
    loop {
        let d = expect(
            s.get("/api/v1/webhooks/meta/deliveries", &s.admin).await,
            StatusCode::OK,
        )
        .await;
        if d["items"][0]["attempt_count"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hits.load(SeqCst),
        baseline,
        "the metadata address received a connection"
    );
    s.stop().await;
}
