//! Manifests at scale: how `claw` copes with a large manifests dir.
//!
//! Generates N resources (default 10,000: 70% Token, 10% Skill, 10% Webhook, 10% McpServer,
//! mostly one per file in per-kind dirs, some multi-document files) plus the `default` Config
//! in a temp dir, checks that every document is valid, and reports:
//!
//! - in-process load + validate (`ManifestSet::load` + `rules::Desired::of`);
//! - cold start: `server::start` with a fresh data dir (first full reconcile + bind);
//! - one-file-change -> converged latency: a Token file rewritten like an editor does (temp
//!   file + rename) until the summary's revision moves, p50/p90/p99/max over `--edits` edits,
//!   in total and beyond the watcher's debounce window (`--debounce-ms`);
//! - API write round trip: `PATCH /api/v1/config` (no debounce on that path);
//! - `claw validate DIR` (the real binary): wall time, files/s, resources/s;
//! - peak RSS (`VmHWM`) of the real `claw serve` after start-up and one request (Linux).
//!
//! - slow work beside fast work: with a Skill whose archive host accepts and never answers,
//!   how long a token revocation takes to be refused, `PATCH /api/v1/config`,
//!   `POST /api/v1/webhooks` and `GET /api/v1/skills` (which must show the skill
//!   `Progressing`); and five MCP servers that each answer `initialize` after 3 s, declared at
//!   once, until all are connected (`--no-slow-work` skips this phase; it needs `python3`).
//!
//! Targets at 10,000 resources: change -> converged p50 < 50 ms and p99 < 150 ms beyond the
//! debounce window; cold start < 1 s; RSS < 48 MiB. At 100,000 (`--resources 100000`): p99 <
//! 20 ms beyond the debounce window, cold start < 3 s, RSS < 200 MiB. With a stalled download:
//! revoke < 1 s, PATCH and POST < 200 ms, GET /skills < 50 ms; five slow MCP servers < 5 s. It
//! prints a table with PASS/FAIL per target and, last, one line of JSON with every figure. A
//! missed target still exits 0 (this is a report); something broken (invalid generated
//! manifests, a lost event, wrong counts, a failed request or process) exits 1.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench manifests
//! cargo bench --bench manifests -- --resources 10000 --edits 200
//! cargo bench --bench manifests -- --resources 10000 --edits 200 --debounce-ms 50 --patches 50
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use claw::auth::issue::{self, NewToken};
use claw::auth::Scope;
use claw::manifest::rules::Desired;
use claw::manifest::{Kind, ManifestSet};
use claw::server::{self, ServeOptions};
use rand::Rng;
use serde_json::{json, Value};
use tempfile::TempDir;

/// The same allocator as the `claw` binary, so the in-process cold start is measured like for
/// like with the served RSS.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long one edit may take to converge before the run is declared broken.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the real `claw serve` may take to start listening.
const SERVE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Runs of `claw validate`.
const VALIDATE_RUNS: usize = 3;
/// Name of the full-scope token created with `claw::auth::issue::create`.
const ADMIN: &str = "bench-admin";

/// Targets at one scale.
struct Targets {
    beyond_p50_ms: f64,
    beyond_p99_ms: f64,
    cold_start_ms: f64,
    rss_mib: f64,
}

impl Targets {
    /// The targets for `resources` (the 100,000 ones from that scale up).
    fn at(resources: usize) -> Targets {
        if resources >= 100_000 {
            Targets {
                beyond_p50_ms: 50.0,
                beyond_p99_ms: 20.0,
                cold_start_ms: 3000.0,
                rss_mib: 200.0,
            }
        } else {
            Targets {
                beyond_p50_ms: 50.0,
                beyond_p99_ms: 150.0,
                cold_start_ms: 1000.0,
                rss_mib: 48.0,
            }
        }
    }
}

// Targets of the slow-work phase.
const TARGET_REVOKE_MS: f64 = 1000.0;
const TARGET_WRITE_MS: f64 = 200.0;
const TARGET_SKILLS_GET_MS: f64 = 50.0;
const TARGET_MCP_ALL_MS: f64 = 5000.0;
/// How long the five slow MCP servers take to answer `initialize`.
const MCP_INIT_DELAY_S: u32 = 3;

