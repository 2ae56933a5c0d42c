//! The `anthropic` provider: Anthropic's Messages API with its tool-use loop.
//!
//! Each turn posts the whole conversation to `{base_url}/v1/messages`; while the answer stops
//! with `tool_use`, the requested tools are run and their results sent back as one user
//! message of `tool_result` blocks.

use serde_json::{json, Value};

use super::{
    endpoint, garbage, http_client, post, post_json, resolve_key, system_prompt,
    turn_limit_failure, Failure, Progress,
};
use crate::manifest::kinds::ModelConfig;
use crate::manifest::secret::SecretContext;
use crate::tasks::agent::RunRequest;
use crate::tasks::tools::Toolbox;

const NAME: &str = "anthropic";
const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
const API_VERSION: &str = "2023-06-01";

/// Runs the task's conversation until the model stops asking for tools.
pub(crate) async fn run(
    model: &ModelConfig,
    secrets: &SecretContext,
    req: &RunRequest,
    tools: &Toolbox,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let key = resolve_key(model, secrets)?.ok_or_else(|| {
        Failure::Config("model.api_key is not set; the anthropic provider needs one".to_owned())
    })?;
    let key_header = key.header("")?;
    let url = endpoint(model, DEFAULT_BASE_URL, "v1/messages")?;
    let client = http_client(&req.egress)?;
    let tool_specs: Vec<Value> = tools
        .specs()
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    let mut messages = vec![json!({"role": "user", "content": req.prompt})];

    for turn in 1..=req.max_turns {
        let body = json!({
            "model": req.model,
            "max_tokens": req.max_tokens,
            "system": system_prompt(req),
            "messages": messages,
            "tools": tool_specs,
        });
        let request = post(&client, &url)?
            .header("x-api-key", key_header.clone())
            .header("anthropic-version", API_VERSION)
            .json(&body);
        let answer = post_json(NAME, request, Some(&key)).await?;

        let usage = answer.get("usage");
        let count = |field: &str| {
            usage
                .and_then(|u| u.get(field))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        progress.add_usage(count("input_tokens"), count("output_tokens"));

        let content = answer
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| garbage(NAME, "no \"content\" array"))?;
        let mut tool_uses = Vec::new();
        for block in content {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    progress.emit_block(block.get("text").and_then(Value::as_str).unwrap_or(""));
                }
                Some("tool_use") => tool_uses.push(block),
                _ => {}
            }
        }
        let stop_reason = answer.get("stop_reason").and_then(Value::as_str);
        tracing::debug!(turn, stop_reason, tools = tool_uses.len(), "anthropic turn");
        if stop_reason != Some("tool_use") {
            return Ok(());
        }
        if tool_uses.is_empty() {
            return Err(garbage(
                NAME,
                "stop_reason tool_use without a tool_use block",
            ));
        }

        let mut results = Vec::with_capacity(tool_uses.len());
        for tool_use in &tool_uses {
            let id = tool_use
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| garbage(NAME, "a tool_use block has no id"))?;
            let name = tool_use.get("name").and_then(Value::as_str).unwrap_or("");
            let input = tool_use.get("input").cloned().unwrap_or(Value::Null);
            results.push(match tools.call(name, &input).await {
                Ok(text) => json!({"type": "tool_result", "tool_use_id": id, "content": text}),
                Err(text) => json!({
                    "type": "tool_result", "tool_use_id": id, "content": text, "is_error": true
                }),
            });
        }
        messages.push(json!({"role": "assistant", "content": content}));
        messages.push(json!({"role": "user", "content": results}));
    }
    Err(turn_limit_failure(req.max_turns))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::{Json, Router};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::manifest::kinds::{Provider, SecretRef};
    use crate::tasks::agent::{run as run_agent, RunError, Usage};
    use crate::tasks::providers::testing::{fake_api, serve, Fixture};

    fn model(base_url: String, key: SecretRef) -> ModelConfig {
        ModelConfig {
            provider: Provider::Anthropic,
            base_url: Some(base_url),
            api_key: Some(key),
            ..ModelConfig::default()
        }
    }

    fn write_file_turn() -> Value {
        json!({
            "id": "msg_1", "type": "message", "role": "assistant",
            "content": [
                {"type": "text", "text": "Writing the file."},
                {"type": "tool_use", "id": "toolu_01", "name": "write_file",
                 "input": {"path": "notes/hello.txt", "content": "Hello, world!\n"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 100, "output_tokens": 20}
        })
    }

    #[tokio::test]
    async fn runs_the_tool_use_loop_to_the_final_text() {
        let fx = Fixture::new();
        let final_turn = json!({
            "content": [{"type": "text", "text": "Done: notes/hello.txt."}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 150, "output_tokens": 10}
        });
        let (url, seen) = fake_api(
            "/v1/messages",
            vec![
                (StatusCode::OK, write_file_turn()),
                (StatusCode::OK, final_turn),
            ],
        )
        .await;
        let out = fx
            .run(&model(url, fx.key_file("sk-ant-test")), 5)
            .await
            .unwrap();

        assert_eq!(
            std::fs::read_to_string(fx.dir.path().join("notes/hello.txt")).unwrap(),
            "Hello, world!\n"
        );
        assert_eq!(out.output, "Writing the file.\nDone: notes/hello.txt.");
        assert_eq!(*fx.sunk.lock().unwrap(), out.output);
        assert_eq!(
            out.usage,
            Usage {
                input_tokens: 250,
                output_tokens: 30
            }
        );

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let (headers, first) = &seen[0];
        assert_eq!(headers["x-api-key"], "sk-ant-test");
        assert_eq!(headers["anthropic-version"], "2023-06-01");
        assert_eq!(first["model"], "test-model");
        assert_eq!(first["max_tokens"], 100);
        assert_eq!(first["system"], crate::tasks::providers::SYSTEM_PROMPT);
        assert_eq!(
            first["messages"],
            json!([{"role": "user", "content": "write a greeting"}])
        );
        let tool_names: Vec<_> = first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].clone())
            .collect();
        assert_eq!(tool_names, ["list_files", "read_file", "write_file"]);
        assert!(first["tools"][0]["input_schema"].is_object());

        let (_, second) = &seen[1];
        let messages = second["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["role"], "assistant");
        assert_eq!(messages[1]["content"][1]["id"], "toolu_01");
        assert_eq!(messages[2]["role"], "user");
        let result = &messages[2]["content"][0];
        assert_eq!(result["type"], "tool_result");
        assert_eq!(result["tool_use_id"], "toolu_01");
        assert_eq!(result["content"], "wrote 14 bytes to notes/hello.txt");
        assert!(result.get("is_error").is_none());
    }

    #[tokio::test]
    async fn a_failing_tool_is_reported_with_is_error() {
        let fx = Fixture::new();
        let escape = json!({
            "content": [{"type": "tool_use", "id": "toolu_02", "name": "read_file",
                         "input": {"path": "../../etc/passwd"}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 1, "output_tokens": 1}
        });
        let done = json!({"content": [], "stop_reason": "end_turn", "usage": {}});
        let (url, seen) = fake_api(
            "/v1/messages",
            vec![(StatusCode::OK, escape), (StatusCode::OK, done)],
        )
        .await;
        fx.run(&model(url, fx.key_file("k")), 5).await.unwrap();
        let seen = seen.lock().unwrap();
        let result = &seen[1].1["messages"][2]["content"][0];
        assert_eq!(result["tool_use_id"], "toolu_02");
        assert_eq!(result["is_error"], true);
    }

    #[tokio::test]
    async fn exceeding_max_turns_fails_the_task() {
        let fx = Fixture::new();
        let (url, seen) = fake_api("/v1/messages", vec![(StatusCode::OK, write_file_turn())]).await;
        let err = fx.run(&model(url, fx.key_file("k")), 2).await.unwrap_err();
        let RunError::Failed {
            message,
            output,
            usage,
        } = err
        else {
            panic!("expected Failed, got {err:?}");
        };
        assert!(message.contains("after 2 turns"), "{message}");
        assert_eq!(output, "Writing the file.\nWriting the file.");
        assert_eq!(
            usage,
            Usage {
                input_tokens: 200,
                output_tokens: 40
            }
        );
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn api_errors_become_provider_errors_without_the_key() {
        for status in [StatusCode::BAD_REQUEST, StatusCode::INTERNAL_SERVER_ERROR] {
            let fx = Fixture::new();
            // An API that echoes the request headers in its error message.
            let router = Router::new().route(
                "/v1/messages",
                post(move |headers: HeaderMap| async move {
                    let echoed = format!("{headers:?}");
                    (status, Json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": echoed}})))
                }),
            );
            let url = serve(router).await;
            let err = fx
                .run(&model(url, fx.key_file("sk-ant-very-secret")), 5)
                .await
                .unwrap_err();
            let RunError::Provider { message, .. } = &err else {
                panic!("expected Provider, got {err:?}");
            };
            assert!(
                message.starts_with(&format!("anthropic: HTTP {status}: ")),
                "{message}"
            );
            assert!(
                message.contains("anthropic-version"),
                "the API's message is kept: {message}"
            );
            assert!(!message.contains("sk-ant-very-secret"), "{message}");
            assert!(!format!("{err:?}").contains("sk-ant-very-secret"));
        }
    }

    #[tokio::test]
    async fn a_missing_key_is_a_config_error_before_any_request() {
        let fx = Fixture::new();
        let (url, seen) = fake_api("/v1/messages", vec![(StatusCode::OK, write_file_turn())]).await;
        let key = SecretRef::FromEnv("CLAW_TEST_ANTHROPIC_KEY_SURELY_UNSET".to_owned());
        let err = fx.run(&model(url.clone(), key), 5).await.unwrap_err();
        let RunError::Config(message) = err else {
            panic!("expected Config, got {err:?}");
        };
        assert_eq!(
            message,
            "model.api_key: environment variable CLAW_TEST_ANTHROPIC_KEY_SURELY_UNSET is not set"
        );
        let mut unset = model(url, SecretRef::FromEnv(String::new()));
        unset.api_key = None;
        let err = fx.run(&unset, 5).await.unwrap_err();
        assert!(matches!(err, RunError::Config(ref m) if m.contains("model.api_key is not set")));
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn garbage_answers_are_provider_errors() {
        let fx = Fixture::new();
        let (url, _) = fake_api(
            "/v1/messages",
            vec![(StatusCode::OK, json!({"hello": "there"}))],
        )
        .await;
        let err = fx.run(&model(url, fx.key_file("k")), 5).await.unwrap_err();
        assert!(
            matches!(err, RunError::Provider { ref message, .. } if message == "anthropic: unexpected response: no \"content\" array"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn cancel_drops_the_request_in_flight() {
        let fx = Fixture::new();
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let entered_tx = Arc::new(Mutex::new(Some(entered_tx)));
        let router = Router::new().route(
            "/v1/messages",
            post(move || async move {
                if let Some(tx) = entered_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                std::future::pending::<()>().await;
            }),
        );
        let url = serve(router).await;
        let cancel = CancellationToken::new();
        let model = model(url, fx.key_file("k"));
        let req = fx.request("hang");
        let run = run_agent(
            &model,
            &fx.secrets,
            &req,
            &fx.tools,
            fx.sink(),
            cancel.clone(),
        );
        let canceller = async {
            entered_rx.await.unwrap();
            cancel.cancel();
        };
        let (result, ()) = tokio::join!(run, canceller);
        assert!(
            matches!(result, Err(RunError::Cancelled { .. })),
            "{result:?}"
        );
    }
}
