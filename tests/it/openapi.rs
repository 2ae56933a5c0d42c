//! The OpenAPI document as served: public, current, and honest about scopes and auth.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{expect, token_manifest, TestServer};
use claw::auth::token;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_is_served_without_a_token_and_equals_the_committed_copy() {
    let s = TestServer::start().await;
    let response = s
        .request(Method::GET, "/api/v1/openapi.json", None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let text = response.text().await.unwrap();
    let served: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi.json"))
            .unwrap();
    assert!(
        text == committed,
        "schemas/openapi.json differs from what the server serves: regenerate it with \
         `cargo run -- openapi > schemas/openapi.json`"
    );
    // A token is not needed, and a bad one changes nothing.
    let with_bad_token = s
        .request(Method::GET, "/api/v1/openapi.json", Some("ocl_not_a_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(with_bad_token.status(), StatusCode::OK);
    s.stop().await;
}

/// Every operation the document says needs a token answers 401 without one, and 403 to a
/// `read` token when it declares a wider `x-required-scope` (the middleware refuses before
/// any handler runs, so nothing is changed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_scope_is_the_one_the_server_enforces() {
    let read = token::generate();
    let s = TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("tokens/viewer.yaml"),
            token_manifest("viewer", &read, "read", ""),
        )
        .unwrap();
    })
    .await;
    // The OpenAI-compatible routes are described too; they answer once switched on.
    expect(
        s.patch_config(
            &s.admin,
            serde_json::json!({"api": {"openai_compatible": true}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let doc = expect(
        s.request(Method::GET, "/api/v1/openapi.json", None)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(scope) = op["x-required-scope"].as_str() else {
                assert_eq!(op["security"], serde_json::json!([]), "{method} {path}");
                continue;
            };
            let method: Method = method.to_uppercase().parse().unwrap();
            let concrete = path.replace(['{', '}'], "");
            let anonymous = s
                .request(method.clone(), &concrete, None)
                .send()
                .await
                .unwrap();
            // The git hook answers 401 too: without a signature it needs a token.
            assert_eq!(
                anonymous.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token"
            );
            if scope != "read" {
                let response = s
                    .request(method.clone(), &concrete, Some(&read))
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .unwrap();
                let body = expect(response, StatusCode::FORBIDDEN).await;
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("this call needs {scope}")),
                    "{method} {path}: {body}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} operations checked");
    s.stop().await;
}