fn main() -> ExitCode {
    // The generated webhooks take their secrets from these (resolved at apply time) ...
    for team in 0..17 {
        std::env::set_var(
            format!("WEBHOOK_SECRET_{team}"),
            format!("bench-secret-{team}"),
        );
    }
    // ... and the MCP servers their env / header values.
    for n in 0..13 {
        std::env::set_var(format!("MCP_KEY_{n}"), format!("bench-key-{n}"));
        std::env::set_var(format!("MCP_TOKEN_{n}"), format!("Bearer bench-{n}"));
    }
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench manifests: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench manifests: BROKEN: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo bench --bench manifests -- [--resources N] [--edits N] [--debounce-ms N] [--patches N] [--no-slow-work] [--generate DIR]";

struct Args {
    resources: usize,
    edits: usize,
    debounce_ms: u64,
    patches: usize,
    slow_work: bool,
    /// `--generate DIR`: only write the manifests into DIR (for profiling `claw serve` by
    /// hand on them), measure nothing.
    generate: Option<PathBuf>,
}

impl Args {
    /// `None` when only help was asked for. `--bench` (added by `cargo bench`) and positional
    /// filters are ignored.
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Args>> {
        let mut args = Args {
            resources: 10_000,
            edits: 200,
            debounce_ms: 50,
            patches: 50,
            slow_work: true,
            generate: None,
        };
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> Result<u64> {
                let v = inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| anyhow!("{name} needs a value"))?;
                v.parse()
                    .with_context(|| format!("{name}: not a number: {v:?}"))
            };
            match flag.as_str() {
                "--resources" => args.resources = value("--resources")? as usize,
                "--edits" => args.edits = value("--edits")? as usize,
                "--debounce-ms" => args.debounce_ms = value("--debounce-ms")?,
                "--patches" => args.patches = value("--patches")? as usize,
                "--no-slow-work" => args.slow_work = false,
                "--generate" => {
                    let dir = inline
                        .clone()
                        .or_else(|| it.next())
                        .ok_or_else(|| anyhow!("--generate needs a directory"))?;
                    args.generate = Some(PathBuf::from(dir));
                }
                "--bench" => {}
                "-h" | "--help" => {
                    println!("{USAGE}");
                    return Ok(None);
                }
                f if f.starts_with('-') => bail!("unknown flag {f}"),
                _ => {} // a bench name filter
            }
        }
        ensure!(args.resources >= 10, "--resources must be at least 10");
        ensure!(args.edits >= 1, "--edits must be at least 1");
        ensure!(args.debounce_ms >= 1, "--debounce-ms must be at least 1");
        Ok(Some(args))
    }
}

// ---------------------------------------------------------------------------------------------
// Generation

/// A generated Token file, rewritten by the edits.
struct TokenFile {
    rel: PathBuf,
    index: usize,
    scope: &'static str,
    sha256: String,
    expires: bool,
}

impl TokenFile {
    fn name(&self) -> String {
        format!("tok-{:05}", self.index)
    }

    fn yaml(&self, edit: usize) -> String {
        let expires = if self.expires {
            "  expiresAt: 2099-01-01T00:00:00Z\n"
        } else {
            ""
        };
        format!(
            "apiVersion: openclaw.dev/v1\nkind: Token\nmetadata:\n  name: {name}\n  labels:\n    team: team-{team}\nspec:\n  scope: {scope}\n  sha256: {sha}\n  createdAt: 2025-01-01T00:00:00Z\n{expires}  description: benchmark token {index}, edit {edit}\n",
            name = self.name(),
            team = self.index % 17,
            scope = self.scope,
            sha = self.sha256,
            index = self.index,
        )
    }
}

fn skill_yaml(i: usize) -> String {
    let source = match i % 4 {
        0 => format!("    git:\n      url: https://git.example.com/skills/skill-{i}.git\n      ref: main\n"),
        1 => format!("    registry: https://registry.example.com/skills/{i}\n"),
        2 => format!("    path: /opt/skills/skill-{i}\n"),
        _ => format!(
            "    archive:\n      url: https://downloads.example.com/skill-{i}.tar.gz\n      sha256: {}\n",
            random_hex()
        ),
    };
    format!(
        "apiVersion: openclaw.dev/v1\nkind: Skill\nmetadata:\n  name: skill-{i:05}\nspec:\n  version: \"^1.{minor}\"\n  source:\n{source}  enabled: {enabled}\n  description: benchmark skill {i}\n",
        minor = i % 10,
        // Disabled: the figures measure the reconciler, not a thousand downloads; the
        // sources are still parsed and validated.
        enabled = false,
    )
}

fn webhook_yaml(i: usize) -> String {
    format!(
        "apiVersion: openclaw.dev/v1\nkind: Webhook\nmetadata:\n  name: hook-{i:05}\n  annotations:\n    owner: team-{team}\nspec:\n  url: https://hooks.example.com/claw/{i}\n  events: [task.completed, task.failed]\n  secret: {{fromEnv: WEBHOOK_SECRET_{team}}}\n  description: benchmark webhook {i}\n",
        team = i % 17,
    )
}

fn mcp_yaml(i: usize) -> String {
    let transport = if i.is_multiple_of(2) {
        format!("  command: npx\n  args: [\"-y\", \"@example/mcp-server-{i}\"]\n  env:\n    API_KEY: {{fromEnv: MCP_KEY_{}}}\n    MODE: production\n", i % 13)
    } else {
        format!("  url: https://mcp.example.com/{i}/mcp\n  headers:\n    Authorization: {{fromEnv: MCP_TOKEN_{}}}\n", i % 13)
    };
    format!(
        "apiVersion: openclaw.dev/v1\nkind: McpServer\nmetadata:\n  name: mcp-{i:05}\nspec:\n{transport}  timeout_seconds: 30\n  enabled: false\n  description: benchmark MCP server {i}\n"
    )
}

