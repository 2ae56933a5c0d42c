//! The OpenAI-compatible API (`/v1`), driven by the official `openai` Python package
//! (tests/openai/client_test.py, pinned in tests/openai/requirements.txt, installed into
//! target/openai-venv when missing) against a real server whose model is local: a fake
//! OpenAI-format provider (plain, streaming, errors) or the command provider (a task that runs
//! until its client disconnects). Plus what needs no client: off by default, scopes, shapes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::routing::post;
use axum::{Json, Router};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{expect, token_manifest, TestServer};
use claw::auth::token;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The venv's python with the pinned `openai` package, made once per machine.
fn python() -> PathBuf {
    static MADE: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(REPO).join("target/openai-venv");
    let python = venv.join("bin/python");
    let requirements = Path::new(REPO).join("tests/openai/requirements.txt");
    let installed = venv.join("requirements.installed");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    if std::fs::read_to_string(&installed).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let run = |cmd: &mut std::process::Command| {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (python3 with venv is needed)"));
        assert!(
            out.status.success(),
            "{cmd:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if !python.exists() {
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv));
    }
    run(std::process::Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements));
    std::fs::write(&installed, wanted).unwrap();
    python
}

/// Runs the client's scenarios against `s` (a token with execute scope: the admin's).
async fn client(s: &TestServer, model: &str, scenarios: &[&str]) {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let out = tokio::process::Command::new(python)
        .arg(Path::new(REPO).join("tests/openai/client_test.py"))
        .args(scenarios)
        .env("OPENAI_BASE_URL", format!("{}/v1", s.base))
        .env("OPENAI_API_KEY", &s.admin)
        .env("CLAW_URL", &s.base)
        .env("CLAW_MODEL", model)
        // Loopback only, whatever the machine's proxy settings.
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("OPENAI_ORG_ID")
        .env_remove("OPENAI_PROJECT_ID")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the openai client failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for scenario in scenarios {
        assert!(stdout.contains(&format!("ok {scenario}")), "{stdout}");
    }
}

fn config(model: &str, extra: &str) -> String {
    format!(
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n{model}  api:\n    openai_compatible: true\n{extra}"
    )
}

/// A model provider speaking OpenAI's format: "Echo: " + the last user message, 11 + 5 tokens;
/// a message containing "fail" is refused (400), so its task fails.
async fn fake_provider() -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|Json(body): Json<Value>| async move {
            let last = body["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default();
            if last.contains("fail") {
                let refusal =
                    json!({"error": {"message": "refused", "type": "invalid_request_error"}});
                return (StatusCode::BAD_REQUEST, Json(refusal));
            }
            (
                StatusCode::OK,
                Json(json!({
                    "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": format!("Echo: {last}")}}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 5}
                })),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_completes_plain_and_streaming_and_gets_openai_errors_and_failures(
) {
    let base = fake_provider().await;
    let model = format!("    provider: openai\n    name: fake-gpt\n    base_url: {base}\n");
    let text = config(&model, "");
    let s = TestServer::start_custom(
        move |dir| std::fs::write(dir.join("configs/default.yaml"), text).unwrap(),
        // Small, so an oversized body is read whole and answered 413 (see auth.rs).
        |o| o.limits.max_body_bytes = 16 * 1024,
    )
    .await;
    client(&s, "fake-gpt", &["plain", "stream", "errors", "failures"]).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_cancels_the_task() {
    // Answers at once, then keeps answering until it is killed.
    let script = "cat >/dev/null; echo started; while :; do echo tick; sleep 0.2; done";
    let model = format!(
        "    provider: command\n    name: local\n    command: [\"sh\", \"-c\", {}]\n",
        serde_json::to_string(script).unwrap()
    );
    let text = config(&model, "");
    let s = TestServer::start_with(move |dir| {
        std::fs::write(dir.join("configs/default.yaml"), text).unwrap()
    })
    .await;
    client(&s, "local", &["disconnect"]).await;
    s.stop().await;
}

async fn openai_error(r: reqwest::Response, status: StatusCode) -> Value {
    let body = expect(r, status).await;
    let error = body["error"].as_object().unwrap();
    let mut keys: Vec<_> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"], "{body}");
    body["error"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_and_execute_scope_with_openai_errors() {
    let read = token::generate();
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("tokens/viewer.yaml"),
            token_manifest("viewer", &read, "read", ""),
        )
        .unwrap();
    })
    .await;
    // Off: 404 for everyone, in OpenAI's shape; /api/v1 is untouched.
    for (method, path) in [
        (Method::GET, "/v1/models"),
        (Method::POST, "/v1/chat/completions"),
    ] {
        let r = s
            .request(method, path, Some(&s.admin))
            .send()
            .await
            .unwrap();
        let e = openai_error(r, StatusCode::NOT_FOUND).await;
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("api.openai_compatible"),
            "{e}"
        );
    }
    let r = s
        .request(Method::GET, "/v1/nothing", None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        openai_error(r, StatusCode::NOT_FOUND).await["code"],
        "not_found"
    );

    expect(
        s.patch_config(&s.admin, json!({"api": {"openai_compatible": true}}))
            .await,
        StatusCode::OK,
    )
    .await;
    let r = s
        .request(Method::GET, "/v1/models", None)
        .send()
        .await
        .unwrap();
    let e = openai_error(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(e["type"], "authentication_error");
    assert_eq!(e["code"], "invalid_api_key");
    // A read token may not run tasks, so not even list the models.
    let r = s
        .request(Method::GET, "/v1/models", Some(&read))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-ratelimit-limit"));
    let e = openai_error(r, StatusCode::FORBIDDEN).await;
    assert_eq!(e["type"], "permission_error");
    let r = s
        .request(Method::GET, "/v1/models", Some(&s.admin))
        .send()
        .await
        .unwrap();
    let models = expect(r, StatusCode::OK).await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["object"], "model");
    // A body that is not JSON, and one without messages.
    let r = s
        .request(Method::POST, "/v1/chat/completions", Some(&s.admin))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(
        openai_error(r, StatusCode::BAD_REQUEST).await["type"],
        "invalid_request_error"
    );
    let model = models["data"][0]["id"].clone();
    let r = s
        .request(Method::POST, "/v1/chat/completions", Some(&s.admin))
        .json(&json!({"model": model, "messages": [], "temperature": 0.2}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        openai_error(r, StatusCode::BAD_REQUEST).await["param"],
        "messages"
    );
    let r = s
        .request(Method::PUT, "/v1/models", Some(&s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        openai_error(r, StatusCode::METHOD_NOT_ALLOWED).await["type"],
        "invalid_request_error"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_is_an_openai_429_with_retry_after() {
    let text = config(
        "    provider: command\n    name: local\n    command: [\"cat\"]\n",
        "  rate_limit:\n    requests_per_minute: 1\n    burst: 1\n",
    );
    let s = TestServer::start_with(move |dir| {
        std::fs::write(dir.join("configs/default.yaml"), text).unwrap()
    })
    .await;
    expect(s.get("/v1/models", &s.admin).await, StatusCode::OK).await;
    let r = s.get("/v1/models", &s.admin).await;
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let e = openai_error(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(e["type"], "rate_limit_error");
    assert_eq!(e["code"], "rate_limit_exceeded");
    s.stop().await;
}
