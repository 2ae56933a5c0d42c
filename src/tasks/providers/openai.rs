//! The `openai` provider: chat completions on any OpenAI-compatible server.
//!
//! Works against OpenAI itself and local servers (Ollama, llama.cpp, vLLM) through
//! `model.base_url`, e.g. `http://localhost:11434/v1`. The key is optional because local
//! servers need none. While the answer carries `tool_calls`, the assistant message is appended
//! as is, followed by one `tool` message per call.

use serde_json::{json, Value};

use super::{
    endpoint, garbage, http_client, post, post_json, resolve_key, system_prompt,
    turn_limit_failure, Failure, Progress,
};
use crate::manifest::kinds::ModelConfig;
use crate::manifest::secret::SecretContext;
use crate::tasks::agent::RunRequest;
use crate::tasks::tools::Toolbox;

const NAME: &str = "openai";
const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Runs the task's conversation until the model stops calling tools.
pub(crate) async fn run(
    model: &ModelConfig,
    secrets: &SecretContext,
    req: &RunRequest,
    tools: &Toolbox,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let key = resolve_key(model, secrets)?;
    let auth_header = key.as_ref().map(|k| k.header("Bearer ")).transpose()?;
    let url = endpoint(model, DEFAULT_BASE_URL, "chat/completions")?;
    let client = http_client(&req.egress)?;
    let tool_specs: Vec<Value> = tools
        .specs()
        .iter()
        .map(|t| {
            json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.input_schema
            }})
        })
        .collect();
    let mut messages = vec![
        json!({"role": "system", "content": system_prompt(req)}),
        json!({"role": "user", "content": req.prompt}),
    ];

    for turn in 1..=req.max_turns {
        let body = json!({
            "model": req.model,
            "max_tokens": req.max_tokens,
            "messages": messages,
            "tools": tool_specs,
        });
        let mut request = post(&client, &url)?.json(&body);
        if let Some(auth) = &auth_header {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        let answer = post_json(NAME, request, key.as_ref()).await?;

        let usage = answer.get("usage");
        let count = |field: &str| {
            usage
                .and_then(|u| u.get(field))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        progress.add_usage(count("prompt_tokens"), count("completion_tokens"));

        let choice = answer
            .pointer("/choices/0")
            .ok_or_else(|| garbage(NAME, "no choices"))?;
        let message = choice
            .get("message")
            .ok_or_else(|| garbage(NAME, "the choice has no message"))?;
        if let Some(text) = message.get("content").and_then(Value::as_str) {
            progress.emit_block(text);
        }
        let calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .filter(|calls| !calls.is_empty());
        let finish_reason = choice.get("finish_reason").and_then(Value::as_str);
        tracing::debug!(
            turn,
            finish_reason,
            tools = calls.map_or(0, Vec::len),
            "openai turn"
        );
        // Some compatible servers report "stop" even when they return tool calls; the calls
        // are what matters.
        let Some(calls) = calls else {
            if finish_reason == Some("tool_calls") {
                return Err(garbage(NAME, "finish_reason tool_calls without tool_calls"));
            }
            return Ok(());
        };

        messages.push(json!({
            "role": "assistant",
            "content": message.get("content").cloned().unwrap_or(Value::Null),
            "tool_calls": calls,
        }));
        for call in calls {
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| garbage(NAME, "a tool call has no id"))?;
            let function = call.get("function");
            let name = function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let arguments = function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .unwrap_or("{}");
            // The protocol has no error flag for tool results, so failures are said in words.
            let content = match serde_json::from_str::<Value>(arguments) {
                Ok(input) => tools
                    .call(name, &input)
                    .await
                    .unwrap_or_else(|e| format!("error: {e}")),
                Err(e) => format!("error: the arguments are not valid JSON: {e}"),
            };
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
        }
    }
    Err(turn_limit_failure(req.max_turns))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::manifest::kinds::{Provider, SecretRef};
    use crate::tasks::agent::{RunError, Usage};
    use crate::tasks::providers::testing::{fake_api, Fixture};

    const PATH: &str = "/v1/chat/completions";

    fn model(server: &str, key: Option<SecretRef>) -> ModelConfig {
        ModelConfig {
            provider: Provider::Openai,
            base_url: Some(format!("{server}/v1")),
            api_key: key,
            ..ModelConfig::default()
        }
    }

    fn tool_call_turn() -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant", "content": null,
                    "tool_calls": [{
                        "id": "call_abc", "type": "function",
                        "function": {
                            "name": "write_file",
                            "arguments": "{\"path\":\"notes/hello.txt\",\"content\":\"Hello, world!\\n\"}"
                        }
                    }, {
                        "id": "call_bad", "type": "function",
                        "function": {"name": "read_file", "arguments": "{not json"}
                    }]
                },
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 80, "completion_tokens": 15, "total_tokens": 95}
        })
    }

    #[tokio::test]
    async fn runs_tool_calls_to_the_final_answer() {
        let fx = Fixture::new();
        let final_turn = json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Done."},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 5}
        });
        let (server, seen) = fake_api(
            PATH,
            vec![
                (StatusCode::OK, tool_call_turn()),
                (StatusCode::OK, final_turn),
            ],
        )
        .await;
        let out = fx
            .run(&model(&server, Some(fx.key_file("sk-test"))), 5)
            .await
            .unwrap();

        assert_eq!(
            std::fs::read_to_string(fx.dir.path().join("notes/hello.txt")).unwrap(),
            "Hello, world!\n"
        );
        assert_eq!(out.output, "Done.");
        assert_eq!(
            out.usage,
            Usage {
                input_tokens: 200,
                output_tokens: 20
            }
        );

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let (headers, first) = &seen[0];
        assert_eq!(headers["authorization"], "Bearer sk-test");
        assert_eq!(first["model"], "test-model");
        assert_eq!(first["max_tokens"], 100);
        assert_eq!(first["messages"][0]["role"], "system");
        assert_eq!(first["messages"][1]["content"], "write a greeting");
        assert_eq!(first["tools"][2]["type"], "function");
        assert_eq!(first["tools"][2]["function"]["name"], "write_file");
        assert!(first["tools"][2]["function"]["parameters"].is_object());

        let messages = seen[1].1["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 5);
        assert_eq!(messages[2]["role"], "assistant");
        assert_eq!(messages[2]["tool_calls"][0]["id"], "call_abc");
        assert_eq!(
            messages[3],
            json!({"role": "tool", "tool_call_id": "call_abc",
                   "content": "wrote 14 bytes to notes/hello.txt"})
        );
        assert_eq!(messages[4]["tool_call_id"], "call_bad");
        let bad = messages[4]["content"].as_str().unwrap();
        assert!(
            bad.starts_with("error: the arguments are not valid JSON"),
            "{bad}"
        );
    }

    #[tokio::test]
    async fn no_key_sends_no_authorization() {
        let fx = Fixture::new();
        let answer = json!({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]});
        let (server, seen) = fake_api(PATH, vec![(StatusCode::OK, answer)]).await;
        let out = fx.run(&model(&server, None), 5).await.unwrap();
        assert_eq!(out.output, "hi");
        assert_eq!(out.usage, Usage::default());
        assert!(seen.lock().unwrap()[0].0.get("authorization").is_none());
    }

    #[tokio::test]
    async fn an_unresolvable_key_is_a_config_error_before_any_request() {
        let fx = Fixture::new();
        let (server, seen) = fake_api(PATH, vec![(StatusCode::OK, json!({}))]).await;
        let key = SecretRef::Ref("missing-key".to_owned());
        let err = fx.run(&model(&server, Some(key)), 5).await.unwrap_err();
        assert!(
            matches!(err, RunError::Config(ref m) if m == "model.api_key: stored secret \"missing-key\" does not exist"),
            "{err:?}"
        );
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn exceeding_max_turns_fails_the_task() {
        let fx = Fixture::new();
        let (server, seen) = fake_api(PATH, vec![(StatusCode::OK, tool_call_turn())]).await;
        let err = fx.run(&model(&server, None), 3).await.unwrap_err();
        let RunError::Failed { message, usage, .. } = err else {
            panic!("expected Failed, got {err:?}");
        };
        assert!(message.contains("after 3 turns"), "{message}");
        assert_eq!(usage.input_tokens, 240);
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn api_errors_become_provider_errors_without_the_key() {
        let fx = Fixture::new();
        let body = json!({"error": {"message": "Incorrect API key provided: Bearer sk-proj-secret", "type": "invalid_request_error"}});
        let (server, _) = fake_api(PATH, vec![(StatusCode::UNAUTHORIZED, body)]).await;
        let err = fx
            .run(&model(&server, Some(fx.key_file("sk-proj-secret"))), 5)
            .await
            .unwrap_err();
        let RunError::Provider { message, .. } = err else {
            panic!("expected Provider, got {err:?}");
        };
        assert_eq!(
            message,
            "openai: HTTP 401 Unauthorized: Incorrect API key provided: Bearer [redacted]"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_provider_error() {
        let fx = Fixture::new();
        // Bind and drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = fx
            .run(&model(&format!("http://127.0.0.1:{port}"), None), 5)
            .await
            .unwrap_err();
        assert!(
            matches!(err, RunError::Provider { ref message, .. } if message.starts_with("openai: request failed")),
            "{err:?}"
        );
    }
}