const CONFIG_YAML: &str = "apiVersion: openclaw.dev/v1
kind: Config
metadata:
  name: default
spec:
  model:
    provider: anthropic
    name: claude-sonnet-4-20250514
  tasks:
    concurrency: 4
    timeout_seconds: 600
  rate_limit:
    requests_per_minute: 60000
    burst: 10000
  webhooks:
    timeout_seconds: 15
    max_attempts: 8
";

fn random_hex() -> String {
    hex::encode(rand::rng().random::<[u8; 32]>())
}

/// What was generated.
struct Generated {
    /// Editable Token files (not the admin token).
    tokens: Vec<TokenFile>,
    /// Resources per kind, Config and admin token included.
    kinds: BTreeMap<Kind, usize>,
    files: usize,
    multi_doc_files: usize,
    admin_token: String,
}

impl Generated {
    /// Every document: the resources plus the Config.
    fn documents(&self) -> usize {
        self.kinds.values().sum()
    }
}

/// Writes one file below `root`, creating its directory.
fn write_file(root: &Path, rel: &Path, text: &str) -> Result<()> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Renders the document of one generated resource.
type Render = fn(usize) -> String;

/// Writes the Config and `n` resources below `root`. The last Token is the admin token,
/// created with `claw::auth::issue::create` (scope full).
fn generate(root: &Path, n: usize) -> Result<Generated> {
    let tokens = n * 70 / 100;
    let skills = n * 10 / 100;
    let webhooks = n * 10 / 100;
    let mcps = n - tokens - skills - webhooks;
    let mut files = 0;
    let mut multi_doc_files = 0;
    let mut write = |rel: &Path, text: &str| -> Result<()> {
        write_file(root, rel, text)?;
        files += 1;
        Ok(())
    };
    write(Path::new("configs/default.yaml"), CONFIG_YAML)?;

    let scopes = ["read", "execute", "full"];
    let mut token_files = Vec::with_capacity(tokens);
    for i in 1..tokens {
        let t = TokenFile {
            rel: PathBuf::from(format!("tokens/tok-{i:05}.yaml")),
            index: i,
            scope: scopes[i % 3],
            sha256: random_hex(),
            expires: i.is_multiple_of(5),
        };
        write(&t.rel, &t.yaml(0))?;
        token_files.push(t);
    }

    // 80% of the other kinds one per file, the rest in multi-document files of 10.
    let kinds: [(&str, usize, Render); 3] = [
        ("skills", skills, skill_yaml),
        ("webhooks", webhooks, webhook_yaml),
        ("mcpservers", mcps, mcp_yaml),
    ];
    for (dir, count, render) in kinds {
        let single = count * 8 / 10;
        for i in 0..single {
            write(&PathBuf::from(format!("{dir}/{:05}.yaml", i)), &render(i))?;
        }
        let rest: Vec<usize> = (single..count).collect();
        for (b, chunk) in rest.chunks(10).enumerate() {
            let text: Vec<String> = chunk.iter().map(|&i| render(i)).collect();
            write(
                &PathBuf::from(format!("{dir}/bundle-{b:03}.yaml")),
                &text.join("---\n"),
            )?;
            multi_doc_files += usize::from(chunk.len() > 1);
        }
    }
    let issued = issue::create(
        root,
        &NewToken {
            name: ADMIN,
            scope: Scope::Full,
            expires_at: None,
            description: Some("benchmark admin token"),
            rate_limit: None,
        },
    )
    .context("creating the admin token")?;
    files += 1;

    Ok(Generated {
        tokens: token_files,
        kinds: BTreeMap::from([
            (Kind::Config, 1),
            (Kind::Token, tokens),
            (Kind::Skill, skills),
            (Kind::Webhook, webhooks),
            (Kind::McpServer, mcps),
        ]),
        files,
        multi_doc_files,
        admin_token: issued.token,
    })
}

// ---------------------------------------------------------------------------------------------
// Measurements

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentiles of a sample.
#[derive(Debug, Clone, Copy)]
struct Stats {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Stats {
    fn of(sample: &[f64]) -> Stats {
        let mut s = sample.to_vec();
        s.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
            s[rank - 1]
        };
        Stats {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: s[s.len() - 1],
        }
    }

