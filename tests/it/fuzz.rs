//! Property-based fuzzing (proptest) of the manifest loader and the API's input parsing: no
//! panic, bounded work, every rejection a clear error (a Diagnostic with file and line; a JSON
//! error body, never a 5xx). Runs a modest number of cases in `cargo test`; for a longer run:
//! `PROPTEST_CASES=20000 cargo test --test it fuzz::`.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::Value;

use claw::manifest::load::parse_file;
use claw::manifest::yaml::normalize_text;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Pieces YAML is made of, including the awkward ones (anchors, aliases, merges, flow
/// collections, quotes, tags, directives, document markers, every line ending, a BOM).
fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("apiVersion: openclaw.dev/v1\n".to_owned()),
        Just("kind: Token\n".to_owned()),
        Just("kind: Config\n".to_owned()),
        Just("metadata:\n  name: x\n".to_owned()),
        Just("spec:\n".to_owned()),
        Just("  scope: read\n".to_owned()),
        Just("---\n".to_owned()),
        Just("...\n".to_owned()),
        Just("a: &a [x, y, z]\n".to_owned()),
        Just("b: [*a, *a, *a, *a]\n".to_owned()),
        Just("<<: *a\n".to_owned()),
        Just("- ".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(": ".to_owned()),
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("# comment\n".to_owned()),
        Just("!!str ".to_owned()),
        Just("%YAML 1.2\n".to_owned()),
        Just("|\n  text\n".to_owned()),
        Just("\r".to_owned()),
        Just("\r\n".to_owned()),
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        Just("\t".to_owned()),
        Just("\u{feff}".to_owned()),
        "[a-z0-9_.-]{1,8}".prop_map(|s| s),
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..120).prop_map(|v| v.concat())
}

fn check_file(text: String) -> Result<(), TestCaseError> {
    // Positions count lines of the text as read: CR-only line ends are line ends.
    let text = normalize_text(text);
    let lines = text.lines().count().max(1) + 1;
    let load = parse_file(Path::new("f.yaml"), &text);
    for d in &load.diagnostics {
        prop_assert_eq!(d.file.as_path(), Path::new("f.yaml"));
        prop_assert!(
            d.line >= 1 && d.line <= lines,
            "line {} of {}",
            d.line,
            lines
        );
        prop_assert!(!d.message.is_empty());
    }
    Ok(())
}

#[test]
fn the_loader_survives_arbitrary_bytes() {
    let mut runner = TestRunner::new(config(128));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..2048), |bytes| {
            check_file(String::from_utf8_lossy(&bytes).into_owned())
        })
        .unwrap();
}

#[test]
fn the_loader_survives_yamlish_text() {
    let mut runner = TestRunner::new(config(192));
    runner.run(&yamlish(), check_file).unwrap();
}

#[test]
fn alias_chains_stay_within_the_bounds() {
    // Any depth and fan-out of alias chains, repeated over documents: bounded, no panic.
    let mut runner = TestRunner::new(config(64));
    let strategy = (1usize..12, 1usize..12, 1usize..60);
    runner
        .run(&strategy, |(depth, fanout, docs)| {
            let mut doc = String::from("l0: &l0 [x]\n");
            for i in 1..depth {
                let refs = vec![format!("*l{}", i - 1); fanout].join(", ");
                doc.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
            }
            let text = vec![doc; docs].join("---\n");
            let started = std::time::Instant::now();
            let _ = claw::manifest::yaml::parse_documents(&text);
            prop_assert!(started.elapsed() < std::time::Duration::from_secs(10));
            Ok(())
        })
        .unwrap();
}

/// A JSON error body as SPEC §4 says: `{"error": {"code", "message", ...}}`.
fn is_error_shape(body: &Value) -> bool {
    body["error"]["code"].is_string() && body["error"]["message"].is_string()
}

#[test]
fn the_api_answers_arbitrary_input_with_4xx_json_errors() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Outbound connections stay on loopback whatever the input: the model server is a
    // closed loopback port, and no fuzzed request can write the Config (If-Match never holds).
    let s = rt.block_on(crate::harness::TestServer::start_with(|dir| {
        std::fs::write(
            dir.join("configs/default.yaml"),
            "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: openai\n    name: m\n    base_url: http://127.0.0.1:9/v1\n  rate_limit:\n    requests_per_minute: 1000000\n    burst: 1000000\n",
        )
        .unwrap();
    }));
    let send = |method: Method, path: String, body: Option<Vec<u8>>| {
        let mut r = s
            .request(method, &path, Some(&s.admin))
            .header("if-match", format!("\"{}\"", "0".repeat(64)));
        if let Some(body) = body {
            r = r.header("content-type", "application/json").body(body);
        }
        rt.block_on(async move {
            let response = r.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, text))
        })
    };
    let check = |what: &str, (status, text): (reqwest::StatusCode, String)| {
        prop_assert!(!status.is_server_error(), "{what}: {status} {text}");
        if status.is_client_error() {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            prop_assert!(is_error_shape(&body), "{what}: {status} {text}");
        }
        Ok(())
    };

    let query = prop::collection::vec(
        prop_oneof![
            Just("limit=".to_owned()),
            Just("offset=".to_owned()),
            Just("status=".to_owned()),
            Just("created_after=".to_owned()),
            Just("created_before=".to_owned()),
            Just("q=".to_owned()),
            Just("kind=".to_owned()),
            Just("&".to_owned()),
            Just("%".to_owned()),
            Just("%FF".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("-1".to_owned()),
            "[0-9]{1,25}".prop_map(|s| s),
            "[ -~]{0,6}".prop_map(|s| s.replace([' ', '#'], "+")),
        ],
        0..12,
    )
    .prop_map(|v| v.concat());
    let mut runner = TestRunner::new(config(128));
    runner
        .run(&query, |q| {
            for path in [
                "/api/v1/tasks",
                "/api/v1/resources",
                "/api/v1/webhooks",
                "/api/v1/skills",
            ] {
                let answer =
                    send(Method::GET, format!("{path}?{q}"), None).map_err(TestCaseError::fail)?;
                check(&format!("GET {path}?{q}"), answer)?;
            }
            Ok(())
        })
        .unwrap();

    let json_value = prop::collection::vec(
        prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("\"prompt\"".to_owned()),
            Just("\"options\"".to_owned()),
            Just("\"timeout\"".to_owned()),
            Just("\"model\"".to_owned()),
            Just("\"rate_limit\"".to_owned()),
            Just("null".to_owned()),
            Just("1e999".to_owned()),
            Just("-0".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("\"\\u0000\"".to_owned()),
            "\"[ -~]{0,10}\"".prop_map(|s| s),
            any::<u8>().prop_map(|b| (b as char).to_string()),
        ],
        0..40,
    )
    .prop_map(|v| v.concat().into_bytes());
    let mut runner = TestRunner::new(config(128));
    runner
        .run(&json_value, |body| {
            // POST /tasks may create tasks (they fail on the closed loopback port).
            for (method, path) in [
                (Method::POST, "/api/v1/tasks"),
                (Method::PATCH, "/api/v1/config"),
            ] {
                let answer = send(method.clone(), path.to_owned(), Some(body.clone()))
                    .map_err(TestCaseError::fail)?;
                check(
                    &format!("{method} {path} {}", String::from_utf8_lossy(&body)),
                    answer,
                )?;
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(s.stop());
}
