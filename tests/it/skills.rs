//! Skills: registries on disk and over HTTP, git and archive sources, upgrades, uninstall,
//! drift repair at resync, hostile archives, and the API writing Skill manifests.

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::extract::Path as UrlPath;
use axum::http::StatusCode as AxumStatus;
use axum::routing::get;
use axum::Router;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{claw_in, expect, stdout, TestServer};

/// A skill directory named `name` at `version`, with a second file.
fn skill_dir(root: &Path, name: &str, version: &str, body: &str) -> PathBuf {
    let dir = root.join(format!("{name}-{version}"));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(
        dir.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: The {name} skill\nversion: {version}\n---\n# {name}\n{body}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("docs/usage.md"), format!("usage of {version}\n")).unwrap();
    dir
}

/// A registry dir holding `name` at each of `versions`.
fn registry(root: &Path, name: &str, versions: &[&str]) -> PathBuf {
    let reg = root.join("registry");
    for v in versions {
        let dir = skill_dir(root, name, v, &format!("instructions for {v}"));
        claw::skills::pack::pack(&dir, &reg, None).unwrap();
    }
    reg
}

fn skill_manifest(name: &str, spec: &str) -> String {
    format!("apiVersion: openclaw.dev/v1\nkind: Skill\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// The version recorded for an installed skill.
fn installed_version(data: &Path, name: &str) -> Option<String> {
    let text = std::fs::read(data.join("skills").join(name).join(".claw-skill.json")).ok()?;
    let v: Value = serde_json::from_slice(&text).ok()?;
    v["version"].as_str().map(str::to_owned)
}

/// The current problem reported for a skill, as `Reason: message`.
fn problem(live: &claw::live::Live, name: &str) -> Option<String> {
    live.summary
        .load()
        .errors
        .iter()
        .find(|d| d.name.as_deref() == Some(name))
        .map(|d| d.message.clone())
}

/// True once `name` is installed at `version` and its status says so (the install is slow
/// work: the files land first, then the reconciler records the outcome).
fn ready_at(live: &claw::live::Live, data: &Path, name: &str, version: &str) -> bool {
    installed_version(data, name).as_deref() == Some(version)
        && live
            .resources
            .status(claw::manifest::Kind::Skill, name)
            .is_some_and(|st| st.ready && st.message.contains(version))
}

/// True once no skill is installed and no install or removal is under way.
fn skills_dir_empty(data: &Path) -> bool {
    std::fs::read_dir(data.join("skills")).is_ok_and(|d| d.count() == 0)
}

/// Serves `dir` over loopback HTTP; returns the base URL.
async fn serve_dir(dir: PathBuf) -> String {
    let app = Router::new().route(
        "/{*path}",
        get(move |UrlPath(p): UrlPath<String>| {
            let dir = dir.clone();
            async move {
                match std::fs::read(dir.join(p)) {
                    Ok(bytes) => Ok(bytes),
                    Err(_) => Err(AxumStatus::NOT_FOUND),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A server whose API may set local registries and sources: these tests are about skills, and
/// a local registry is a manifest-only setting (SPEC §5a) the operator opts into.
async fn start() -> TestServer {
    TestServer::start_custom(|_| {}, |o| o.allow_api_privileged = true).await
}

async fn set_registry(s: &TestServer, registry: &str) {
    expect(
        s.patch_config(&s.admin, json!({"skills": {"registry": registry}}))
            .await,
        StatusCode::OK,
    )
    .await;
}

/// The `skill.*` events in the outbox, once there are `n` of them: an event is written when
/// the loop records a finished job, a moment after its files are in place. Fails after
/// `BOUND`.
async fn outbox(data: &Path, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + crate::harness::BOUND;
    loop {
        let store = crate::harness::open_store(data).await;
        let events = claw::store::outbox::after(&store, 0, 1000).await.unwrap();
        store.close().await;
        let skills: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_str(&e.payload).unwrap())
            .filter(|e: &Value| e["event"].as_str().unwrap().starts_with("skill."))
            .collect();
        if skills.len() >= n || tokio::time::Instant::now() >= deadline {
            return skills;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn registry_on_disk_installs_latest_exact_and_ranges_then_uninstalls() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(
        tmp.path(),
        "demo",
        &["1.0.0", "1.2.0", "1.10.0", "2.0.0-beta.1"],
    );
    let s = start().await;
    set_registry(&s, reg.to_str().unwrap()).await;
    let data = s.data.path().to_path_buf();

    s.write(
        "skills/demo.yaml",
        &skill_manifest("demo", "  version: latest\n"),
    );
    s.wait_for("latest installed", |live| {
        ready_at(live, &data, "demo", "1.10.0")
    })
    .await;
    let skill = expect(s.get("/api/v1/skills/demo", &s.admin).await, StatusCode::OK).await;
    assert_eq!(skill["version"], "latest");
    assert_eq!(skill["resolved_version"], "1.10.0");
    assert_eq!(skill["description"], "The demo skill");
    assert_eq!(skill["status"]["ready"], true, "{skill}");
    let message = skill["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("installed 1.10.0 (sha256:"),
        "{message}"
    );
    let installed = data.join("skills/demo");
    assert!(std::fs::read_to_string(installed.join("SKILL.md"))
        .unwrap()
        .contains("instructions for 1.10.0"));

    // Downgrade to an exact version, then upgrade through a range.
    s.write(
        "skills/demo.yaml",
        &skill_manifest("demo", "  version: 1.0.0\n"),
    );
    s.wait_for("1.0.0 installed", |live| {
        ready_at(live, &data, "demo", "1.0.0")
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(installed.join("docs/usage.md")).unwrap(),
        "usage of 1.0.0\n"
    );
    s.write(
        "skills/demo.yaml",
        &skill_manifest("demo", "  version: \">=1.1 <1.10\"\n"),
    );
    s.wait_for("1.2.0 installed", |live| {
        ready_at(live, &data, "demo", "1.2.0")
    })
    .await;
    let list = expect(s.get("/api/v1/skills", &s.admin).await, StatusCode::OK).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["resolved_version"], "1.2.0");

    std::fs::remove_file(s.path("skills/demo.yaml")).unwrap();
    // Nothing but the skills dir is left: no staging or set-aside dirs.
    s.wait_for("uninstalled", |_| skills_dir_empty(&data)).await;
    assert!(!installed.exists());

    let events = outbox(&data, 4).await;
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap(),
                e["data"]["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("skill.installed", "1.10.0"),
            ("skill.installed", "1.0.0"),
            ("skill.installed", "1.2.0"),
            ("skill.removed", "1.2.0"),
        ]
    );
    assert!(events.iter().all(|e| e["data"]["name"] == "demo"));
    s.stop().await;
}

#[tokio::test]
async fn http_registry_made_by_the_pack_cli_installs() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("registry");
    for v in ["0.9.0", "1.0.0"] {
        let dir = skill_dir(tmp.path(), "remote", v, "over http");
        let out = claw_in(
            tmp.path(),
            &[
                "skill",
                "pack",
                dir.to_str().unwrap(),
                "--registry",
                reg.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        assert!(stdout(&out).contains(&format!("remote-{v}.tar.gz sha256:")));
    }
    let base = serve_dir(reg).await;
    let s = start().await;
    let data = s.data.path().to_path_buf();
    s.write(
        "skills/remote.yaml",
        &skill_manifest(
            "remote",
            &format!("  version: 0.9.0\n  source:\n    registry: {base}\n"),
        ),
    );
    s.wait_for("installed over http", |_| {
        installed_version(&data, "remote").as_deref() == Some("0.9.0")
    })
    .await;
    s.write(
        "skills/remote.yaml",
        &skill_manifest("remote", &format!("  source:\n    registry: {base}/\n")),
    );
    s.wait_for("latest over http", |_| {
        installed_version(&data, "remote").as_deref() == Some("1.0.0")
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn git_sources_install_a_branch_and_a_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let write = |body: &str| {
        std::fs::write(
            repo.join("SKILL.md"),
            format!("---\nname: from-git\ndescription: From git\n---\n{body}\n"),
        )
        .unwrap();
    };
    write("first");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    write("second");
    git(&repo, &["commit", "-q", "-am", "second"]);

    let s = start().await;
    let data = s.data.path().to_path_buf();
    let url = repo.display().to_string();
    s.write(
        "skills/from-git.yaml",
        &skill_manifest(
            "from-git",
            &format!("  source:\n    git:\n      url: {url}\n      ref: main\n"),
        ),
    );
    let skill_md = data.join("skills/from-git/SKILL.md");
    s.wait_for("branch installed", |_| {
        std::fs::read_to_string(&skill_md).is_ok_and(|t| t.contains("second"))
    })
    .await;
    assert!(!data.join("skills/from-git/.git").exists());
    s.write(
        "skills/from-git.yaml",
        &skill_manifest(
            "from-git",
            &format!("  source:\n    git:\n      url: {url}\n      ref: {first}\n"),
        ),
    );
    s.wait_for("commit installed", |_| {
        std::fs::read_to_string(&skill_md).is_ok_and(|t| t.contains("first"))
    })
    .await;
    assert_eq!(
        installed_version(&data, "from-git").unwrap(),
        format!("git-{}", &first[..12])
    );

    // A ref that does not exist: not Ready with the reason; the installed version stays.
    s.write(
        "skills/from-git.yaml",
        &skill_manifest(
            "from-git",
            &format!("  source:\n    git:\n      url: {url}\n      ref: nope\n"),
        ),
    );
    s.wait_for("git failure reported", |live| {
        problem(live, "from-git").is_some_and(|m| m.starts_with("GitFailed"))
    })
    .await;
    assert!(std::fs::read_to_string(&skill_md)
        .unwrap()
        .contains("first"));
    s.stop().await;
}

#[tokio::test]
async fn tampered_files_are_restored_at_resync() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path(), "demo", &["1.0.0"]);
    let s = start().await;
    set_registry(&s, reg.to_str().unwrap()).await;
    let data = s.data.path().to_path_buf();
    s.write(
        "skills/demo.yaml",
        &skill_manifest("demo", "  version: latest\n"),
    );
    // Ready, not only on disk: the resync repairs what the loop has recorded as installed.
    s.wait_for("installed", |live| ready_at(live, &data, "demo", "1.0.0"))
        .await;
    let dir = data.join("skills/demo");
    let original = std::fs::read_to_string(dir.join("SKILL.md")).unwrap();
    std::fs::write(dir.join("SKILL.md"), "hacked").unwrap();
    std::fs::remove_file(dir.join("docs/usage.md")).unwrap();
    std::fs::write(dir.join("dropped.sh"), "rm -rf /").unwrap();

    let r = s
        .request(Method::POST, "/api/v1/reconcile", Some(&s.admin))
        .send()
        .await
        .unwrap();
    let report = expect(r, StatusCode::OK).await;
    // The resync says what it repaired, and counts it.
    assert_eq!(report["repaired"][0]["name"], "demo", "{report}");
    assert_eq!(report["repaired"][0]["reason"], "DriftRepaired");
    let metrics = s.get("/metrics", &s.admin).await.text().await.unwrap();
    assert!(metrics.contains("claw_drift_repairs_total 1"), "{metrics}");
    assert_eq!(
        std::fs::read_to_string(dir.join("SKILL.md")).unwrap(),
        original
    );
    assert!(dir.join("docs/usage.md").is_file());
    assert!(!dir.join("dropped.sh").exists());
    let skill = expect(s.get("/api/v1/skills/demo", &s.admin).await, StatusCode::OK).await;
    assert_eq!(skill["status"]["reason"], "DriftRepaired", "{skill}");
    assert_eq!(skill["status"]["ready"], true);

    // The whole directory removed by hand comes back too.
    std::fs::remove_dir_all(&dir).unwrap();
    let r = s
        .request(Method::POST, "/api/v1/reconcile", Some(&s.admin))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::OK).await;
    assert_eq!(
        std::fs::read_to_string(dir.join("SKILL.md")).unwrap(),
        original
    );
    s.stop().await;
}

/// A one-entry tar.gz written without the `tar` crate's own path checks.
fn raw_archive(path: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    {
        let bytes = header.as_old_mut();
        bytes.name[..path.len()].copy_from_slice(path.as_bytes());
        bytes.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut skill = tar::Header::new_gnu();
    let md = b"---\nname: evil\ndescription: evil\n---\n";
    skill.set_path("SKILL.md").unwrap();
    skill.set_size(md.len() as u64);
    skill.set_mode(0o644);
    skill.set_cksum();
    b.append(&skill, &md[..]).unwrap();
    b.append(&header, data).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn hostile_archives_are_refused_and_write_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let cases = [
        (
            "slip",
            raw_archive("../../../../slip.txt", tar::EntryType::Regular, "", b"x"),
            "UnsafeArchive",
        ),
        (
            "abs",
            raw_archive(
                &format!("{}/abs.txt", tmp.path().display()),
                tar::EntryType::Regular,
                "",
                b"x",
            ),
            "UnsafeArchive",
        ),
        (
            "link",
            raw_archive("escape", tar::EntryType::Symlink, "../../../../..", b""),
            "UnsafeArchive",
        ),
        (
            "dev",
            raw_archive("null", tar::EntryType::Char, "", b""),
            "UnsafeArchive",
        ),
    ];
    for (name, bytes, _) in &cases {
        std::fs::write(served.join(format!("{name}.tar.gz")), bytes).unwrap();
    }
    let good =
        claw::skills::pack::archive_dir(&skill_dir(tmp.path(), "fine", "1.0.0", "ok")).unwrap();
    std::fs::write(served.join("fine.tar.gz"), &good).unwrap();
    let base = serve_dir(served).await;

    let s = start().await;
    let data = s.data.path().to_path_buf();
    let archive = |file: &str, sha: &str| {
        format!("  source:\n    archive:\n      url: {base}/{file}\n      sha256: \"{sha}\"\n")
    };
    for (name, bytes, _) in &cases {
        // Each under its own name, but SKILL.md says `evil`: the archive is refused before that.
        s.write(
            &format!("skills/{name}.yaml"),
            &skill_manifest(
                name,
                &archive(&format!("{name}.tar.gz"), &claw::skills::sha256_hex(bytes)),
            ),
        );
    }
    // The right archive with the wrong digest.
    s.write(
        "skills/mismatch.yaml",
        &skill_manifest("mismatch", &archive("fine.tar.gz", &"0".repeat(64))),
    );
    s.write(
        "skills/fine.yaml",
        &skill_manifest(
            "fine",
            &archive("fine.tar.gz", &claw::skills::sha256_hex(&good)),
        ),
    );
    let mut expected: Vec<(&str, &str)> = cases.iter().map(|(n, _, r)| (*n, *r)).collect();
    expected.push(("mismatch", "DigestMismatch"));
    s.wait_for("every hostile archive refused", |live| {
        expected
            .iter()
            .all(|(n, reason)| problem(live, n).is_some_and(|m| m.starts_with(reason)))
    })
    .await;
    s.wait_for("the good one installed", |_| {
        installed_version(&data, "fine").is_some()
    })
    .await;
    // Nothing escaped: the skills dir holds only the good skill (and, transiently, the staging
    // dir of a refused one being retried), and nothing landed around it.
    let names: Vec<_> = std::fs::read_dir(data.join("skills"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".tmp-"))
        .collect();
    assert_eq!(names, ["fine"]);
    for root in [tmp.path(), s.data.path(), Path::new("/")] {
        assert!(!root.join("slip.txt").exists());
    }
    assert!(!tmp.path().join("abs.txt").exists());
    s.stop().await;
}

#[tokio::test]
async fn post_and_delete_write_and_remove_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path(), "openclaw-skill-git-helper", &["1.0.0", "1.1.0"]);
    registry(tmp.path(), "other-skill", &["1.0.0"]);
    let s = start().await;
    set_registry(&s, reg.to_str().unwrap()).await;
    let data = s.data.path().to_path_buf();

    let post = |body: Value| {
        s.request(Method::POST, "/api/v1/skills", Some(&s.admin))
            .json(&body)
            .send()
    };
    let tutorial = json!({"name": "openclaw-skill-git-helper", "version": "latest"});
    let created = expect(post(tutorial.clone()).await.unwrap(), StatusCode::CREATED).await;
    assert_eq!(created["name"], "openclaw-skill-git-helper");
    assert_eq!(created["version"], "latest");
    // The call answers once the manifest is written; the download and install follow.
    assert_eq!(created["status"]["reason"], "Progressing", "{created}");
    s.wait_for("the skill installed", |live| {
        ready_at(live, &data, "openclaw-skill-git-helper", "1.1.0")
    })
    .await;
    let shown = expect(
        s.get("/api/v1/skills/openclaw-skill-git-helper", &s.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["resolved_version"], "1.1.0");
    assert_eq!(shown["status"]["ready"], true, "{shown}");
    let file = s.path("skills/openclaw-skill-git-helper.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("kind: Skill") && text.contains("latest"),
        "{text}"
    );
    assert_eq!(
        installed_version(&data, "openclaw-skill-git-helper").as_deref(),
        Some("1.1.0")
    );

    let dup = expect(post(tutorial).await.unwrap(), StatusCode::CONFLICT).await;
    assert!(
        dup["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{dup}"
    );

    // Not in the registry / no such version: 4xx with the reason, and nothing written.
    for body in [
        json!({"name": "no-such-skill", "version": "latest"}),
        json!({"name": "other", "version": "1.0.0", "source": {"registry": reg.join("missing")}}),
    ] {
        let e = expect(post(body).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not in the registry"),
            "{e}"
        );
    }
    let e = expect(
        post(json!({"name": "other-skill", "version": "9.9.9"}))
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(e["error"]["code"], "skill_unresolvable");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no version of other-skill") && message.contains("1.0.0"),
        "{message}"
    );
    let e = expect(
        post(json!({"name": "Bad/Name"})).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["error"]["code"], "validation_failed");
    let skills: Vec<_> = std::fs::read_dir(s.path("skills")).unwrap().collect();
    assert_eq!(skills.len(), 1, "only the tutorial's skill was written");

    // A second POST of an existing name is a conflict whatever its version.
    let e = expect(
        s.request(Method::POST, "/api/v1/skills", Some(&s.admin))
            .json(&json!({"name": "openclaw-skill-git-helper", "version": "9.9.9"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(e["error"].is_object());

    let r = s
        .request(
            Method::DELETE,
            "/api/v1/skills/openclaw-skill-git-helper",
            Some(&s.admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!file.exists());
    s.wait_for("the files removed", |_| skills_dir_empty(&data))
        .await;
    expect(
        s.get("/api/v1/skills/openclaw-skill-git-helper", &s.admin)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let r = s
        .request(
            Method::DELETE,
            "/api/v1/skills/openclaw-skill-git-helper",
            Some(&s.admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let events = outbox(&data, 2).await;
    let kinds: Vec<_> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["skill.installed", "skill.removed"]);
    assert_eq!(
        events[0]["data"],
        json!({"name": "openclaw-skill-git-helper", "version": "1.1.0"})
    );
    s.stop().await;
}

#[tokio::test]
async fn a_failing_skill_leaves_the_others_alone_and_disabled_uninstalls() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path(), "demo", &["1.0.0"]);
    let s = start().await;
    set_registry(&s, reg.to_str().unwrap()).await;
    let data = s.data.path().to_path_buf();
    s.write(
        "skills/demo.yaml",
        &skill_manifest("demo", "  version: latest\n"),
    );
    s.write(
        "skills/ghost.yaml",
        &skill_manifest("ghost", "  version: latest\n"),
    );
    s.wait_for("ghost reported, demo installed", |live| {
        problem(live, "ghost").is_some_and(|m| m.starts_with("NotFound"))
            && ready_at(live, &data, "demo", "1.0.0")
    })
    .await;
    let demo = expect(s.get("/api/v1/skills/demo", &s.admin).await, StatusCode::OK).await;
    assert_eq!(demo["status"]["ready"], true);

    s.write(
        "skills/demo.yaml",
        &skill_manifest("demo", "  version: latest\n  enabled: false\n"),
    );
    s.wait_for("disabled", |live| {
        !data.join("skills/demo").exists()
            && live
                .resources
                .status(claw::manifest::Kind::Skill, "demo")
                .is_some_and(|st| st.reason == "Disabled")
    })
    .await;
    let demo = expect(s.get("/api/v1/skills/demo", &s.admin).await, StatusCode::OK).await;
    assert_eq!(demo["status"]["reason"], "Disabled", "{demo}");
    s.stop().await;
}

#[tokio::test]
async fn changing_the_configured_registry_reinstalls_at_resync() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let reg_a = registry(a.path(), "demo", &["1.0.0"]);
    let reg_b = registry(b.path(), "demo", &["3.0.0"]);
    let s = start().await;
    set_registry(&s, reg_a.to_str().unwrap()).await;
    let data = s.data.path().to_path_buf();
    s.write(
        "skills/demo.yaml",
        &skill_manifest("demo", "  version: latest\n"),
    );
    s.wait_for("installed from a", |_| {
        installed_version(&data, "demo").as_deref() == Some("1.0.0")
    })
    .await;
    set_registry(&s, reg_b.to_str().unwrap()).await;
    let r = s
        .request(Method::POST, "/api/v1/reconcile", Some(&s.admin))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::OK).await;
    assert_eq!(installed_version(&data, "demo").as_deref(), Some("3.0.0"));
    let skill = expect(s.get("/api/v1/skills/demo", &s.admin).await, StatusCode::OK).await;
    assert_eq!(skill["status"]["reason"], "RegistryChanged", "{skill}");
    s.stop().await;
}

/// Installs `git-helper` from a local path and returns the server (config from `model`).
async fn server_with_skill(tmp: &Path, model: &str) -> TestServer {
    let skill = skill_dir(tmp, "git-helper", "1.0.0", "Always run git log first.");
    let config = format!(
        "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  model:\n{model}"
    );
    let manifest = skill_manifest(
        "git-helper",
        &format!("  source: {{path: {}}}\n", skill.display()),
    );
    let s = TestServer::start_with(move |dir| {
        std::fs::write(dir.join("configs/default.yaml"), config).unwrap();
        std::fs::create_dir_all(dir.join("skills")).unwrap();
        std::fs::write(dir.join("skills/git-helper.yaml"), manifest).unwrap();
    })
    .await;
    let data = s.data.path().to_path_buf();
    s.wait_for("the skill installed", |_| {
        installed_version(&data, "git-helper").is_some()
    })
    .await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_reads_a_skill_through_the_tool() {
    use std::sync::{Arc, Mutex};
    let requests: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = requests.clone();
    let app = Router::new().route(
        "/v1/messages",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let n = {
                    let mut r = seen.lock().unwrap();
                    r.push(body);
                    r.len()
                };
                axum::Json(if n == 1 {
                    json!({"content": [{"type": "tool_use", "id": "toolu_s", "name": "read_skill", "input": {"name": "git-helper"}}],
                           "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1}})
                } else {
                    json!({"content": [{"type": "text", "text": "followed the skill"}],
                           "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}})
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("key"), "sk-test").unwrap();
    let model = format!(
        "    provider: anthropic\n    base_url: {base}\n    api_key: {{fromFile: {}}}\n",
        tmp.path().join("key").display()
    );
    let s = server_with_skill(tmp.path(), &model).await;
    let c = claw::client::Client::new(s.base.clone(), s.admin.clone());
    let id = c
        .create_task("Summarize the latest git commits", json!({}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let result = c.wait_for_completion(&id).await.unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    let requests = requests.lock().unwrap().clone();
    let system = requests[0]["system"].as_str().unwrap();
    assert!(
        system.contains("- git-helper: The git-helper skill"),
        "{system}"
    );
    assert!(requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "read_skill"));
    let tool_result = &requests[1]["messages"].as_array().unwrap().last().unwrap()["content"][0];
    assert_eq!(tool_result["tool_use_id"], "toolu_s");
    let content = tool_result["content"].to_string();
    assert!(content.contains("Always run git log first."), "{content}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_provider_finds_skills_in_its_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let model = "    provider: command\n    command: [\"sh\", \"-c\", \"cat \\\"$CLAW_SKILLS_DIR/git-helper/SKILL.md\\\"\"]\n";
    let s = server_with_skill(tmp.path(), model).await;
    let c = claw::client::Client::new(s.base.clone(), s.admin.clone());
    let id = c.create_task("x", json!({})).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let result = c.wait_for_completion(&id).await.unwrap();
    assert!(
        result["output"]
            .as_str()
            .unwrap()
            .contains("Always run git log first."),
        "{result}"
    );
    s.stop().await;
}