    fn json(&self) -> Value {
        json!({ "p50": round(self.p50), "p90": round(self.p90), "p99": round(self.p99), "max": round(self.max) })
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct InProcess {
    cold_start_ms: f64,
    /// From start until every resource is Ready (disabled skills and MCP servers settle in
    /// the scheduler after start-up).
    all_ready_ms: f64,
    edits_total: Stats,
    edits_beyond: Stats,
    pass_ms: Stats,
    patches: Option<Stats>,
}

/// Cold start, file edits and API writes against an in-process server.
async fn in_process(args: &Args, root: &Path, generated: &Generated) -> Result<InProcess> {
    let data = TempDir::new()?;
    let mut options = ServeOptions::new(root, data.path());
    options.listen = "127.0.0.1:0".into();
    options.debounce = Duration::from_millis(args.debounce_ms);
    let started = Instant::now();
    let server = server::start(options).await.context("server::start")?;
    let cold_start_ms = ms(started.elapsed());
    let all_ready = tokio::time::timeout(
        CONVERGE_TIMEOUT * 6,
        server.live.wait_for(|live| {
            let summary = live.summary.load();
            generated.kinds.iter().all(|(kind, n)| {
                summary
                    .resources
                    .get(kind)
                    .is_some_and(|c| c.total == *n && c.ready == *n)
            })
        }),
    )
    .await;
    let all_ready_ms = ms(started.elapsed());
    let result = match all_ready {
        Ok(()) => exercise(args, root, generated, &server).await,
        Err(_) => Err(anyhow!(
            "not every resource was Ready within {:?}",
            CONVERGE_TIMEOUT * 6
        )),
    };
    server.shutdown().await;
    let (edits_total, edits_beyond, pass_ms, patches) = result?;
    Ok(InProcess {
        cold_start_ms,
        all_ready_ms,
        edits_total,
        edits_beyond,
        pass_ms,
        patches,
    })
}

fn check_summary(server: &server::Server, generated: &Generated, when: &str) -> Result<()> {
    let summary = server.live.summary.load();
    ensure!(
        summary.initialised,
        "{when}: the summary is not initialised"
    );
    if !summary.errors.is_empty() {
        let first: Vec<String> = summary
            .errors
            .iter()
            .take(5)
            .map(|d| d.to_string())
            .collect();
        bail!(
            "{when}: {} error(s) after reconciling, e.g.\n  {}",
            summary.errors.len(),
            first.join("\n  ")
        );
    }
    ensure!(
        summary.prune_blocked == 0,
        "{when}: {} prune(s) blocked",
        summary.prune_blocked
    );
    ensure!(
        summary.files == generated.files,
        "{when}: the summary counts {} files, {} were written",
        summary.files,
        generated.files
    );
    for (kind, expected) in &generated.kinds {
        let count = summary.resources.get(kind).cloned().unwrap_or_default();
        ensure!(
            count.total == *expected && count.ready == *expected,
            "{when}: {kind}: {} declared / {} ready, expected {expected}",
            count.total,
            count.ready
        );
    }
    Ok(())
}

type Exercised = (Stats, Stats, Stats, Option<Stats>);

async fn exercise(
    args: &Args,
    root: &Path,
    generated: &Generated,
    server: &server::Server,
) -> Result<Exercised> {
    check_summary(server, generated, "after start-up")?;

    // One-file change -> converged.
    let picks: Vec<usize> = {
        let mut rng = rand::rng();
        (0..args.edits)
            .map(|_| rng.random_range(0..generated.tokens.len()))
            .collect()
    };
    let debounce = args.debounce_ms as f64;
    let (mut total, mut beyond, mut pass) = (Vec::new(), Vec::new(), Vec::new());
    for (edit, &pick) in picks.iter().enumerate() {
        let token = &generated.tokens[pick];
        let before = server.live.summary.load().revision.clone();
        let path = root.join(&token.rel);
        let tmp = path.with_file_name(format!(".{}.yaml.bench-tmp", token.name()));
        std::fs::write(&tmp, token.yaml(edit + 1))?;
        std::fs::rename(&tmp, &path)?;
        let written = Instant::now();
        tokio::time::timeout(
            CONVERGE_TIMEOUT,
            server
                .live
                .wait_for(|live| live.summary.load().revision != before),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "edit {} of {} did not converge within {:?}: a lost file event?",
                edit + 1,
                token.rel.display(),
                CONVERGE_TIMEOUT
            )
        })?;
        let latency = ms(written.elapsed());
        total.push(latency);
        beyond.push(latency - debounce);
        pass.push(server.live.summary.load().last_duration_ms as f64);
    }
    check_summary(server, generated, "after the edits")?;

