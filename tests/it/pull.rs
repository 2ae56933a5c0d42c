//! Pull mode against real git: a bare repository as the remote over `file://`, a second clone
//! as another developer, and the server's clone under its data dir.

use std::path::PathBuf;
use std::time::Duration;

use claw::gitops::pull::PullOptions;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::Sha256;
use tempfile::TempDir;

use crate::harness::{expect, git, token_manifest, TestServer};

const SECRET: &str = "hook secret";

/// A bare remote seeded with initialised manifests, and a developer's clone of it.
struct Remote {
    _dir: TempDir,
    bare: PathBuf,
    dev: PathBuf,
    url: String,
    admin: String,
}

impl Remote {
    fn new() -> Remote {
        Self::with_manifests_in("")
    }

    /// Like `new`, with the manifests in the directory `sub` of the repository.
    fn with_manifests_in(sub: &str) -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("remote.git");
        let dev = dir.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        let admin = claw::manifest::scaffold::init(&dev.join(sub))
            .unwrap()
            .admin_token
            .unwrap();
        let url = format!("file://{}", bare.display());
        git(&dev, &["init", "-q", "-b", "main"]);
        git(&dev, &["add", "-A"]);
        git(&dev, &["commit", "-q", "-m", "initial"]);
        git(&dev, &["remote", "add", "origin", &url]);
        git(&dev, &["push", "-q", "origin", "main"]);
        Remote {
            _dir: dir,
            bare,
            dev,
            url,
            admin,
        }
    }

    /// The developer adds a read token `name`, commits and pushes; returns the commit.
    fn push_token(&self, name: &str) -> String {
        git(&self.dev, &["pull", "-q", "--rebase", "origin", "main"]);
        std::fs::write(
            self.dev.join(format!("tokens/{name}.yaml")),
            token_manifest(name, &claw::auth::token::generate(), "read", ""),
        )
        .unwrap();
        git(&self.dev, &["add", "-A"]);
        git(
            &self.dev,
            &["commit", "-q", "-m", &format!("add token {name}")],
        );
        git(&self.dev, &["push", "-q", "origin", "main"]);
        git(&self.dev, &["rev-parse", "HEAD"])
    }

    /// Starts a server pulling this remote, fetching every `interval`.
    async fn serve(&self, interval: Duration) -> TestServer {
        let mut pull = PullOptions::new(&self.url);
        pull.interval = interval;
        pull.webhook_secret = Some(SECRET.as_bytes().to_vec());
        let mut server = TestServer::start_custom(|_| {}, |o| o.git = Some(pull)).await;
        server.admin = self.admin.clone();
        server
    }
}

fn checkout(server: &TestServer) -> PathBuf {
    server.data.path().join("git/checkout")
}

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn hook(server: &TestServer, body: &str, signature: &str) -> reqwest::Response {
    server
        .request(Method::POST, "/api/v1/hooks/git", None)
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", signature)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn wait_for_revision(server: &TestServer, commit: &str) {
    server
        .wait_for("the pushed commit to be reconciled", |live| {
            live.summary.load().revision == commit
        })
        .await;
}

