//! Webhook delivery benchmark: deliveries per second to a loopback receiver with 1, 10 and 100
//! subscribed endpoints, and event -> delivery latency with no backlog.
//!
//! It drives the library directly: a real SQLite store in a temp dir, endpoints in
//! `webhook_endpoints` with a stored `{ref: ...}` secret, events written to the outbox and
//! signalled through `Live::outbox` (as the task runner does), one [`Dispatcher`] on the system
//! clock, and an axum receiver on `127.0.0.1:0` in the same process that answers 204, counts
//! deliveries, checks that no delivery id arrives twice and verifies `X-OpenClaw-Signature` on
//! a sample.
//!
//! - Throughput: for each endpoint count, enough events for `--deliveries` deliveries are
//!   written in one transaction; the clock runs from the commit until the dispatcher has
//!   recorded every attempt (its `recorded()` watch, no polling). Fan-out is inside the timing.
//! - Latency: `--latency-events` events one at a time to one endpoint, each written after the
//!   previous one was recorded; time from just before the outbox insert to the receiver's
//!   handler seeing the request.
//!
//! Targets: >= 5,000 deliveries/s at every endpoint count; latency p99 < 50 ms. It prints a
//! table with PASS/FAIL per target and, last, one line of JSON with every figure. A missed
//! target still exits 0 (this is a report); something broken (a delivery lost, duplicated,
//! badly signed or not recorded delivered, a timeout) exits 1.
//!
//! ```text
//! cargo bench --bench webhooks
//! cargo bench --bench webhooks -- --deliveries 20000 --latency-events 300 --runs 3
//! ```
//!
//! The receiver shares the process and the cores with the dispatcher, so on a small machine the
//! figure is a floor. `--runs N` repeats each measurement and reports the best and the median.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use claw::events::{self, EventType};
use claw::live::Live;
use claw::manifest::secret::store_secret;
use claw::store::{deliveries, outbox, webhooks, Store};
use claw::webhooks::clock::SystemClock;
use claw::webhooks::dispatcher::Dispatcher;
use claw::webhooks::signing;
use serde_json::json;
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: cargo bench --bench webhooks -- [--deliveries N] [--latency-events N] [--runs N] [--endpoints 1,10,100]";

const SECRET_NAME: &str = "bench-hook";
const SECRET: &str = "bench-webhook-secret-9c2e";
/// Every this-many-th request has its signature verified by the receiver.
const VERIFY_EVERY: u64 = 97;
/// How long one throughput run may take before the run is declared broken.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one latency event may take before the run is declared broken.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

const TARGET_PER_SECOND: f64 = 5_000.0;
const TARGET_P99_MS: f64 = 50.0;

struct Args {
    deliveries: usize,
    latency_events: usize,
    runs: usize,
    endpoints: Vec<usize>,
}

