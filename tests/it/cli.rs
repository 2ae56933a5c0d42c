//! The CLI verbs as a CI pipeline runs them: exit codes and output formats.

use std::path::Path;

use crate::harness::{claw_in, sigterm, spawn_serve, stderr, stdout};

fn stdout_of(o: &std::process::Output) -> String {
    stdout(o)
}

fn init(dir: &Path) {
    let out = claw_in(dir, &["init", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn validate_exit_codes_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("manifests");
    init(&root);
    let ok = claw_in(&root, &["validate", root.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    std::fs::write(
        root.join("tokens/bad.yaml"),
        "apiVersion: openclaw.dev/v1\nkind: Token\nmetadata:\n  name: bad\nspec:\n  scope: admin\n---\nkind: Gizmo\n",
    )
    .unwrap();
    let text = claw_in(&root, &["validate", root.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(1));
    let out = stdout(&text);
    let file = root.join("tokens/bad.yaml").display().to_string();
    assert!(
        out.contains(&format!(
            "{file}:6:3: Token/bad: /spec/scope: must be one of: full, read, execute"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{file}:5:1: Token/bad: missing required field \"sha256\""
        )) || out.contains("sha256"),
        "{out}"
    );
    assert!(out.contains("unknown kind \"Gizmo\""), "{out}");
    assert!(out.lines().count() >= 3, "all errors in one pass:\n{out}");

    let json = claw_in(
        &root,
        &["validate", root.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(json.status.code(), Some(1));
    for line in stdout(&json).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["file"].is_string() && v["line"].is_u64() && v["message"].is_string(),
            "{v}"
        );
    }
    let github = claw_in(
        &root,
        &["validate", root.to_str().unwrap(), "--format", "github"],
    );
    assert!(
        stdout(&github)
            .lines()
            .all(|l| l.starts_with("::error file=")),
        "{}",
        stdout(&github)
    );

    let missing = claw_in(&root, &["validate", "/nonexistent/dir"]);
    assert_eq!(missing.status.code(), Some(2));
    let usage = claw_in(&root, &["validate", "--format", "xml"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn validate_a_single_file_skips_the_whole_tree_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("skill.yaml");
    std::fs::write(
        &file,
        "apiVersion: openclaw.dev/v1\nkind: Skill\nmetadata: {name: x}\nspec: {}\n",
    )
    .unwrap();
    let out = claw_in(dir.path(), &["validate", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn diff_reports_changes_like_diff_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m");
    let data = dir.path().join("data");
    init(&root);
    let args = ["diff", "--data", data.to_str().unwrap()];
    let out = claw_in(&root, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("+ Config/default") && text.contains("+ Token/admin"),
        "{text}"
    );

    // Apply with a real server, then nothing is left to change.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = claw::server::start(crate::harness::options(&root, &data))
            .await
            .unwrap();
        server.shutdown().await;
    });
    let out = claw_in(&root, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let created = claw_in(
        &root,
        &["token", "create", "--name", "dash", "--scope", "read"],
    );
    assert!(created.status.success());
    let out = claw_in(&root, &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("+ Token/dash"), "{}", stdout(&out));

    std::fs::write(root.join("broken.yaml"), "kind: [").unwrap();
    assert_eq!(claw_in(&root, &args).status.code(), Some(2));
}

#[test]
fn token_create_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m");
    init(&root);
    let out = claw_in(&root, &["token", "create", "--name", "my-integration"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = claw_in(
        &root,
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "execute",
            "--expires",
            "30d",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let dup = claw_in(&root, &["token", "create", "--name", "ci"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));
    let bad = claw_in(&root, &["token", "create", "--name", "Bad Name"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("/metadata/name"), "{}", stderr(&bad));

    let list = claw_in(&root, &["token", "list", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&list)).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "ci", "my-integration"]);
    let ci = &rows[1];
    assert_eq!(ci["scope"], "execute");
    assert!(ci["expires"].is_string());

    let out = claw_in(&root, &["token", "revoke", "--name", "my-integration"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = claw_in(&root, &["token", "revoke", "--name", "my-integration"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("not found"));
}

#[test]
fn serve_initialises_prints_the_token_once_answers_status_and_stops_on_sigterm() {
    use std::io::{BufRead, Read};
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, _lines) = spawn_serve(dir.path());
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut token = String::new();
    stdout.read_line(&mut token).unwrap();
    let token = token.trim().to_owned();
    assert!(
        claw::auth::token::is_well_formed(&token),
        "stdout carries the token: {token:?}"
    );

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_claw"))
        .arg("status")
        .env("CLAW_URL", &url)
        .env("CLAW_TOKEN", &token)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout_of(&status);
    assert!(text.contains(": ok (up"), "{text}");
    assert!(text.contains("Config 1/1 ready, Token 1/1 ready"), "{text}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_claw"))
        .arg("status")
        .env("CLAW_URL", &url)
        .env("CLAW_TOKEN", claw::auth::token::generate())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("401"), "{}", stderr(&refused));

    let exit = sigterm(&mut child);
    assert!(exit.success(), "graceful exit on SIGTERM: {exit:?}");

    // A second start keeps the manifests and prints no token.
    let (mut again, _, _lines) = spawn_serve(dir.path());
    let exit = sigterm(&mut again);
    assert!(exit.success());
    let mut rest = String::new();
    again
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert_eq!(
        rest, "",
        "the token is printed once, on initialisation only"
    );
}

/// A database URL that cannot be used is named without its password, and `serve` stops.
#[test]
fn a_bad_database_url_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m");
    init(&root);
    let data = dir.path().join("data");
    for url in [
        // Nothing listens on port 1.
        "postgres://claw:hunter2@127.0.0.1:1/claw",
        "mysql://claw:hunter2@127.0.0.1:1/claw",
    ] {
        let out = claw_in(
            &root,
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data",
                data.to_str().unwrap(),
                "--database-url",
                url,
            ],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("claw:***@127.0.0.1:1/claw"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

/// On PostgreSQL a replica needs the secrets key: without it, `serve` refuses to start and
/// says what to give it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_on_postgresql_without_the_secret_key_refuses_to_start() {
    if crate::postgres::bin_dir().is_none() {
        eprintln!("skipped: PostgreSQL is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m");
    init(&root);
    let mut options = crate::harness::options(&root, &dir.path().join("data"));
    options.database_url = Some(crate::postgres::fresh_database());
    options.secret_key_file = None;
    std::env::remove_var("CLAW_SECRET_KEY");
    let err = match claw::server::start(options).await {
        Ok(_) => panic!("started without a key"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("CLAW_SECRET_KEY") && err.contains("--secret-key-file"),
        "{err}"
    );
}