#[tokio::test]
async fn a_signed_git_hook_picks_up_a_pushed_commit() {
    let remote = Remote::new();
    let server = remote.serve(Duration::from_secs(3600)).await;
    let initial = git(&remote.dev, &["rev-parse", "HEAD"]);
    assert_eq!(server.live().summary.load().revision, initial);

    let pushed = remote.push_token("ci");
    let body = r#"{"ref":"refs/heads/main"}"#;
    let answer = expect(
        hook(&server, body, &sign(body.as_bytes(), SECRET)).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(answer["event"], "push");
    wait_for_revision(&server, &pushed).await;
    assert!(checkout(&server).join("tokens/ci.yaml").exists());
}

#[tokio::test]
async fn the_git_hook_checks_the_signature_or_needs_a_full_token() {
    let remote = Remote::new();
    let server = remote.serve(Duration::from_secs(3600)).await;
    let initial = git(&remote.dev, &["rev-parse", "HEAD"]);
    let pushed = remote.push_token("ci");
    let body = r#"{"ref":"refs/heads/main"}"#;

    expect(
        hook(&server, body, &sign(body.as_bytes(), "wrong")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect(
        hook(&server, body, "sha256=zz").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // The signature covers the body: a valid signature of another body is refused.
    expect(
        hook(&server, "{}", &sign(body.as_bytes(), SECRET)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Refused hooks fetched nothing.
    let fetched = git(&checkout(&server), &["rev-parse", "origin/main"]);
    assert_eq!(fetched, initial);

    // Without a signature: the normal authentication, and a full-scope token.
    let no_auth = server
        .request(Method::POST, "/api/v1/hooks/git", None)
        .send()
        .await
        .unwrap();
    expect(no_auth, StatusCode::UNAUTHORIZED).await;
    let reader = claw::auth::token::generate();
    git(&remote.dev, &["pull", "-q", "--rebase", "origin", "main"]);
    std::fs::write(
        remote.dev.join("tokens/reader.yaml"),
        token_manifest("reader", &reader, "read", ""),
    )
    .unwrap();
    git(&remote.dev, &["add", "-A"]);
    git(&remote.dev, &["commit", "-q", "-m", "reader"]);
    git(&remote.dev, &["push", "-q", "origin", "main"]);
    let with_reader = git(&remote.dev, &["rev-parse", "HEAD"]);
    assert_ne!(with_reader, pushed);
    let admin_call = server
        .request(Method::POST, "/api/v1/hooks/git", Some(&server.admin))
        .send()
        .await
        .unwrap();
    expect(admin_call, StatusCode::ACCEPTED).await;
    wait_for_revision(&server, &with_reader).await;
    let reader_call = server
        .request(Method::POST, "/api/v1/hooks/git", Some(&reader))
        .send()
        .await
        .unwrap();
    expect(reader_call, StatusCode::FORBIDDEN).await;

    // GitHub's ping when the hook is created.
    let ping = r#"{"zen":"Keep it logically awesome."}"#;
    let answer = server
        .request(Method::POST, "/api/v1/hooks/git", None)
        .header("X-GitHub-Event", "ping")
        .header("X-Hub-Signature-256", sign(ping.as_bytes(), SECRET))
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(expect(answer, StatusCode::ACCEPTED).await["event"], "ping");
}

#[tokio::test]
async fn the_interval_picks_up_a_pushed_commit() {
    let remote = Remote::new();
    let server = remote.serve(Duration::from_millis(200)).await;
    let pushed = remote.push_token("ci");
    wait_for_revision(&server, &pushed).await;
}

#[tokio::test]
async fn a_write_back_is_committed_and_pushed() {
    let remote = Remote::new();
    let server = remote.serve(Duration::from_secs(3600)).await;
    expect(
        server
            .patch_config(&server.admin, json!({"tasks": {"concurrency": 2}}))
            .await,
        StatusCode::OK,
    )
    .await;
    let local = git(&checkout(&server), &["rev-parse", "HEAD"]);
    assert_eq!(git(&remote.bare, &["rev-parse", "main"]), local);
    assert_eq!(
        git(&remote.bare, &["log", "-1", "--format=%B", "main"]),
        "PATCH /api/v1/config\n\nClaw-Token: admin"
    );
    assert_eq!(git(&remote.bare, &["rev-list", "--count", "main"]), "2");
}

#[tokio::test]
async fn a_rejected_push_is_rebased_and_retried() {
    let remote = Remote::new();
    // No fetch before the write: the server's clone is behind when it pushes.
    let server = remote.serve(Duration::from_secs(3600)).await;
    let pushed = remote.push_token("ci");
    expect(
        server
            .patch_config(&server.admin, json!({"tasks": {"concurrency": 2}}))
            .await,
        StatusCode::OK,
    )
    .await;
    let log = git(&remote.bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["PATCH /api/v1/config", "add token ci", "initial"]
    );
    // The write sits on top of the other commit, which is not rewritten.
    assert_eq!(git(&remote.bare, &["rev-parse", "main~1"]), pushed);
    let local = checkout(&server);
    assert_eq!(
        git(&local, &["rev-parse", "HEAD"]),
        git(&remote.bare, &["rev-parse", "main"])
    );
    assert!(local.join("tokens/ci.yaml").exists());
    let config = std::fs::read_to_string(local.join("configs/default.yaml")).unwrap();
    assert!(config.contains("concurrency: 2"), "{config}");
}

#[tokio::test]
async fn a_push_that_cannot_succeed_fails_the_call_and_changes_nothing() {
    let remote = Remote::new();
    let server = remote.serve(Duration::from_secs(3600)).await;
    let hook = remote.bare.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'pushes are frozen' >&2\nexit 1\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let local = checkout(&server);
    let head = git(&local, &["rev-parse", "HEAD"]);
    let config = std::fs::read_to_string(local.join("configs/default.yaml")).unwrap();

    let body = expect(
        server
            .patch_config(&server.admin, json!({"tasks": {"concurrency": 2}}))
            .await,
        StatusCode::BAD_GATEWAY,
    )
    .await;
    assert_eq!(body["error"]["code"], "git_push_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("pushes are frozen"), "{message}");

    assert_eq!(git(&local, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&local, &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(local.join("configs/default.yaml")).unwrap(),
        config
    );
    assert_eq!(git(&remote.bare, &["rev-parse", "main"]), head);
    let served = expect(
        server.get("/api/v1/config", &server.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_ne!(served["tasks"]["concurrency"], 2, "{served}");
}

#[tokio::test]
async fn a_git_url_the_egress_policy_refuses_is_never_fetched() {
    let data = tempfile::tempdir().unwrap();
    let mut options = crate::harness::options(data.path(), data.path());
    // A literal address: refused before git runs, without any lookup or connection.
    options.git = Some(PullOptions::new("http://169.254.169.254/claw.git"));
    let err = match claw::server::start(options).await {
        Ok(_) => panic!("started pulling from the metadata address"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("--git-url http://169.254.169.254/claw.git"),
        "{err}"
    );
    assert!(err.contains("refused"), "{err}");
    assert!(!data.path().join("git/checkout").exists());
}

#[tokio::test]
async fn a_git_url_with_credentials_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let mut options = crate::harness::options(data.path(), data.path());
    options.git = Some(PullOptions::new("https://me:secret@example.com/r.git"));
    let err = match claw::server::start(options).await {
        Ok(_) => panic!("started with credentials in the URL"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("credential helper"), "{err}");
    assert!(!err.contains("secret@"), "{err}");
}

#[tokio::test]
async fn a_restart_brings_the_existing_clone_up_to_date_first() {
    let remote = Remote::new();
    let server = remote.serve(Duration::from_secs(3600)).await;
    let (_unused, data) = server.stop().await;
    let pushed = remote.push_token("ci");

    let mut options = crate::harness::options(data.path(), data.path());
    let mut pull = PullOptions::new(&remote.url);
    pull.interval = Duration::from_secs(3600);
    options.git = Some(pull);
    let server = claw::server::start(options).await.unwrap();
    assert_eq!(server.live.summary.load().revision, pushed);
    server.shutdown().await;
}

#[test]
fn serve_refuses_credentials_in_the_git_url_and_git_flags_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claw"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--git-url", "https://me:hunter2@example.com/r.git"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = crate::harness::stderr(&out);
    assert!(err.contains("credential helper"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claw"))
        .args(["serve", "--git-branch", "dev"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::harness::stderr(&out).contains("--git-url"));
}

#[tokio::test]
async fn a_failed_fetch_is_a_status_error_until_a_fetch_succeeds() {
    let remote = Remote::new();
    let server = remote.serve(Duration::from_secs(3600)).await;
    let moved = remote.bare.with_extension("moved");
    std::fs::rename(&remote.bare, &moved).unwrap();
    let admin = server
        .request(Method::POST, "/api/v1/hooks/git", Some(&server.admin))
        .send()
        .await
        .unwrap();
    expect(admin, StatusCode::ACCEPTED).await;
    let has_pull_error = |live: &claw::live::Live| {
        live.summary
            .load()
            .errors
            .iter()
            .any(|d| d.message.contains("pull mode: cannot update"))
    };
    server
        .wait_for("the fetch error in the status", has_pull_error)
        .await;

    std::fs::rename(&moved, &remote.bare).unwrap();
    let pushed = remote.push_token("ci");
    let admin = server
        .request(Method::POST, "/api/v1/hooks/git", Some(&server.admin))
        .send()
        .await
        .unwrap();
    expect(admin, StatusCode::ACCEPTED).await;
    wait_for_revision(&server, &pushed).await;
    assert!(!has_pull_error(server.live()));
}

#[tokio::test]
async fn git_path_serves_and_writes_back_a_subdirectory() {
    let remote = Remote::with_manifests_in("deploy/claw");
    std::fs::write(remote.dev.join("README.md"), "not a manifest\n").unwrap();
    git(&remote.dev, &["add", "-A"]);
    git(&remote.dev, &["commit", "-q", "-m", "readme"]);
    git(&remote.dev, &["push", "-q", "origin", "main"]);
    let mut pull = PullOptions::new(&remote.url);
    pull.interval = Duration::from_secs(3600);
    pull.path = Some("deploy/claw".into());
    let mut server = TestServer::start_custom(|_| {}, |o| o.git = Some(pull)).await;
    server.admin = remote.admin.clone();
    assert!(server.live().summary.load().errors.is_empty());

    expect(
        server
            .patch_config(&server.admin, json!({"tasks": {"concurrency": 2}}))
            .await,
        StatusCode::OK,
    )
    .await;
    let changed = git(&remote.bare, &["show", "--name-only", "--format=", "main"]);
    assert_eq!(changed, "deploy/claw/configs/default.yaml");
}
