//! The shared test helper: starts a real server and speaks HTTP to it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use claw::live::Live;
use claw::server::{self, ServeOptions, Server};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

/// How long any awaited convergence may take before a test fails.
pub const BOUND: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub server: Option<Server>,
    pub manifests: TempDir,
    pub data: TempDir,
    /// The full-scope token `claw init` created.
    pub admin: String,
    pub http: reqwest::Client,
    pub base: String,
}

impl TestServer {
    /// A server over a freshly initialised manifests dir.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Like `start`, with extra manifests written by `setup` before the server starts.
    pub async fn start_with(setup: impl FnOnce(&Path)) -> TestServer {
        Self::start_custom(setup, |_| {}).await
    }

    /// Like `start_with`, with the serve options adjusted by `adjust`.
    pub async fn start_custom(
        setup: impl FnOnce(&Path),
        adjust: impl FnOnce(&mut ServeOptions),
    ) -> TestServer {
        let manifests = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let admin = claw::manifest::scaffold::init(manifests.path())
            .unwrap()
            .admin_token
            .unwrap();
        setup(manifests.path());
        let mut opts = options(manifests.path(), data.path());
        adjust(&mut opts);
        let server = server::start(opts).await.unwrap();
        assert!(
            server.admin_token.is_none(),
            "the dir was initialised already"
        );
        let base = server.url();
        TestServer {
            server: Some(server),
            manifests,
            data,
            admin,
            http: reqwest::Client::new(),
            base,
        }
    }

    pub fn live(&self) -> &Live {
        &self.server.as_ref().unwrap().live
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.manifests.path().join(rel)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token))
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_config(&self, token: &str, body: Value) -> Response {
        self.request(Method::PATCH, "/api/v1/config", Some(token))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Waits (on reconcile passes, not on a clock) until `done`, failing after [`BOUND`].
    pub async fn wait_for(&self, what: &str, done: impl FnMut(&Live) -> bool) {
        if tokio::time::timeout(BOUND, self.live().wait_for(done))
            .await
            .is_err()
        {
            panic!("timed out after {BOUND:?} waiting for {what}");
        }
    }

    /// Writes a manifest the way an editor or `git checkout` would (replace, not append).
    pub fn write(&self, rel: &str, text: &str) {
        claw::manifest::write::atomic_write(&self.path(rel), text.as_bytes()).unwrap();
    }

    /// Stops the server and waits for it to be gone.
    pub async fn stop(mut self) -> (TempDir, TempDir) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        (self.manifests, self.data)
    }

    /// Runs the real `claw` binary with `--manifests` pointing at this server's dir.
    pub fn claw(&self, args: &[&str]) -> Output {
        claw_in(self.manifests.path(), args)
    }
}

pub fn options(manifests: &Path, data: &Path) -> ServeOptions {
    let mut o = ServeOptions::new(manifests, data);
    o.listen = "127.0.0.1:0".into();
    o.debounce = Duration::from_millis(20);
    if let Some(url) = database_url(data) {
        o.database_url = Some(url);
        o.secret_key_file = Some(crate::postgres::cluster().key_file());
    }
    o
}

/// The file in a data dir naming the test database its servers use (PostgreSQL runs).
const DATABASE_URL_FILE: &str = ".test-database-url";

/// With `CLAW_TEST_DATABASE=postgres`, the database of the servers on data dir `data`: a fresh
/// one on the test cluster the first time, the same one on a restart. `None` on SQLite.
pub fn database_url(data: &Path) -> Option<String> {
    if !crate::postgres::selected() {
        return None;
    }
    let file = data.join(DATABASE_URL_FILE);
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Some(url);
    }
    let url = crate::postgres::fresh_database();
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(&file, &url).unwrap();
    Some(url)
}

/// The secrets the API stored for servers on data dir `data`, (name, value) by name: files in
/// `<data>/secrets` on SQLite, sealed rows in the database on PostgreSQL.
pub async fn stored_secrets(data: &Path) -> Vec<(String, String)> {
    if crate::postgres::selected() {
        let mut store = open_store(data).await;
        let key = claw::store::secrets::SecretKey::from_base64(crate::postgres::SECRET_KEY, "test")
            .unwrap();
        store.set_secret_key(Some(key));
        let all = claw::store::secrets::open_all(&store).await.unwrap();
        store.close().await;
        return all.into_iter().map(|(n, v)| (n, v.unwrap())).collect();
    }
    let Ok(dir) = std::fs::read_dir(data.join("secrets")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = dir
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Opens the database a (stopped) server on data dir `data` used, on either engine.
pub async fn open_store(data: &Path) -> claw::store::Store {
    let url = crate::postgres::selected()
        .then(|| std::fs::read_to_string(data.join(DATABASE_URL_FILE)).ok())
        .flatten();
    claw::store::Store::open_existing(data, url.as_deref())
        .await
        .unwrap()
        .expect("a database")
}

/// Runs the `claw` binary with `CLAW_MANIFESTS` set to `manifests`.
/// On PostgreSQL runs, a `--data DIR` among `args` brings that dir's test database along (as
/// `CLAW_DATABASE_URL`), so verbs reading the store see what the servers on it wrote.
pub fn claw_in(manifests: &Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_claw"));
    command
        .args(args)
        .env("CLAW_MANIFESTS", manifests)
        .env_remove("CLAW_DATA")
        .env_remove("CLAW_DATABASE_URL");
    let data = args
        .windows(2)
        .find(|w| w[0] == "--data")
        .map(|w| Path::new(w[1]));
    if let Some(url) = data.and_then(database_url) {
        command.env("CLAW_DATABASE_URL", url);
    }
    command.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the status and returns the JSON body.
pub async fn expect(response: Response, status: StatusCode) -> Value {
    let got = response.status();
    let body = response.text().await.unwrap();
    let shown: String = body.chars().take(2000).collect();
    assert_eq!(got, status, "unexpected status; body: {shown}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// A Token manifest for `token` with `scope` (and optional extra spec lines).
pub fn token_manifest(name: &str, token: &str, scope: &str, extra: &str) -> String {
    format!(
        "apiVersion: openclaw.dev/v1\nkind: Token\nmetadata:\n  name: {name}\nspec:\n  scope: {scope}\n  sha256: \"{}\"\n{extra}",
        claw::auth::token::hash_hex(token)
    )
}

/// A `claw serve` child process, killed if a test fails before it is stopped.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub type Lines = std::io::Lines<std::io::BufReader<std::process::ChildStderr>>;

pub fn spawn_serve(dir: &Path) -> (Child, String, Lines) {
    use std::io::BufRead;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_claw"));
    command.arg("serve");
    if let Some(url) = database_url(&dir.join("data")) {
        command
            .args(["--database-url", &url])
            .arg("--secret-key-file")
            .arg(crate::postgres::cluster().key_file());
    }
    let mut child = command
        .args(["--listen", "127.0.0.1:0"])
        .args(["--manifests", dir.join("m").to_str().unwrap()])
        .args(["--data", dir.join("data").to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Child(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_owned();
        }
    };
    (child, url, lines)
}

pub fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    child.0.wait().unwrap()
}

/// Installs a test's npm dependencies (`npm ci` in `dir`) once, if they are missing, so a plain
/// `cargo test` on a fresh machine works; `.ci/run` installs them up front.
pub fn npm_ci(dir: &Path) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if dir.join("node_modules").is_dir() {
        return;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("npm is needed for this test (install Node.js 18+ with npm)");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Runs git in `dir` and returns its trimmed stdout, failing the test on an error.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(["-c", "commit.gpgSign=false"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
