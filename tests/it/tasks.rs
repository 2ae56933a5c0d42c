//! Tasks end to end: real provider wire formats served locally, the command provider with real
//! child processes, cancel and timeout, restart, listing and filters, scopes.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use claw::client::Client;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{expect, spawn_serve, token_manifest, TestServer};

/// A Config whose model section is `model` (YAML, indented by four spaces).
fn config(model: &str, tasks: &str) -> String {
    format!(
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n{model}  tasks:\n{tasks}"
    )
}

fn command_config(script: &str, tasks: &str) -> String {
    let model = format!(
        "    provider: command\n    command: [\"sh\", \"-c\", {}]\n",
        serde_json::to_string(script).unwrap()
    );
    config(&model, tasks)
}

async fn start_with_config(text: String) -> TestServer {
    TestServer::start_with(move |dir| {
        std::fs::write(dir.join("configs/default.yaml"), text).unwrap()
    })
    .await
}

fn client(s: &TestServer) -> Client {
    Client::new(s.base.clone(), s.admin.clone())
}

async fn create(s: &TestServer, body: Value) -> String {
    let r = s
        .request(Method::POST, "/api/v1/tasks", Some(&s.admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("location"));
    let created = expect(r, StatusCode::CREATED).await;
    assert!(created["created_at"].is_string());
    created["id"].as_str().unwrap().to_owned()
}

fn pid_alive(pid: i32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

async fn outbox_events(data: &Path) -> Vec<Value> {
    let store = crate::harness::open_store(data).await;
    let events = claw::store::outbox::after(&store, 0, 1000).await.unwrap();
    store.close().await;
    events
        .iter()
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect()
}

/// A fake Anthropic Messages API: the first call asks to write a file, the second answers.
async fn fake_anthropic(requests: Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>) -> String {
    let app = Router::new().route(
        "/v1/messages",
        post(move |headers: axum::http::HeaderMap, Json(body): Json<Value>| {
            let requests = requests.clone();
            async move {
                let n = {
                    let mut r = requests.lock().unwrap();
                    r.push((headers, body));
                    r.len()
                };
                Json(if n == 1 {
                    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
                        "content": [{"type": "text", "text": "Writing the notes. "},
                                    {"type": "tool_use", "id": "toolu_1", "name": "write_file",
                                     "input": {"path": "notes/hello.txt", "content": "hello from the agent"}}],
                        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5}})
                } else {
                    json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-test",
                        "content": [{"type": "text", "text": "Done."}],
                        "stop_reason": "end_turn", "usage": {"input_tokens": 20, "output_tokens": 3}})
                })
            }
        }),
    );
    serve(app).await
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_tool_use_round_trip_writes_a_file_the_result_lists() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let base = fake_anthropic(requests.clone()).await;
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("key"), "sk-ant-test-key\n").unwrap();
    let model = format!(
        "    provider: anthropic\n    name: claude-test\n    base_url: {base}\n    api_key: {{fromFile: {}}}\n",
        keys.path().join("key").display()
    );
    let s = start_with_config(config(&model, "    concurrency: 2\n")).await;
    let id = create(&s, json!({"prompt": "Write hello notes"})).await;
    let c = client(&s);
    let mut streamed = String::new();
    c.follow_events(&id, |text| streamed.push_str(text))
        .await
        .unwrap();
    let result = c.result(&id).await.unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    // Text of successive model turns is joined with a newline.
    assert_eq!(result["output"], "Writing the notes. \nDone.");
    assert_eq!(streamed.replace('\n', ""), "Writing the notes. Done.");
    assert_eq!(
        result["files"],
        json!([{"path": "notes/hello.txt", "change": "created"}])
    );
    assert_eq!(
        result["usage"],
        json!({"input_tokens": 30, "output_tokens": 8})
    );

    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].0["x-api-key"], "sk-ant-test-key");
    assert!(requests[0].0.contains_key("anthropic-version"));
    assert_eq!(requests[0].1["model"], "claude-test");
    let tool_result = &requests[1].1["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"][0];
    assert_eq!(tool_result["type"], "tool_result");
    assert_eq!(tool_result["tool_use_id"], "toolu_1");

    let task = c.task(&id).await.unwrap();
    assert!(task["duration_ms"].as_i64().unwrap() >= 0);
    assert!(task["started_at"].is_string() && task["completed_at"].is_string());
    let (_, data) = s.stop().await;
    let events = outbox_events(data.path()).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["task.started", "task.completed"]);
    assert_eq!(events[1]["data"]["task_id"], id.as_str());
    assert_eq!(events[1]["data"]["prompt"], "Write hello notes");
    assert_eq!(events[1]["data"]["status"], "completed");
    assert!(events[1]["data"]["duration_ms"].is_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_compatible_server_with_function_calling() {
    let calls = Arc::new(Mutex::new(0));
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| {
            let calls = calls.clone();
            async move {
                let n = {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    *c
                };
                Json(if n == 1 {
                    assert!(body["tools"].as_array().unwrap().iter().any(|t| t["function"]["name"] == "write_file"));
                    json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "write_file",
                            "arguments": "{\"path\": \"out.md\", \"content\": \"# hi\"}"}}]}}],
                        "usage": {"prompt_tokens": 7, "completion_tokens": 2}})
                } else {
                    let last = body["messages"].as_array().unwrap().last().unwrap().clone();
                    assert_eq!(last["role"], "tool");
                    assert_eq!(last["tool_call_id"], "call_1");
                    json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Wrote out.md"}}],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 3}})
                })
            }
        }),
    );
    let base = serve(app).await;
    let model = format!("    provider: openai\n    name: llama3\n    base_url: {base}/v1\n");
    let s = start_with_config(config(&model, "    concurrency: 1\n")).await;
    let id = create(
        &s,
        json!({"prompt": "write a heading", "options": {"model": "llama3.1"}}),
    )
    .await;
    let result = client(&s).wait_for_completion(&id).await.unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["output"], "Wrote out.md");
    assert_eq!(
        result["files"],
        json!([{"path": "out.md", "change": "created"}])
    );
    assert_eq!(
        result["usage"],
        json!({"input_tokens": 16, "output_tokens": 5})
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_provider_gets_the_prompt_on_stdin_and_fails_with_stderr() {
    let script = r#"read -r p; case "$p" in fail*) echo "boom: $p" >&2; exit 3;; esac; echo "got: $p"; echo data > made.txt"#;
    let s = start_with_config(command_config(script, "    concurrency: 2\n")).await;
    let c = client(&s);
    let ok = create(
        &s,
        json!({"prompt": "List the files in the current directory"}),
    )
    .await;
    let result = c.wait_for_completion(&ok).await.unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(
        result["output"],
        "got: List the files in the current directory\n"
    );
    assert_eq!(
        result["files"],
        json!([{"path": "made.txt", "change": "created"}])
    );

    let bad = create(&s, json!({"prompt": "fail please"})).await;
    let result = c.wait_for_completion(&bad).await.unwrap();
    assert_eq!(result["status"], "failed");
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains("exit status 3") && error.contains("boom: fail please"),
        "{error}"
    );
    s.stop().await;
}