    // API write round trip.
    let patches = if args.patches == 0 {
        None
    } else {
        let client = reqwest::Client::new();
        let url = format!("{}/api/v1/config", server.url());
        let mut sample = Vec::new();
        // The first PATCH (not counted) opens the connection.
        for k in 0..=args.patches {
            let concurrency = 5 + (k % 250) as u32;
            let started = Instant::now();
            let response = client
                .patch(&url)
                .bearer_auth(&generated.admin_token)
                .json(&json!({ "tasks": { "concurrency": concurrency } }))
                .send()
                .await
                .context("PATCH /api/v1/config")?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .context("PATCH /api/v1/config: reading the body")?;
            let elapsed = ms(started.elapsed());
            ensure!(
                status.is_success(),
                "PATCH /api/v1/config answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
            let in_force = server.live.config.load().spec.tasks.concurrency;
            ensure!(
                in_force == concurrency,
                "PATCH /api/v1/config returned, but concurrency {in_force} is in force, not {concurrency}"
            );
            if k > 0 {
                sample.push(elapsed);
            }
        }
        Some(Stats::of(&sample))
    };

    Ok((
        Stats::of(&total),
        Stats::of(&beyond),
        Stats::of(&pass),
        patches,
    ))
}

/// What the slow-work phase measured.
struct SlowWork {
    revoke_ms: f64,
    patch_ms: f64,
    post_ms: f64,
    skills_get_ms: f64,
    mcp_all_ms: f64,
}

/// An MCP server over stdio that waits `argv[1]` seconds before answering `initialize`.
const SLOW_MCP: &str = include_str!("../tests/fixtures/slow_mcp.py");

/// A small server with one skill whose archive host never answers: fast work measured beside
/// it, then five slow MCP servers declared at once.
async fn slow_work() -> Result<SlowWork> {
    let manifests = TempDir::new()?;
    let data = TempDir::new()?;
    let admin = claw::manifest::scaffold::init(manifests.path())?
        .admin_token
        .ok_or_else(|| anyhow!("claw init made no admin token"))?;
    // A host that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let host = listener.local_addr()?;
    let accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut options = ServeOptions::new(manifests.path(), data.path());
    options.listen = "127.0.0.1:0".into();
    options.debounce = Duration::from_millis(20);
    let server = server::start(options).await.context("server::start")?;
    let result = slow_work_on(&server, manifests.path(), &admin, host).await;
    server.shutdown().await;
    accepting.abort();
    result
}

async fn slow_work_on(
    server: &server::Server,
    root: &Path,
    admin: &str,
    host: std::net::SocketAddr,
) -> Result<SlowWork> {
    write_file(
        root,
        Path::new("skills/stalled.yaml"),
        &format!(
            "apiVersion: openclaw.dev/v1\nkind: Skill\nmetadata:\n  name: stalled\nspec:\n  source:\n    archive:\n      url: http://{host}/stalled.tar.gz\n      sha256: \"{}\"\n",
            random_hex()
        ),
    )?;
    let progressing = |live: &claw::live::Live| {
        live.resources
            .status(Kind::Skill, "stalled")
            .is_some_and(|s| !s.ready && s.reason == "Progressing")
    };
    tokio::time::timeout(CONVERGE_TIMEOUT, server.live.wait_for(progressing))
        .await
        .map_err(|_| anyhow!("the stalled skill never showed Progressing"))?;
    let http = reqwest::Client::new();
    let base = server.url();

    // A token created (as `claw token create` does), used, then revoked.
    let created = issue::create(
        root,
        &NewToken {
            name: "bench-revoke",
            scope: Scope::Read,
            expires_at: None,
            description: None,
            rate_limit: None,
        },
    )?;
    let status = |token: String| {
        let (http, url) = (http.clone(), format!("{base}/api/v1/status"));
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status())
        }
    };
    let until = |want: reqwest::StatusCode, what: &'static str| {
        let token = created.token.clone();
        async move {
            let started = Instant::now();
            loop {
                if status(token.clone()).await? == want {
                    return Ok::<_, anyhow::Error>(started.elapsed());
                }
                ensure!(
                    started.elapsed() < CONVERGE_TIMEOUT,
                    "{what}: not within {CONVERGE_TIMEOUT:?}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    until(reqwest::StatusCode::OK, "the new token accepted").await?;
    issue::revoke(root, "bench-revoke")?;
    let revoke = until(
        reqwest::StatusCode::UNAUTHORIZED,
        "the revoked token refused",
    )
    .await?;

    let timed = |request: reqwest::RequestBuilder, what: &'static str| async move {
        let started = Instant::now();
        let response = request.send().await.with_context(|| what)?;
        let code = response.status();
        let body = response.text().await?;
        ensure!(code.is_success(), "{what}: {code} {body}");
        Ok::<_, anyhow::Error>((started.elapsed(), body))
    };
    // One request first, so the measured ones reuse the connection like a client would.
    timed(http.get(format!("{base}/healthz")), "GET /healthz").await?;
    let (patch, _) = timed(
        http.patch(format!("{base}/api/v1/config"))
            .bearer_auth(admin)
            .json(&json!({"tasks": {"concurrency": 7}})),
        "PATCH /api/v1/config",
    )
    .await?;
    let (post, _) = timed(
        http.post(format!("{base}/api/v1/webhooks"))
            .bearer_auth(admin)
            .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["task.completed"], "secret": "bench"})),
        "POST /api/v1/webhooks",
    )
    .await?;
    let (get, body) = timed(
        http.get(format!("{base}/api/v1/skills")).bearer_auth(admin),
        "GET /api/v1/skills",
    )
    .await?;
    let list: Value = serde_json::from_str(&body)?;
    ensure!(
        list["items"][0]["status"]["reason"] == "Progressing",
        "GET /api/v1/skills does not show the stalled skill Progressing: {body}"
    );

    // Five MCP servers slow to initialise, declared at once.
    let script = root.join("slow_mcp.py.txt");
    std::fs::write(&script, SLOW_MCP)?;
    let started = Instant::now();
    for i in 0..5 {
        write_file(
            root,
            Path::new(&format!("mcp/slow-{i}.yaml")),
            &format!(
                "apiVersion: openclaw.dev/v1\nkind: McpServer\nmetadata:\n  name: slow-{i}\nspec:\n  command: python3\n  args: [{}, \"{MCP_INIT_DELAY_S}\"]\n  timeout_seconds: 20\n",
                script.display()
            ),
        )?;
    }
    let connected = |live: &claw::live::Live| {
        (0..5).all(|i| {
            live.resources
                .status(Kind::McpServer, &format!("slow-{i}"))
                .is_some_and(|s| s.ready && s.reason == "Connected")
        })
    };
    tokio::time::timeout(CONVERGE_TIMEOUT * 3, server.live.wait_for(connected))
        .await
        .map_err(|_| {
            anyhow!(
                "five slow MCP servers were not all connected within {:?}",
                CONVERGE_TIMEOUT * 3
            )
        })?;
    let mcp_all = started.elapsed();
    Ok(SlowWork {
        revoke_ms: ms(revoke),
        patch_ms: ms(patch),
        post_ms: ms(post),
        skills_get_ms: ms(get),
        mcp_all_ms: ms(mcp_all),
    })
}