impl Args {
    /// `None` when only help was asked for. `--bench` (added by `cargo bench`) and positional
    /// filters are ignored.
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Args>> {
        let mut args = Args {
            deliveries: 20_000,
            latency_events: 300,
            runs: 1,
            endpoints: vec![1, 10, 100],
        };
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> Result<String> {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| anyhow!("{name} needs a value"))
            };
            let number = |name: &str, v: String| -> Result<usize> {
                v.parse()
                    .with_context(|| format!("{name}: not a number: {v:?}"))
            };
            match flag.as_str() {
                "--deliveries" => args.deliveries = number(&flag, value(&flag)?)?,
                "--latency-events" => args.latency_events = number(&flag, value(&flag)?)?,
                "--runs" => args.runs = number(&flag, value(&flag)?)?,
                "--endpoints" => {
                    args.endpoints = value(&flag)?
                        .split(',')
                        .map(|n| number("--endpoints", n.trim().to_owned()))
                        .collect::<Result<_>>()?
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
        ensure!(args.deliveries >= 1, "--deliveries must be at least 1");
        ensure!(
            args.latency_events >= 1,
            "--latency-events must be at least 1"
        );
        ensure!(args.runs >= 1, "--runs must be at least 1");
        ensure!(
            args.endpoints.iter().all(|n| *n >= 1),
            "--endpoints must be at least 1 each"
        );
        Ok(Some(args))
    }
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench webhooks: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench webhooks: BROKEN: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench webhooks: BROKEN: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The receiver

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    count: AtomicU64,
    verified: AtomicU64,
    bad_signatures: AtomicU64,
    ids: Mutex<HashSet<String>>,
    duplicates: AtomicU64,
}

struct Receiver {
    url: String,
    seen: Arc<Seen>,
    /// When each request arrived (only while `latency` is on, to keep the throughput path lean).
    arrivals: mpsc::UnboundedReceiver<Instant>,
    stop: CancellationToken,
}

impl Receiver {
    async fn start(report_arrivals: bool) -> Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Seen::default());
        let (tx, arrivals) = mpsc::unbounded_channel();
        let s = seen.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let at = Instant::now();
            let n = s.count.fetch_add(1, Ordering::Relaxed);
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let id = header("x-openclaw-delivery").unwrap_or("").to_owned();
            if n % VERIFY_EVERY == 0 {
                let expected = signing::openclaw_signature(SECRET, &body);
                if header("x-openclaw-signature") == Some(expected.as_str()) {
                    s.verified.fetch_add(1, Ordering::Relaxed);
                } else {
                    s.bad_signatures.fetch_add(1, Ordering::Relaxed);
                }
            }
            let fresh = s.ids.lock().map(|mut ids| ids.insert(id)).unwrap_or(false);
            if !fresh {
                s.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            if report_arrivals {
                let _ = tx.send(at);
            }
            async { StatusCode::NO_CONTENT }
        };
        let app = axum::Router::new().fallback(handler);
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(cancelled.cancelled_owned())
                .await
        });
        Ok(Receiver {
            url: format!("http://{addr}/hook"),
            seen,
            arrivals,
            stop,
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ---------------------------------------------------------------------------------------------
// One setup: store, endpoints, dispatcher

struct Setup {
    _dir: TempDir,
    store: Store,
    live: Arc<Live>,
    dispatcher: Arc<Dispatcher>,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Setup {
    /// A fresh data dir with `endpoints` endpoints (all events) posting to `url`, and a running
    /// dispatcher.
    async fn new(endpoints: usize, url: &str) -> Result<Setup> {
        let dir = TempDir::new()?;
        let (manifests, data) = (dir.path().join("manifests"), dir.path().join("data"));
        std::fs::create_dir_all(&manifests)?;
        let store = Store::open(&data).await?;
        store_secret(&data, SECRET_NAME, SECRET)?;
        let secret_ref = json!({ "ref": SECRET_NAME }).to_string();
        let mut tx = store.begin().await?;
        for i in 0..endpoints {
            webhooks::upsert(
                &mut tx,
                &format!("hook-{i:03}"),
                url,
                r#"["*"]"#,
                &secret_ref,
                true,
                "2020-01-01T00:00:00Z",
            )
            .await?;
        }
        tx.commit().await?;
        let live = Live::new(manifests, data);
        let dispatcher = Arc::new(Dispatcher::new(
            store.clone(),
            live.clone(),
            live.secrets(),
            SystemClock::shared(),
        ));
        let stop = CancellationToken::new();
        let handle = dispatcher.clone().spawn(stop.clone());
        Ok(Setup {
            _dir: dir,
            store,
            live,
            dispatcher,
            stop,
            handle,
        })
    }

    async fn stop(self) -> Result<()> {
        self.stop.cancel();
        self.handle.await.context("dispatcher task")?;
        self.store.close().await;
        Ok(())
    }

    async fn count(&self, status: &str) -> Result<i64> {
        Ok(deliveries::count_by_status(&self.store)
            .await?
            .into_iter()
            .find(|(s, _)| s.as_str() == status)
            .map_or(0, |(_, n)| n))
    }
}

fn event(i: usize) -> events::Event {
    events::task(
        EventType::TaskCompleted,
        &format!("task_{i:08}"),
        "Summarize the latest commits on main and post the summary to #releases",
        claw::tasks::TaskStatus::Completed,
        Some(4523),
        None,
    )
}

/// Checks what the receiver saw against `expected` deliveries.
fn check_receiver(seen: &Seen, expected: u64) -> Result<()> {
    let count = seen.count.load(Ordering::Relaxed);
    let duplicates = seen.duplicates.load(Ordering::Relaxed);
    let bad = seen.bad_signatures.load(Ordering::Relaxed);
    ensure!(
        duplicates == 0,
        "{duplicates} delivery ids arrived more than once"
    );
    ensure!(bad == 0, "{bad} sampled deliveries had a wrong signature");
    ensure!(
        count == expected,
        "the receiver got {count} deliveries, expected {expected}"
    );
    ensure!(
        seen.verified.load(Ordering::Relaxed) >= 1,
        "no signature was verified"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measurements

struct Throughput {
    endpoints: usize,
    events: usize,
    deliveries: usize,
    seconds: f64,
}

impl Throughput {
    fn per_second(&self) -> f64 {
        self.deliveries as f64 / self.seconds
    }
}

async fn throughput(endpoints: usize, wanted: usize) -> Result<Throughput> {
    let rx = Receiver::start(false).await?;
    let setup = Setup::new(endpoints, &rx.url).await?;
    let events = wanted.div_ceil(endpoints);
    let total = events * endpoints;

    let mut tx = setup.store.begin().await?;
    for i in 0..events {
        outbox::insert(&mut tx, &event(i)).await?;
    }
    let mut recorded = setup.dispatcher.recorded();
    let before = *recorded.borrow();
    tx.commit().await?;
    let started = Instant::now();
    setup.live.outbox.notify_one();
    let target = before + total as u64;
    let finished = tokio::time::timeout(RUN_TIMEOUT, recorded.wait_for(|n| *n >= target))
        .await
        .map(|r| r.is_ok());
    match finished {
        Ok(true) => {}
        Ok(false) => bail!("{endpoints} endpoints: the dispatcher stopped"),
        Err(_) => bail!(
            "{endpoints} endpoints: {} of {total} attempts recorded after {} s",
            *recorded.borrow() - before,
            RUN_TIMEOUT.as_secs()
        ),
    }
    let seconds = started.elapsed().as_secs_f64();

    check_receiver(&rx.seen, total as u64).with_context(|| format!("{endpoints} endpoints"))?;
    let delivered = setup.count("delivered").await?;
    ensure!(
        delivered == total as i64,
        "{endpoints} endpoints: {delivered} of {total} deliveries recorded delivered"
    );
    setup.stop().await?;
    Ok(Throughput {
        endpoints,
        events,
        deliveries: total,
        seconds,
    })
}

/// Milliseconds from the outbox insert to the receiver, one event at a time, sorted.
async fn latency(events: usize) -> Result<Vec<f64>> {
    let mut rx = Receiver::start(true).await?;
    let setup = Setup::new(1, &rx.url).await?;
    let mut recorded = setup.dispatcher.recorded();
    let mut times = Vec::with_capacity(events);
    for i in 0..events {
        let e = event(i);
        let mut tx = setup.store.begin().await?;
        let started = Instant::now();
        outbox::insert(&mut tx, &e).await?;
        tx.commit().await?;
        setup.live.outbox.notify_one();
        let arrived = tokio::time::timeout(EVENT_TIMEOUT, rx.arrivals.recv())
            .await
            .map_err(|_| anyhow!("latency event {i} did not arrive in {EVENT_TIMEOUT:?}"))?
            .ok_or_else(|| anyhow!("the receiver stopped"))?;
        times.push(arrived.duration_since(started).as_secs_f64() * 1000.0);
        // No backlog: the next event is written once this one is recorded.
        let target = i as u64 + 1;
        tokio::time::timeout(EVENT_TIMEOUT, recorded.wait_for(|n| *n >= target))
            .await
            .map_err(|_| anyhow!("latency event {i} was not recorded in {EVENT_TIMEOUT:?}"))?
            .context("dispatcher stopped")?;
    }
    check_receiver(&rx.seen, events as u64)?;
    let delivered = setup.count("delivered").await?;
    ensure!(
        delivered == events as i64,
        "latency: {delivered} of {events} deliveries recorded delivered"
    );
    let pending = deliveries::due(&setup.store, i64::MAX, 1).await?;
    ensure!(pending.is_empty(), "latency: deliveries left pending");
    setup.stop().await?;
    times.sort_by(f64::total_cmp);
    Ok(times)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(values, 0.5)
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

// ---------------------------------------------------------------------------------------------
// Report

/// Rows of the result table: figure, value, target, verdict.
#[derive(Default)]
struct Table {
    rows: Vec<(String, String, String, &'static str)>,
}

impl Table {
    fn info(&mut self, name: impl Into<String>, value: String) {
        self.rows.push((name.into(), value, String::new(), ""));
    }

    fn target(&mut self, name: String, value: String, target: String, pass: bool) -> bool {
        self.rows
            .push((name, value, target, if pass { "PASS" } else { "FAIL" }));
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
            "{:w0$}  {:>w1$}  {:w2$}  result",
            "figure", "value", "target"
        );
        println!("{}", "-".repeat(w0 + w1 + w2 + 12));
        for (name, value, target, verdict) in &self.rows {
            println!("{name:w0$}  {value:>w1$}  {target:w2$}  {verdict}");
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    let mut table = Table::default();
    let mut pass = true;
    let mut report_throughput = Vec::new();
    for &endpoints in &args.endpoints {
        let mut rates = Vec::new();
        let mut last = None;
        for run in 1..=args.runs {
            eprintln!(
                "throughput: {endpoints} endpoint(s), ~{} deliveries, run {run}/{} ...",
                args.deliveries, args.runs
            );
            let t = throughput(endpoints, args.deliveries).await?;
            eprintln!(
                "  {} deliveries ({} events) in {:.2} s: {:.0}/s",
                t.deliveries,
                t.events,
                t.seconds,
                t.per_second()
            );
            rates.push(t.per_second());
            last = Some(t);
        }
        let t = last.ok_or_else(|| anyhow!("no run"))?;
        let best = rates.iter().copied().fold(0.0, f64::max);
        let med = median(&mut rates.clone());
        pass &= table.target(
            format!(
                "{endpoints} endpoint(s): {} deliveries ({} events), deliveries/s",
                t.deliveries, t.events
            ),
            if args.runs > 1 {
                format!("median {med:.0} / best {best:.0}")
            } else {
                format!("{med:.0}")
            },
            format!(">= {TARGET_PER_SECOND:.0}"),
            med >= TARGET_PER_SECOND,
        );
        report_throughput.push(json!({
            "endpoints": t.endpoints,
            "events": t.events,
            "deliveries": t.deliveries,
            "per_second": rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
            "median_per_second": med.round(),
        }));
    }

    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    let mut maxes = Vec::new();
    for run in 1..=args.runs {
        eprintln!(
            "latency: {} events one at a time, run {run}/{} ...",
            args.latency_events, args.runs
        );
        let times = latency(args.latency_events).await?;
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        eprintln!("  p50 {p50:.2} ms, p99 {p99:.2} ms");
        p50s.push(p50);
        p99s.push(p99);
        maxes.push(times[times.len() - 1]);
    }
    let (p50, p99, max) = (median(&mut p50s), median(&mut p99s), median(&mut maxes));
    table.info(
        format!(
            "event -> receiver latency, no backlog ({} events), p50",
            args.latency_events
        ),
        format!("{p50:.2} ms"),
    );
    pass &= table.target(
        format!(
            "event -> receiver latency, no backlog ({} events), p99",
            args.latency_events
        ),
        format!("{p99:.2} ms"),
        format!("< {TARGET_P99_MS:.0} ms"),
        p99 < TARGET_P99_MS,
    );
    table.info("  max", format!("{max:.2} ms"));

    println!();
    table.print();
    println!(
        "\n{}",
        if pass {
            "all targets met"
        } else {
            "some targets missed (see FAIL above)"
        }
    );
    let report = json!({
        "bench": "webhooks",
        "runs": args.runs,
        "throughput": report_throughput,
        "latency_events": args.latency_events,
        "latency_p50_ms": round(p50),
        "latency_p99_ms": round(p99),
        "latency_max_ms": round(max),
        "targets": {
            "deliveries_per_second": TARGET_PER_SECOND,
            "latency_p99_ms": TARGET_P99_MS,
        },
        "all_targets_met": pass,
    });
    println!("{report}");
    Ok(())
}
