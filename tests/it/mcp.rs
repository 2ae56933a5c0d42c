//! MCP servers against a real third-party server: `@modelcontextprotocol/server-everything`
//! from npm, installed into `tests/mcp/node_modules` by `.ci/run` (`npm ci` there).

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{expect, TestServer};

/// The server-everything launcher `npm ci` in `tests/mcp` installs.
pub fn everything_bin() -> String {
    let bin = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/mcp/node_modules/.bin/mcp-server-everything"
    );
    assert!(
        Path::new(bin).exists(),
        "{bin} is missing: run `npm ci` in tests/mcp (.ci/run does)"
    );
    bin.to_owned()
}

/// An McpServer manifest running server-everything over stdio.
pub fn everything_manifest(name: &str) -> String {
    format!(
        "apiVersion: openclaw.dev/v1\nkind: McpServer\nmetadata:\n  name: {name}\nspec:\n  command: {}\n  args: [stdio]\n  timeout_seconds: 20\n",
        everything_bin()
    )
}

/// Polls `GET /api/v1/mcp-servers/{name}` until `done` holds (the supervisor changes state
/// between reconcile passes, so there is no pass to wait on).
async fn poll_server(
    s: &TestServer,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = expect(
            s.get(&format!("/api/v1/mcp-servers/{name}"), &s.admin)
                .await,
            StatusCode::OK,
        )
        .await;
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `pid` is gone (or only a zombie awaiting its reaper).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

async fn wait_gone(pid: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !process_gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} is still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_stdio_server_connects_and_its_tools_are_listed() {
    let s = TestServer::start_with(|dir| {
        std::fs::create_dir_all(dir.join("mcp")).unwrap();
        std::fs::write(
            dir.join("mcp/everything.yaml"),
            everything_manifest("everything"),
        )
        .unwrap();
    })
    .await;

    let list = expect(s.get("/api/v1/mcp-servers", &s.admin).await, StatusCode::OK).await;
    assert_eq!(list["total"], 1);
    let server = &list["items"][0];
    assert_eq!(server["name"], "everything");
    assert_eq!(server["transport"], "stdio");
    assert_eq!(server["status"], "connected", "{server}");
    assert!(server["tools"].as_u64().unwrap() > 0);
    assert_eq!(server["resource"]["ready"], true);
    assert_eq!(server["resource"]["reason"], "Connected");

    let tools = expect(
        s.get("/api/v1/mcp-servers/everything/tools", &s.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    let names: Vec<&str> = tools["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");
    assert_eq!(tools["total"], server["tools"]);
    let echo = tools["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap();
    assert_eq!(echo["input_schema"]["type"], "object");

    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    let mcp = &status["mcp_servers"][0];
    assert_eq!(mcp["name"], "everything");
    assert_eq!(mcp["transport"], "stdio");
    assert_eq!(mcp["status"], "connected");
    assert_eq!(mcp["tools"], server["tools"]);
    assert!(mcp["last_error"].is_null());
    assert!(mcp["since"].as_str().unwrap().ends_with('Z'));

    expect(
        s.get("/api/v1/mcp-servers/nope/tools", &s.admin).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let pid = s.live().mcp.pid("everything").unwrap();
    s.stop().await;
    assert!(process_gone(pid), "shutdown left the MCP server running");
}

#[tokio::test]
async fn a_killed_server_is_restarted_with_backoff() {
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("everything.yaml"),
            everything_manifest("everything"),
        )
        .unwrap();
    })
    .await;
    let first = s.live().mcp.pid("everything").unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap()
        .success());
    let failed = poll_server(&s, "everything", "the failure to show", |b| {
        b["status"] == "failed" || b["restarts"].as_u64() > Some(0)
    })
    .await;
    if failed["status"] == "failed" {
        assert!(
            failed["last_error"].as_str().unwrap().contains("exited"),
            "{failed}"
        );
    }
    let back = poll_server(&s, "everything", "the restart", |b| {
        b["status"] == "connected" && b["restarts"] == 1
    })
    .await;
    assert!(back["tools"].as_u64().unwrap() > 0);
    let second = s.live().mcp.pid("everything").unwrap();
    assert_ne!(first, second);
    wait_gone(first).await;
    s.stop().await;
    wait_gone(second).await;
}

#[tokio::test]
async fn removing_the_manifest_stops_the_process() {
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("everything.yaml"),
            everything_manifest("everything"),
        )
        .unwrap();
    })
    .await;
    let pid = s.live().mcp.pid("everything").unwrap();
    std::fs::remove_file(s.path("everything.yaml")).unwrap();
    s.wait_for("the server to be stopped", |live| {
        live.mcp.status("everything").is_none()
    })
    .await;
    wait_gone(pid).await;
    let list = expect(s.get("/api/v1/mcp-servers", &s.admin).await, StatusCode::OK).await;
    assert_eq!(list["total"], 0);
    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    assert_eq!(status["mcp_servers"], serde_json::json!([]));
    s.stop().await;
}

#[tokio::test]
async fn a_changed_spec_restarts_the_server() {
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("everything.yaml"),
            everything_manifest("everything"),
        )
        .unwrap();
    })
    .await;
    let first = s.live().mcp.pid("everything").unwrap();
    s.write(
        "everything.yaml",
        &everything_manifest("everything").replace("timeout_seconds: 20", "timeout_seconds: 25"),
    );
    s.wait_for("the restart", |live| {
        live.mcp.pid("everything").is_some_and(|p| p != first)
    })
    .await;
    wait_gone(first).await;
    poll_server(&s, "everything", "the reconnection", |b| {
        b["status"] == "connected"
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn a_server_that_cannot_start_is_reported_and_not_fatal() {
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("broken.yaml"),
            "apiVersion: openclaw.dev/v1\nkind: McpServer\nmetadata:\n  name: broken\nspec:\n  command: /nonexistent/mcp-server\n",
        )
        .unwrap();
        std::fs::write(dir.join("everything.yaml"), everything_manifest("everything")).unwrap();
    })
    .await;
    let broken = expect(
        s.get("/api/v1/mcp-servers/broken", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(broken["status"], "failed");
    assert!(
        broken["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot start \"/nonexistent/mcp-server\""),
        "{broken}"
    );
    assert_eq!(broken["resource"]["ready"], false);
    assert_eq!(broken["resource"]["reason"], "StartFailed");
    // The other server and the API carry on; the server reports itself degraded.
    let ok = expect(
        s.get("/api/v1/mcp-servers/everything", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ok["status"], "connected");
    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    assert_eq!(status["status"], "degraded");
    let servers = status["mcp_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["name"], "broken");
    assert_eq!(servers[0]["status"], "failed");

    let (_, data) = s.stop().await;
    let store = claw::store::Store::open_existing(data.path())
        .await
        .unwrap()
        .unwrap();
    let events = claw::store::outbox::after(&store, 0, 1000).await.unwrap();
    store.close().await;
    assert!(
        events
            .iter()
            .any(|e| e.payload.contains("system.error") && e.payload.contains("broken")),
        "no system.error for the broken server"
    );
}