struct Validate {
    min_ms: f64,
    median_ms: f64,
}

/// `claw validate DIR` with the real binary.
fn validate(root: &Path) -> Result<Validate> {
    let exe = env!("CARGO_BIN_EXE_claw");
    let mut times = Vec::new();
    for _ in 0..VALIDATE_RUNS {
        let started = Instant::now();
        let out = Command::new(exe)
            .arg("validate")
            .arg(root)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {exe} validate"))?;
        times.push(ms(started.elapsed()));
        ensure!(
            out.status.success(),
            "claw validate exited with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    times.sort_by(f64::total_cmp);
    Ok(Validate {
        min_ms: times[0],
        median_ms: times[times.len() / 2],
    })
}

/// Kills (SIGKILL) and reaps the child unless it was already reaped.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Rss {
    start_ms: f64,
    hwm_kib: u64,
    rss_kib: u64,
    /// Of `rss_kib`: heap and stacks, and mapped files (the binary, the database).
    anon_kib: u64,
    file_kib: u64,
}

/// Starts the real `claw serve`, waits for it to listen, GETs /healthz, reads its peak RSS,
/// then stops it with SIGTERM.
fn serve_rss(root: &Path, debounce_ms: u64) -> Result<Rss> {
    let data = TempDir::new()?;
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_claw"))
        .arg("serve")
        .arg("--manifests")
        .arg(root)
        .arg("--data")
        .arg(data.path())
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--debounce-ms")
        .arg(debounce_ms.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning claw serve")?;
    let mut guard = ChildGuard(Some(child));
    let child = guard.0.as_mut().ok_or_else(|| anyhow!("no child"))?;
    let pid = child.id();
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("no stderr pipe"))?;

    // Drain stderr on a thread for the life of the process, so the pipe never fills.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + SERVE_START_TIMEOUT;
    let mut seen = Vec::new();
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    break rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                }
                seen.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!(
                    "claw serve did not listen within {SERVE_START_TIMEOUT:?}; stderr:\n{}",
                    seen.join("\n")
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                bail!(
                    "claw serve exited ({status}) before listening; stderr:\n{}",
                    seen.join("\n")
                )
            }
        }
    };
    let start_ms = ms(started.elapsed());

    let mut stream = TcpStream::connect(&addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .context("reading /healthz")?;
    ensure!(
        response.starts_with("HTTP/1.1 200"),
        "GET /healthz: {}",
        response.lines().next().unwrap_or("")
    );

    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc/PID/status")?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))?;
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("cannot parse {line:?}"))
    };
    let hwm_kib = field("VmHWM:")?;
    let rss_kib = field("VmRSS:")?;
    let anon_kib = field("RssAnon:")?;
    let file_kib = field("RssFile:")?;

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    ensure!(killed.success(), "kill -TERM {pid} failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait()? {
            break exit;
        }
        ensure!(
            Instant::now() < deadline,
            "claw serve did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    guard.0 = None;
    ensure!(
        exit.success(),
        "claw serve exited with {exit} after SIGTERM"
    );
    Ok(Rss {
        start_ms,
        hwm_kib,
        rss_kib,
        anon_kib,
        file_kib,
    })
}

// ---------------------------------------------------------------------------------------------
// Report

