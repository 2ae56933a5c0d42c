//! MCP servers against a real third-party server: `@modelcontextprotocol/server-everything`
//! from npm, installed into `tests/mcp/node_modules` by `.ci/run` (or on first use).

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{expect, TestServer};

/// The server-everything launcher `npm ci` in `tests/mcp` installs.
pub fn everything_bin() -> String {
    crate::harness::npm_ci(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp")));
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

/// Waits until `name` is connected (start-up waits at most 10 s for it; a loaded machine may
/// need longer).
async fn connected(s: &TestServer, name: &str) -> Value {
    poll_server(s, name, "the connection", |b| b["status"] == "connected").await
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

    connected(&s, "everything").await;
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
    connected(&s, "everything").await;
    let first = s.live().mcp.pid("everything").unwrap();
    let killed = std::time::Instant::now();
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
    // The first restart waits the initial backoff (1 s).
    assert!(
        killed.elapsed() >= Duration::from_secs(1),
        "{:?}",
        killed.elapsed()
    );
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
    connected(&s, "everything").await;
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
    connected(&s, "everything").await;
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
    connected(&s, "everything").await;
    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    assert_eq!(status["status"], "degraded");
    let servers = status["mcp_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["name"], "broken");
    assert_eq!(servers[0]["status"], "failed");

    let (_, data) = s.stop().await;
    let store = crate::harness::open_store(data.path()).await;
    let events = claw::store::outbox::after(&store, 0, 1000).await.unwrap();
    store.close().await;
    assert!(
        events
            .iter()
            .any(|e| e.payload.contains("system.error") && e.payload.contains("broken")),
        "no system.error for the broken server"
    );
}

/// A fake Anthropic Messages API: the first request of each task gets `first`, every later
/// one a final text. Returns its base URL and the request bodies it saw.
async fn fake_anthropic(first: Value) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::sync::{Arc, Mutex};
    let requests: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            let first = first.clone();
            async move {
                let is_first = body["messages"].as_array().map(Vec::len) == Some(1);
                seen.lock().unwrap().push(body);
                axum::Json(if is_first {
                    first
                } else {
                    serde_json::json!({"content": [{"type": "text", "text": "done"}],
                           "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}})
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, requests)
}

fn offered(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_calls_an_mcp_tool_and_the_model_gets_its_result() {
    let (base, requests) = fake_anthropic(serde_json::json!({
        "content": [{"type": "tool_use", "id": "toolu_m", "name": "everything__echo",
                     "input": {"message": "hello from claw"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1}}))
    .await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("key"), "sk-test").unwrap();
    let config = format!(
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: anthropic\n    base_url: {base}\n    api_key: {{fromFile: {}}}\n",
        tmp.path().join("key").display()
    );
    let s = TestServer::start_with(move |dir| {
        std::fs::write(dir.join("configs/default.yaml"), config).unwrap();
        std::fs::write(
            dir.join("everything.yaml"),
            everything_manifest("everything"),
        )
        .unwrap();
    })
    .await;
    connected(&s, "everything").await;
    let c = claw::client::Client::new(s.base.clone(), s.admin.clone());

    let id = c
        .create_task("Echo something", serde_json::json!({}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let result = c.wait_for_completion(&id).await.unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    let seen = requests.lock().unwrap().clone();
    let tools = offered(&seen[0]);
    assert!(tools.iter().any(|t| t == "everything__echo"), "{tools:?}");
    assert!(tools.iter().any(|t| t == "read_file"), "{tools:?}");
    let tool_result = &seen[1]["messages"].as_array().unwrap().last().unwrap()["content"][0];
    assert_eq!(tool_result["tool_use_id"], "toolu_m");
    assert_ne!(tool_result["is_error"], true, "{tool_result}");
    let content = tool_result["content"].to_string();
    assert!(content.contains("Echo: hello from claw"), "{content}");

    // A task may be kept from every MCP server.
    let id = c
        .create_task("No MCP", serde_json::json!({"mcp_servers": []}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.wait_for_completion(&id).await.unwrap();
    let seen = requests.lock().unwrap().clone();
    let restricted = seen
        .iter()
        .skip(2)
        .find(|r| r["messages"].as_array().map(Vec::len) == Some(1))
        .unwrap();
    let tools = offered(restricted);
    assert!(!tools.iter().any(|t| t.contains("__")), "{tools:?}");
    assert!(tools.iter().any(|t| t == "read_file"), "{tools:?}");

    let bad = s
        .request(reqwest::Method::POST, "/api/v1/tasks", Some(&s.admin))
        .json(&serde_json::json!({"prompt": "x", "options": {"mcp_servers": "everything"}}))
        .send()
        .await
        .unwrap();
    let body = expect(bad, StatusCode::BAD_REQUEST).await;
    assert!(body.to_string().contains("options.mcp_servers"), "{body}");
    s.stop().await;
}

/// server-everything over streamable HTTP on a free port, killed on drop.
struct HttpEverything {
    child: std::process::Child,
    url: String,
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn http_everything() -> HttpEverything {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(everything_bin())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = HttpEverything {
        child,
        url: format!("http://127.0.0.1:{port}/mcp"),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server-everything did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

#[tokio::test]
async fn an_http_server_connects_with_secret_headers_and_its_tools_can_be_called() {
    let web = http_everything().await;
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("token"), "Bearer not-checked").unwrap();
    let manifest = |name: &str, secret: &Path| {
        format!(
            "apiVersion: openclaw.dev/v1\nkind: McpServer\nmetadata:\n  name: {name}\nspec:\n  url: {}\n  headers:\n    Authorization: {{fromFile: {}}}\n    X-Plain: yes-plain\n",
            web.url,
            secret.display()
        )
    };
    let good = manifest("web", &secrets.path().join("token"));
    let missing = manifest("web-missing", &secrets.path().join("absent"));
    let s = TestServer::start_with(move |dir| {
        std::fs::write(dir.join("web.yaml"), good).unwrap();
        std::fs::write(dir.join("web-missing.yaml"), missing).unwrap();
    })
    .await;

    let web_status = poll_server(&s, "web", "the HTTP connection", |b| {
        b["status"] == "connected"
    })
    .await;
    assert_eq!(web_status["transport"], "http");
    assert!(web_status["tools"].as_u64().unwrap() > 0);
    let echoed = s
        .live()
        .mcp
        .call("web", "echo", &serde_json::json!({"message": "over http"}))
        .await
        .unwrap();
    assert!(echoed.contains("Echo: over http"), "{echoed}");
    let unknown = s
        .live()
        .mcp
        .call("web", "no-such-tool", &serde_json::json!({}))
        .await;
    assert!(unknown.is_err(), "{unknown:?}");

    // A header secret that cannot be resolved: not Ready, nothing started.
    let missing = expect(
        s.get("/api/v1/mcp-servers/web-missing", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(missing["status"], "failed", "{missing}");
    assert_eq!(missing["resource"]["reason"], "SecretUnavailable");
    assert!(s.live().mcp.status("web-missing").is_none());
    let mut web = web;
    let _ = web.child.kill();
    let _ = web.child.wait();
    // The vanished server is noticed by the health check and retried with backoff.
    let down = poll_server(&s, "web", "the drop to be noticed", |b| {
        b["status"] != "connected"
    })
    .await;
    assert_eq!(down["tools"], 0, "{down}");
    let down = poll_server(&s, "web", "the failed reconnection", |b| {
        b["status"] == "failed"
            && b["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot connect"))
    })
    .await;
    assert!(down["restarts"].as_u64().unwrap() >= 1, "{down}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_limits_mcp_servers_and_a_task_option_overrides_it() {
    let (base, requests) = fake_anthropic(serde_json::json!({
        "content": [{"type": "text", "text": "nothing to call"}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}))
    .await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("key"), "sk-test").unwrap();
    let config = format!(
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: anthropic\n    base_url: {base}\n    api_key: {{fromFile: {}}}\n  tasks:\n    mcp_servers: [other]\n",
        tmp.path().join("key").display()
    );
    let s = TestServer::start_with(move |dir| {
        std::fs::write(dir.join("configs/default.yaml"), config).unwrap();
        std::fs::write(
            dir.join("everything.yaml"),
            everything_manifest("everything"),
        )
        .unwrap();
    })
    .await;
    connected(&s, "everything").await;
    let c = claw::client::Client::new(s.base.clone(), s.admin.clone());
    for options in [
        serde_json::json!({}),
        serde_json::json!({"mcp_servers": ["everything"]}),
    ] {
        let id = c.create_task("x", options).await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let done = c.wait_for_completion(&id).await.unwrap();
        assert_eq!(done["status"], "completed", "{done}");
    }
    let seen = requests.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(!offered(&seen[0])
        .iter()
        .any(|t| t.starts_with("everything__")));
    assert!(offered(&seen[1]).iter().any(|t| t == "everything__echo"));
    s.stop().await;
}