async fn sleeper(s: &TestServer, options: Value) -> String {
    create(s, json!({"prompt": "sleep", "options": options})).await
}

fn sleeping_config(pidfile: &Path) -> String {
    let script = format!(
        r#"read -r p; case "$p" in sleep*) sleep 30 & echo $! > {}; wait;; esac; echo quick"#,
        pidfile.display()
    );
    command_config(&script, "    concurrency: 1\n    max_timeout_seconds: 60\n")
}

async fn pid_from(pidfile: &Path) -> i32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_gone(pid: i32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} survived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_the_process_group_and_a_finished_result_is_409_free() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let s = start_with_config(sleeping_config(&pidfile)).await;
    let id = sleeper(&s, json!({})).await;
    let queued = create(&s, json!({"prompt": "quick one"})).await;
    let pid = pid_from(&pidfile).await;
    assert!(pid_alive(pid));

    let body = expect(
        s.get(&format!("/api/v1/tasks/{id}/result"), &s.admin).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body["error"]["code"], "task_not_finished");
    // A running task's answer is read afresh each time (only finished ones are kept).
    for _ in 0..2 {
        let shown = expect(
            s.get(&format!("/api/v1/tasks/{id}"), &s.admin).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(shown["status"], "running");
    }

    let r = s
        .request(
            Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            Some(&s.admin),
        )
        .send()
        .await
        .unwrap();
    let task = expect(r, StatusCode::OK).await;
    assert_eq!(task["status"], "cancelled");
    // Once finished, the answer is the task as the cancel returned it, the same bytes each
    // time (rendered once, then kept), with the JSON content type.
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let r = s.get(&format!("/api/v1/tasks/{id}"), &s.admin).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/json");
        bodies.push(r.bytes().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    let shown: Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(shown, task);
    assert!(task["error"]
        .as_str()
        .unwrap()
        .contains("cancelled by token 'admin'"));
    wait_gone(pid).await;
    // A second cancel is a conflict; the queued task then ran.
    let r = s
        .request(
            Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            Some(&s.admin),
        )
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::CONFLICT).await;
    let result = client(&s).wait_for_completion(&queued).await.unwrap();
    assert_eq!(result["output"], "quick\n");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_work_and_fails_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let s = start_with_config(sleeping_config(&pidfile)).await;
    let id = sleeper(&s, json!({"timeout_seconds": 1})).await;
    let pid = pid_from(&pidfile).await;
    let result = client(&s).wait_for_completion(&id).await.unwrap();
    assert_eq!(result["status"], "failed");
    assert_eq!(result["error"], "timed out after 1 s");
    wait_gone(pid).await;
    let r = s
        .request(Method::POST, "/api/v1/tasks", Some(&s.admin))
        .json(&json!({"prompt": "x", "options": {"timeout_seconds": 61}}))
        .send()
        .await
        .unwrap();
    let body = expect(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        body["error"]["details"][0]["field"],
        "options.timeout_seconds"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_running_tasks_are_failed_and_queued_ones_run() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let manifests = dir.path().join("m");
    let admin = claw::manifest::scaffold::init(&manifests)
        .unwrap()
        .admin_token
        .unwrap();
    std::fs::write(
        manifests.join("configs/default.yaml"),
        sleeping_config(&pidfile),
    )
    .unwrap();
    let (mut child, url, _lines) = spawn_serve(dir.path());
    let c = Client::new(url, admin.clone());
    let running = c.create_task("sleep", json!({})).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let queued = c
        .create_task("quick after restart", json!({}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pid = pid_from(&pidfile).await;
    // kill -9: no chance to record anything.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // The orphaned command is not ours to keep; end it so the test leaves nothing behind.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    wait_gone(pid).await;

    let server = claw::server::start(crate::harness::options(
        &manifests,
        &dir.path().join("data"),
    ))
    .await
    .unwrap();
    let c = Client::new(server.url(), admin);
    let failed = c.task(&running).await.unwrap();
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("server stopped while this task was running"),
        "{failed}"
    );
    let result = c.wait_for_completion(&queued).await.unwrap();
    assert_eq!(result["status"], "completed");
    assert_eq!(result["output"], "quick\n");
    server.shutdown().await;
    let events = outbox_events(&dir.path().join("data")).await;
    assert!(events
        .iter()
        .any(|e| e["event"] == "task.failed" && e["data"]["task_id"] == running.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_newest_first_with_every_filter() {
    let s = start_with_config(command_config("cat", "    concurrency: 4\n")).await;
    let c = client(&s);
    let mut ids = Vec::new();
    for prompt in [
        "alpha report",
        "beta report",
        "gamma notes",
        "delta notes",
        "Alpha again \"quoted\" 100%_x",
    ] {
        ids.push(create(&s, json!({"prompt": prompt})).await);
    }
    for id in &ids {
        c.wait_for_completion(id).await.unwrap();
    }
    let page = |q: &'static str| {
        let s = &s;
        async move {
            expect(
                s.get(&format!("/api/v1/tasks?{q}"), &s.admin).await,
                StatusCode::OK,
            )
            .await
        }
    };
    let all = page("limit=2&offset=0").await;
    assert_eq!(all["total"], 5);
    assert_eq!(all["limit"], 2);
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(all["items"][0]["id"], ids[4].as_str(), "newest first");
    assert_eq!(all["items"][1]["id"], ids[3].as_str());
    let second = page("limit=2&offset=2").await;
    assert_eq!(second["items"][0]["id"], ids[2].as_str());
    assert_eq!(second["offset"], 2);
    assert_eq!(page("").await["limit"], 20);

    assert_eq!(page("status=completed").await["total"], 5);
    assert_eq!(page("status=failed").await["total"], 0);
    assert_eq!(page("status=queued,running").await["total"], 0);
    assert_eq!(page("q=report").await["total"], 2);
    assert_eq!(page("q=alpha").await["total"], 2, "case-insensitive");
    assert_eq!(page("q=ta").await["total"], 2, "short patterns too");
    let quoted = page("q=%22quoted%22").await;
    assert_eq!(quoted["total"], 1, "quotes are literal: {quoted}");
    assert_eq!(page("q=100%25_").await["total"], 1, "so are % and _");
    assert_eq!(page("q=0%25").await["total"], 1);
    assert_eq!(page("q=%25_").await["total"], 1);
    let middle = c.task(&ids[2]).await.unwrap()["created_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = page(Box::leak(
        format!("created_after={middle}").into_boxed_str(),
    ))
    .await;
    assert_eq!(after["total"], 2);
    let before = page(Box::leak(
        format!("created_before={middle}").into_boxed_str(),
    ))
    .await;
    assert_eq!(before["total"], 2);
    for bad in [
        "limit=0",
        "limit=101",
        "status=done",
        "created_after=yesterday",
        "offset=-1",
        "q=ab%00cd",
    ] {
        let r = s.get(&format!("/api/v1/tasks?{bad}"), &s.admin).await;
        let body = expect(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["code"], "invalid_parameter", "{bad}");
    }
    expect(
        s.get("/api/v1/tasks/task_nope", &s.admin).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let status = expect(s.get("/api/v1/status", &s.admin).await, StatusCode::OK).await;
    assert_eq!(status["tasks"]["completed"], 5);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_and_working_directories() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let tasks = format!("    allowed_roots: [{}]\n", root.path().display());
    let (read, execute) = (claw::auth::token::generate(), claw::auth::token::generate());
    let config_text = command_config("cat > seen.txt; echo ok", &tasks);
    let s = TestServer::start_with(|dir| {
        std::fs::write(dir.join("configs/default.yaml"), config_text).unwrap();
        std::fs::write(
            dir.join("tokens/read.yaml"),
            token_manifest("dashboard", &read, "read", ""),
        )
        .unwrap();
        std::fs::write(
            dir.join("tokens/exec.yaml"),
            token_manifest("ci-pipeline", &execute, "execute", ""),
        )
        .unwrap();
    })
    .await;
    let post = |token: &str, body: Value| {
        s.request(Method::POST, "/api/v1/tasks", Some(token))
            .json(&body)
            .send()
    };
    let body = expect(
        post(&read, json!({"prompt": "hi"})).await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body["error"]["code"], "forbidden");
    let inside = json!({"prompt": "hi", "options": {"working_directory": root.path()}});
    let created = expect(post(&execute, inside).await.unwrap(), StatusCode::CREATED).await;
    let id = created["id"].as_str().unwrap();
    let result = Client::new(s.base.clone(), execute.clone())
        .wait_for_completion(id)
        .await
        .unwrap();
    assert_eq!(
        result["files"],
        json!([{"path": "seen.txt", "change": "created"}])
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("seen.txt")).unwrap(),
        "hi",
        "the prompt, exactly, on stdin"
    );
    // Read tokens may read it, not cancel it.
    expect(
        s.get(&format!("/api/v1/tasks/{id}"), &read).await,
        StatusCode::OK,
    )
    .await;
    let r = s
        .request(
            Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            Some(&read),
        )
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::FORBIDDEN).await;

    let out = json!({"prompt": "hi", "options": {"working_directory": outside.path()}});
    let body = expect(post(&execute, out).await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"]["code"], "validation_failed");
    assert_eq!(
        body["error"]["details"][0]["field"],
        "options.working_directory"
    );
    assert!(body["error"]["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("outside the allowed roots"));
    let body = expect(
        post(&execute, json!({"options": {}})).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "prompt");
    let huge = "x".repeat(70_000);
    let body = expect(
        post(&execute, json!({"prompt": huge})).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(body["error"]["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("max_prompt_bytes"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claw_task_run_waits_and_prints_the_output() {
    let s = start_with_config(command_config(
        "echo \"agent says: $(cat)\"; echo x > f.txt",
        "    concurrency: 1\n",
    ))
    .await;
    let claw = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_claw"));
        cmd.args(args)
            .env("CLAW_URL", &s.base)
            .env_remove("CLAW_TOKEN")
            .env("OPENCLAW_TOKEN", &s.admin);
        cmd.output()
    };
    let out = claw(&["task", "run", "--wait", "Summarize the latest git commits"])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "agent says: Summarize the latest git commits\n");
    assert!(stderr.contains("created f.txt"), "{stderr}");

    let out = claw(&["task", "run", "no wait"]).await.unwrap();
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(id.starts_with("task_"), "{id}");
    let result = client(&s).wait_for_completion(&id).await.unwrap();
    assert_eq!(result["output"], "agent says: no wait\n");
    s.stop().await;
}