struct Table {
    rows: Vec<(String, String, String, &'static str)>,
}

impl Table {
    fn info(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.rows
            .push((name.into(), value.into(), String::new(), ""));
    }

    fn target(&mut self, name: impl Into<String>, value: f64, unit: &str, limit: f64) -> bool {
        let pass = value < limit;
        self.rows.push((
            name.into(),
            format!("{value:.2} {unit}"),
            format!("< {limit} {unit}"),
            if pass { "PASS" } else { "FAIL" },
        ));
        pass
    }

    fn print(&self) {
        let w0 = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = self.rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let w2 = self
            .rows
            .iter()
            .map(|r| r.2.len())
            .max()
            .unwrap_or(0)
            .max(6);
        println!(
            "{:w0$}  {:w1$}  {:w2$}  result",
            "figure", "value", "target"
        );
        println!("{}", "-".repeat(w0 + w1 + w2 + 12));
        for (name, value, target, verdict) in &self.rows {
            println!("{name:w0$}  {value:w1$}  {target:w2$}  {verdict}");
        }
    }
}

fn stats_row(table: &mut Table, name: &str, s: &Stats) {
    table.info(
        name,
        format!(
            "p50 {:.2} / p90 {:.2} / p99 {:.2} / max {:.2} ms",
            s.p50, s.p90, s.p99, s.max
        ),
    );
}

fn run(args: &Args) -> Result<()> {
    if let Some(root) = &args.generate {
        std::fs::create_dir_all(root)?;
        let generated = generate(root, args.resources)?;
        eprintln!(
            "generated {} documents in {} files below {}; admin token: {}",
            generated.documents(),
            generated.files,
            root.display(),
            generated.admin_token
        );
        return Ok(());
    }
    let dir = TempDir::new()?;
    let root = dir.path().join("manifests");
    std::fs::create_dir_all(&root)?;

    let started = Instant::now();
    let generated = generate(&root, args.resources)?;
    let generate_ms = ms(started.elapsed());
    eprintln!(
        "generated {} documents in {} files ({} multi-document) in {generate_ms:.0} ms",
        generated.documents(),
        generated.files,
        generated.multi_doc_files
    );

    // In-process load + validate; every generated document must be valid.
    let started = Instant::now();
    let set = ManifestSet::load(&root).context("ManifestSet::load")?;
    let desired = Desired::of(&set, true);
    let load_validate_ms = ms(started.elapsed());
    let problems: Vec<String> = set
        .file_diagnostics()
        .chain(desired.diagnostics.iter())
        .map(|d| d.display_in(&root).to_string())
        .collect();
    ensure!(
        problems.is_empty(),
        "{} problem(s) in the generated manifests, e.g.\n  {}",
        problems.len(),
        problems
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    ensure!(
        set.files.len() == generated.files,
        "loaded {} files, wrote {}",
        set.files.len(),
        generated.files
    );
    for (kind, expected) in &generated.kinds {
        let found = desired.resources.keys().filter(|(k, _)| k == kind).count();
        ensure!(
            found == *expected,
            "{kind}: {found} resources loaded, {expected} generated"
        );
    }
    drop(desired);
    drop(set);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    eprintln!(
        "server: cold start, {} edits, {} PATCHes ...",
        args.edits, args.patches
    );
    let served = runtime.block_on(in_process(args, &root, &generated))?;
    let slow = if args.slow_work {
        eprintln!("slow work: a stalled skill download, five slow MCP servers ...");
        Some(runtime.block_on(slow_work())?)
    } else {
        None
    };
    drop(runtime);
    let targets = Targets::at(args.resources);

    eprintln!("claw validate x{VALIDATE_RUNS} ...");
    let validated = validate(&root)?;
    eprintln!("claw serve (peak RSS) ...");
    let rss = serve_rss(&root, args.debounce_ms)?;

    let documents = generated.documents();
    let resources = documents - 1;
    let files = generated.files;
    let hwm_mib = rss.hwm_kib as f64 / 1024.0;
    let validate_s = validated.median_ms / 1000.0;

    let mut t = Table { rows: Vec::new() };
    let kinds: Vec<String> = generated
        .kinds
        .iter()
        .filter(|(k, _)| **k != Kind::Config)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    t.info(
        "resources",
        format!("{resources} ({}) + the Config", kinds.join(", ")),
    );
    t.info(
        "files",
        format!("{files} ({} multi-document)", generated.multi_doc_files),
    );
    t.info("debounce window", format!("{} ms", args.debounce_ms));
    t.info(
        "load + validate, in-process",
        format!("{load_validate_ms:.2} ms"),
    );
    let mut pass = t.target(
        "cold start: server::start (load+validate+reconcile)",
        served.cold_start_ms,
        "ms",
        targets.cold_start_ms,
    );
    t.info(
        "start -> every resource Ready",
        format!("{:.2} ms", served.all_ready_ms),
    );
    stats_row(
        &mut t,
        &format!("change -> converged, total ({} edits)", args.edits),
        &served.edits_total,
    );
    pass &= t.target(
        "change -> converged p50 beyond debounce",
        served.edits_beyond.p50,
        "ms",
        targets.beyond_p50_ms,
    );
    t.info(
        "change -> converged p90 beyond debounce",
        format!("{:.2} ms", served.edits_beyond.p90),
    );
    pass &= t.target(
        "change -> converged p99 beyond debounce",
        served.edits_beyond.p99,
        "ms",
        targets.beyond_p99_ms,
    );
    t.info(
        "change -> converged max beyond debounce",
        format!("{:.2} ms", served.edits_beyond.max),
    );
    stats_row(
        &mut t,
        "reconcile pass of one edit (last_duration_ms)",
        &served.pass_ms,
    );
    if let Some(p) = &served.patches {
        stats_row(
            &mut t,
            &format!("PATCH /api/v1/config round trip ({}x)", args.patches),
            p,
        );
    }
    t.info(
        format!("claw validate (median of {VALIDATE_RUNS}, min)"),
        format!("{:.2} ms, {:.2} ms", validated.median_ms, validated.min_ms),
    );
    t.info(
        "claw validate throughput",
        format!(
            "{:.0} files/s, {:.0} resources/s",
            files as f64 / validate_s,
            resources as f64 / validate_s
        ),
    );
    t.info(
        "claw serve: spawn -> listening",
        format!("{:.2} ms", rss.start_ms),
    );
    pass &= t.target(
        "claw serve peak RSS (VmHWM)",
        hwm_mib,
        "MiB",
        targets.rss_mib,
    );
    if let Some(w) = &slow {
        pass &= t.target(
            "stalled download: revoked token refused after",
            w.revoke_ms,
            "ms",
            TARGET_REVOKE_MS,
        );
        pass &= t.target(
            "stalled download: PATCH /api/v1/config",
            w.patch_ms,
            "ms",
            TARGET_WRITE_MS,
        );
        pass &= t.target(
            "stalled download: POST /api/v1/webhooks",
            w.post_ms,
            "ms",
            TARGET_WRITE_MS,
        );
        pass &= t.target(
            "stalled download: GET /api/v1/skills",
            w.skills_get_ms,
            "ms",
            TARGET_SKILLS_GET_MS,
        );
        pass &= t.target(
            "five MCP servers (3 s to initialise) all connected",
            w.mcp_all_ms,
            "ms",
            TARGET_MCP_ALL_MS,
        );
    }
    t.info(
        "claw serve RSS after /healthz (VmRSS)",
        format!(
            "{:.2} MiB ({:.2} anonymous, {:.2} mapped files)",
            rss.rss_kib as f64 / 1024.0,
            rss.anon_kib as f64 / 1024.0,
            rss.file_kib as f64 / 1024.0
        ),
    );
    println!();
    t.print();
    println!(
        "\n{}",
        if pass {
            "all targets met"
        } else {
            "some targets missed (see FAIL above)"
        }
    );

    let report = json!({
        "bench": "manifests",
        "allocator": if cfg!(feature = "mimalloc") { "mimalloc" } else { "system" },
        "resources": resources,
        "documents": documents,
        "kinds": generated.kinds.iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "files": files,
        "multi_doc_files": generated.multi_doc_files,
        "edits": args.edits,
        "patches": args.patches,
        "debounce_ms": args.debounce_ms,
        "load_validate_ms": round(load_validate_ms),
        "cold_start_ms": round(served.cold_start_ms),
        "all_ready_ms": round(served.all_ready_ms),
        "slow_work": slow.as_ref().map(|w| json!({
            "revoke_ms": round(w.revoke_ms),
            "patch_config_ms": round(w.patch_ms),
            "post_webhook_ms": round(w.post_ms),
            "get_skills_ms": round(w.skills_get_ms),
            "five_slow_mcp_connected_ms": round(w.mcp_all_ms),
        })),
        "converge_total_ms": served.edits_total.json(),
        "converge_beyond_debounce_ms": served.edits_beyond.json(),
        "reconcile_pass_ms": served.pass_ms.json(),
        "patch_config_ms": served.patches.map(|p| p.json()),
        "validate_median_ms": round(validated.median_ms),
        "validate_min_ms": round(validated.min_ms),
        "validate_files_per_s": round(files as f64 / validate_s),
        "validate_resources_per_s": round(resources as f64 / validate_s),
        "serve_start_ms": round(rss.start_ms),
        "serve_peak_rss_kib": rss.hwm_kib,
        "serve_rss_kib": rss.rss_kib,
        "targets": {
            "cold_start_ms": targets.cold_start_ms,
            "converge_beyond_debounce_p50_ms": targets.beyond_p50_ms,
            "converge_beyond_debounce_p99_ms": targets.beyond_p99_ms,
            "peak_rss_mib": targets.rss_mib,
        },
        "all_targets_met": pass,
    });
    println!("{report}");
    Ok(())
}
