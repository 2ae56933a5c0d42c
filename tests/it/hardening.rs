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
