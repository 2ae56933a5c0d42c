//! Webhooks end to end: subscriptions written back as manifests (secrets stored apart), the
//! tutorial's Node receiver verifying our signatures unchanged, deliveries listed and redelivered.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use claw::client::Client;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::harness::{expect, TestServer};

const SECRET: &str = "tutorial-secret-5c1e7a";

fn command_config(script: &str) -> String {
    format!(
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n    provider: command\n    command: [\"sh\", \"-c\", {}]\n",
        serde_json::to_string(script).unwrap()
    )
}

async fn start(script: &str) -> TestServer {
    let text = command_config(script);
    TestServer::start_with(move |dir| {
        std::fs::write(dir.join("configs/default.yaml"), text).unwrap()
    })
    .await
}

async fn post_json(s: &TestServer, path: &str, body: Value) -> reqwest::Response {
    s.request(Method::POST, path, Some(&s.admin))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Every file below `dir`, read as bytes (for "the secret is nowhere" checks).
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_manifests_and_the_secret_is_stored_apart() {
    let s = start("echo done").await;
    let r = post_json(
        &s,
        "/api/v1/webhooks",
        json!({"url": "https://your-server.com/openclaw-webhook", "events": ["task.completed", "task.failed", "skill.installed"], "secret": SECRET}),
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(!text.contains(SECRET));
    let created: Value = serde_json::from_str(&text).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["url"], "https://your-server.com/openclaw-webhook");
    assert_eq!(
        created["events"],
        json!(["task.completed", "task.failed", "skill.installed"])
    );
    assert_eq!(created["enabled"], true);
    assert!(created["created_at"].is_string());
    assert_eq!(created["status"]["ready"], true, "{created}");

    let manifest = std::fs::read_to_string(s.path(&format!("webhooks/{id}.yaml"))).unwrap();
    assert!(manifest.contains("ref: webhook-"), "{manifest}");
    assert!(!manifest.contains(SECRET));
    let secrets = crate::harness::stored_secrets(s.data.path()).await;
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].1, SECRET);
    if !crate::postgres::selected() {
        use std::os::unix::fs::PermissionsExt;
        let file = s.data.path().join("secrets").join(&secrets[0].0);
        assert_eq!(
            std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let list = expect(s.get("/api/v1/webhooks", &s.admin).await, StatusCode::OK).await;
    assert_eq!(list["total"], 1);
    assert!(!list.to_string().contains(SECRET));

    // Unknown events are refused, and nothing is written.
    let r = post_json(
        &s,
        "/api/v1/webhooks",
        json!({"url": "https://x.example/h", "events": ["task.exploded"], "secret": "s"}),
    )
    .await;
    let body = expect(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"]["code"], "validation_failed");
    assert!(
        body["error"]["details"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("events"),
        "{body}"
    );
    let r = post_json(
        &s,
        "/api/v1/webhooks",
        json!({"url": "https://x.example/h", "events": ["task.failed"]}),
    )
    .await;
    expect(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(std::fs::read_dir(s.path("webhooks")).unwrap().count(), 1);
    assert_eq!(
        crate::harness::stored_secrets(s.data.path()).await.len(),
        1,
        "refused writes leave no secret behind"
    );

    // PATCH events and the secret: a new stored secret, the old one gone.
    let r = s
        .request(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&s.admin),
        )
        .json(&json!({"events": ["*"], "secret": "rotated-secret-99"}))
        .send()
        .await
        .unwrap();
    let patched = expect(r, StatusCode::OK).await;
    assert_eq!(patched["events"], json!(["*"]));
    let secrets = crate::harness::stored_secrets(s.data.path()).await;
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].1, "rotated-secret-99");

    let r = s
        .request(
            Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            Some(&s.admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!s.path(&format!("webhooks/{id}.yaml")).exists());
    assert!(crate::harness::stored_secrets(s.data.path())
        .await
        .is_empty());
    expect(
        s.get(&format!("/api/v1/webhooks/{id}"), &s.admin).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let (manifests, data) = s.stop().await;
    for (path, bytes) in all_bytes(manifests.path())
        .into_iter()
        .chain(all_bytes(data.path()))
    {
        assert!(
            !contains(&bytes, SECRET),
            "the secret is in {}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_secret_makes_only_that_webhook_not_ready() {
    let s = start("echo done").await;
    s.write(
        "webhooks/broken.yaml",
        "apiVersion: openclaw.dev/v1\nkind: Webhook\nmetadata: {name: broken}\nspec:\n  url: https://a.example/h\n  events: [\"*\"]\n  secret: {fromEnv: CLAW_TEST_SURELY_UNSET_SECRET}\n",
    );
    let r = post_json(&s, "/api/v1/webhooks", json!({"name": "fine", "url": "https://b.example/h", "events": ["task.completed"], "secret": "x"})).await;
    expect(r, StatusCode::CREATED).await;
    s.wait_for("the broken webhook's status", |l| {
        l.summary
            .load()
            .errors
            .iter()
            .any(|e| e.message.contains("SecretUnavailable"))
    })
    .await;
    let broken = expect(
        s.get("/api/v1/webhooks/broken", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(broken["status"]["ready"], false);
    assert_eq!(broken["status"]["reason"], "SecretUnavailable");
    assert!(broken["status"]["message"]
        .as_str()
        .unwrap()
        .contains("CLAW_TEST_SURELY_UNSET_SECRET"));
    let fine = expect(
        s.get("/api/v1/webhooks/fine", &s.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fine["status"]["ready"], true);
    s.stop().await;
}

/// A stand-in for Slack's incoming webhook: forwards each message's text.
async fn fake_slack() -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/slack",
        post(move |Json(body): Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body["text"].as_str().unwrap_or_default().to_owned());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/slack"), rx)
}

/// The tutorial's receiver under Node; killed when dropped.
struct Receiver(std::process::Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_receiver(secret: &str, slack: &str) -> Receiver {
    use std::io::BufRead;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/slack-notifier");
    crate::harness::npm_ci(&dir);
    let mut child = std::process::Command::new("node")
        .arg("server.js")
        .current_dir(&dir)
        .env("OPENCLAW_WEBHOOK_SECRET", secret)
        .env("SLACK_WEBHOOK_URL", slack)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node is needed for the slack-notifier test");
    let stdout = child.stdout.take().unwrap();
    let receiver = Receiver(child);
    let line = std::io::BufReader::new(stdout).lines().next();
    assert_eq!(
        line.and_then(Result::ok).as_deref(),
        Some("Webhook receiver on port 4000"),
        "the receiver did not start (is port 4000 free?)"
    );
    receiver
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorials_slack_notifier_verifies_our_signature_unchanged() {
    let (slack, mut messages) = fake_slack().await;
    let _receiver = tokio::task::spawn_blocking({
        let slack = slack.clone();
        move || start_receiver("your-secret-here", &slack)
    })
    .await
    .unwrap();
    let s = start("cat >/dev/null; echo ok").await;
    // Step 2, exactly as the tutorial shows it.
    let r = post_json(
        &s,
        "/api/v1/webhooks",
        json!({"url": "http://localhost:4000/openclaw-webhook", "events": ["task.completed", "task.failed"], "secret": "your-secret-here"}),
    )
    .await;
    expect(r, StatusCode::CREATED).await;
    // A subscriber with the wrong secret is refused by the receiver (401).
    let r = post_json(
        &s,
        "/api/v1/webhooks",
        json!({"name": "wrong-secret", "url": "http://localhost:4000/openclaw-webhook", "events": ["task.completed"], "secret": "not-the-secret"}),
    )
    .await;
    expect(r, StatusCode::CREATED).await;

    let c = Client::new(s.base.clone(), s.admin.clone());
    for prompt in [
        "List the files in the current directory",
        "Say \"hi\" to Zoë 👋\nand then \\ \u{1} tabs\there — 日本語 </script> \u{2028}",
    ] {
        let task = c.create_task(prompt, json!({})).await.unwrap();
        let id = task["id"].as_str().unwrap().to_owned();
        let result = c.wait_for_completion(&id).await.unwrap();
        assert_eq!(result["status"], "completed");
        let text = tokio::time::timeout(Duration::from_secs(15), messages.recv())
            .await
            .expect("a Slack message")
            .unwrap();
        let duration = c.task(&id).await.unwrap()["duration_ms"].as_i64().unwrap();
        assert_eq!(
            text,
            format!("OpenClaw task completed: \"{prompt}\" ({duration}ms)")
        );
    }

    // The refused deliveries are recorded by the worker; nothing signals the test, so poll the
    // API with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let deliveries = loop {
        let found = expect(
            s.get("/api/v1/webhooks/wrong-secret/deliveries", &s.admin)
                .await,
            StatusCode::OK,
        )
        .await;
        let recorded = found["items"].as_array().is_some_and(|items| {
            items.len() == 2
                && items
                    .iter()
                    .all(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
        });
        if recorded || tokio::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let attempt = &deliveries["items"][0]["attempts"][0];
    assert_eq!(attempt["status_code"], 401, "{deliveries}");
    assert!(attempt["response_body"]
        .as_str()
        .unwrap()
        .contains("Invalid signature"));
    // The redeliver call is routed (a delivery still being retried is not redelivered; the
    // store's tests cover that): an unknown delivery is our 404, not "no route".
    let r = s
        .request(
            Method::POST,
            "/api/v1/webhooks/wrong-secret/deliveries/dlv_nope/redeliver",
            Some(&s.admin),
        )
        .send()
        .await
        .unwrap();
    let body = expect(r, StatusCode::NOT_FOUND).await;
    assert_eq!(
        body["error"]["message"],
        "delivery dlv_nope of webhook wrong-secret not found"
    );
    s.stop().await;
}

/// On PostgreSQL a webhook secret given to the API is sealed in the database; a replica given
/// another key cannot open it, and its delivery attempts say which secret and which keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_key_names_the_secret_it_cannot_open() {
    if crate::postgres::bin_dir().is_none() {
        eprintln!("skipped: PostgreSQL is not installed");
        return;
    }
    let url = crate::postgres::fresh_database();
    let keys = tempfile::tempdir().unwrap();
    let key_file = |name: &str, byte: u8| {
        use base64::Engine as _;
        let path = keys.path().join(name);
        std::fs::write(
            &path,
            base64::engine::general_purpose::STANDARD.encode([byte; 32]),
        )
        .unwrap();
        path
    };
    let (key_a, key_b) = (key_file("a", 1), key_file("b", 2));
    let s = TestServer::start_custom(
        |_| {},
        |o| {
            o.database_url = Some(url.clone());
            o.secret_key_file = Some(key_a.clone());
        },
    )
    .await;
    let r = s
        .request(Method::POST, "/api/v1/webhooks", Some(&s.admin))
        .json(&json!({"name": "hook", "url": "http://127.0.0.1:9/h", "events": ["*"], "secret": "s3cret"}))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::CREATED).await;
    let admin = s.admin.clone();
    let (manifests, data) = s.stop().await;

    let mut options = crate::harness::options(manifests.path(), data.path());
    options.database_url = Some(url);
    options.secret_key_file = Some(key_b);
    let server = claw::server::start(options).await.unwrap();
    let mut recorded = server.webhooks.recorded();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/webhooks/hook/test", server.url()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::ACCEPTED).await;
    tokio::time::timeout(crate::harness::BOUND, recorded.wait_for(|n| *n >= 1))
        .await
        .expect("an attempt recorded")
        .unwrap();
    let r = http
        .get(format!("{}/api/v1/webhooks/hook/deliveries", server.url()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let deliveries = expect(r, StatusCode::OK).await;
    let error = deliveries["items"][0]["attempts"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("stored secret \"webhook-hook-") && error.contains("sealed with key"),
        "{deliveries}"
    );
    assert!(!error.contains("s3cret"));
    server.shutdown().await;
}

/// At start-up webhooks are applied in one batch: one with a secret that cannot be resolved
/// fails alone, the others around it are Ready and in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_webhooks_applies_all_but_the_one_whose_secret_is_missing() {
    let s = TestServer::start_with(|dir| {
        std::fs::write(dir.join("hook-secret.txt"), "s3cret").unwrap();
        let doc = |name: &str, secret: &str| {
            format!("---\napiVersion: openclaw.dev/v1\nkind: Webhook\nmetadata: {{name: {name}}}\nspec:\n  url: https://{name}.example/h\n  events: [\"*\"]\n  secret: {secret}\n")
        };
        let file = [
            doc("first", "{fromFile: hook-secret.txt}"),
            doc("broken", "{fromEnv: CLAW_TEST_SURELY_UNSET_SECRET}"),
            doc("last", "{fromFile: hook-secret.txt}"),
        ]
        .concat();
        std::fs::create_dir_all(dir.join("webhooks")).unwrap();
        std::fs::write(dir.join("webhooks/all.yaml"), file).unwrap();
    })
    .await;
    for (name, ready, reason) in [
        ("first", true, "Applied"),
        ("broken", false, "SecretUnavailable"),
        ("last", true, "Applied"),
    ] {
        let v = expect(
            s.get(&format!("/api/v1/webhooks/{name}"), &s.admin).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(v["status"]["ready"], ready, "{name}: {v}");
        assert_eq!(v["status"]["reason"], reason, "{name}: {v}");
    }
    let store = crate::harness::open_store(s.data.path()).await;
    let mut names: Vec<String> = claw::store::webhooks::list(&store)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    store.close().await;
    names.sort();
    assert_eq!(names, ["first", "last"]);
    s.stop().await;
}
