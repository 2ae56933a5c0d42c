//! Delivery end to end: a real store, real HTTP receivers on 127.0.0.1, a manual clock (so no
//! test sleeps: they await the receiver or the dispatcher's count of recorded attempts).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::clock::{Clock, ManualClock};
use super::dispatcher::Dispatcher;
use super::policy::StaticLookup;
use super::{schedule, signing};
use crate::events::{self, EventType};
use crate::live::{ActiveConfig, Live};
use crate::manifest::kinds::WebhooksConfig;
use crate::manifest::secret::SecretContext;
use crate::store::deliveries::{self, AttemptRow, DeliveryRow};
use crate::store::{outbox, webhooks, Store};

const T0: i64 = 1_700_000_000_000;
const SEED: u64 = 42;
const SECRET: &str = "sup3r-S3CRET-value-7f1e";
const WAIT: Duration = Duration::from_secs(10);

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    live: Arc<Live>,
    clock: Arc<ManualClock>,
    secrets: SecretContext,
    lookup: Option<Arc<StaticLookup>>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data).await.unwrap();
        std::fs::create_dir_all(data.join("secrets")).unwrap();
        std::fs::write(data.join("secrets").join("hook-secret"), SECRET).unwrap();
        Fixture {
            live: Live::new(dir.path().into(), dir.path().into()),
            clock: ManualClock::new(T0),
            secrets: SecretContext {
                base_dir: dir.path().into(),
                data_dir: data,
            },
            store,
            dir,
            lookup: None,
        }
    }

    async fn endpoint(&self, name: &str, url: &str) {
        let mut tx = self.store.begin().await.unwrap();
        webhooks::upsert(
            &mut tx,
            name,
            url,
            r#"["*"]"#,
            r#"{"ref":"hook-secret"}"#,
            true,
            "2020-01-01T00:00:00Z",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    async fn event(&self, prompt: &str) -> events::Event {
        let e = events::task(
            EventType::TaskCompleted,
            "task_abc123",
            prompt,
            crate::tasks::TaskStatus::Completed,
            Some(4523),
            None,
        );
        let mut tx = self.store.begin().await.unwrap();
        outbox::insert(&mut tx, &e).await.unwrap();
        tx.commit().await.unwrap();
        e
    }

    fn webhooks_config(&self, change: impl FnOnce(&mut WebhooksConfig)) {
        let mut spec = self.live.config.load().spec.clone();
        change(&mut spec.webhooks);
        self.live
            .config
            .store(Arc::new(ActiveConfig { spec, digest: None }));
    }

    fn start(&self) -> Running {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let mut d = Dispatcher::new(
            self.store.clone(),
            self.live.clone(),
            self.secrets.clone(),
            clock,
        )
        .with_rng(StdRng::seed_from_u64(SEED));
        if let Some(lookup) = &self.lookup {
            d = d.with_lookup(lookup.clone());
        }
        let dispatcher = Arc::new(d);
        let stop = CancellationToken::new();
        let handle = dispatcher.clone().spawn(stop.clone());
        Running {
            dispatcher,
            stop,
            handle,
        }
    }

    async fn deliveries(&self, endpoint: &str) -> Vec<(DeliveryRow, Vec<AttemptRow>)> {
        deliveries::list(&self.store, endpoint, 100, 0)
            .await
            .unwrap()
            .0
    }

    async fn only_delivery(&self, endpoint: &str) -> (DeliveryRow, Vec<AttemptRow>) {
        let mut all = self.deliveries(endpoint).await;
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }
}

struct Running {
    dispatcher: Arc<Dispatcher>,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until `n` attempts have been recorded.
    async fn recorded(&self, n: u64) {
        let mut rx = self.dispatcher.recorded();
        tokio::time::timeout(WAIT, rx.wait_for(|v| *v >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} attempts were not recorded in time"))
            .unwrap();
    }

    async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap();
    }
}

/// What a test receiver answers to its `n`-th request (0-based).
#[derive(Clone)]
enum Reply {
    Status(u16),
    WithHeader(u16, &'static str, String),
    Hang,
}

#[derive(Clone, Debug)]
struct Got {
    headers: HeaderMap,
    body: Bytes,
}

struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    arrivals: mpsc::UnboundedReceiver<Got>,
}

impl Receiver {
    async fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::on(listener, reply)
    }

    fn on(
        listener: tokio::net::TcpListener,
        reply: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let (tx, arrivals) = mpsc::unbounded_channel();
        let reply = Arc::new(reply);
        let seen = got.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let got = Got { headers, body };
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push(got.clone());
                seen.len() - 1
            };
            let _ = tx.send(got);
            let reply = reply(n);
            async move {
                let response: Response = match reply {
                    Reply::Status(code) => {
                        (StatusCode::from_u16(code).unwrap(), "receiver says hi").into_response()
                    }
                    Reply::WithHeader(code, name, value) => (
                        StatusCode::from_u16(code).unwrap(),
                        [(name, value)],
                        "see header",
                    )
                        .into_response(),
                    Reply::Hang => std::future::pending().await,
                };
                response
            }
        };
        let app = axum::Router::new().fallback(handler);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            addr,
            got,
            arrivals,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn delivery_ids(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|g| header(&g.headers, "x-openclaw-delivery"))
            .collect()
    }

    async fn next(&mut self) -> Got {
        tokio::time::timeout(WAIT, self.arrivals.recv())
            .await
            .expect("the receiver got no request in time")
            .unwrap()
    }
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn failed_attempts_retry_on_the_jittered_schedule_with_the_same_delivery_id() {
    let f = Fixture::new().await;
    let rx = Receiver::start(|n| Reply::Status(if n < 2 { 500 } else { 200 })).await;
    f.endpoint("ci", &rx.url()).await;
    let event = f.event("Summarize \"the latest\" commits\n🦀 naïve").await;
    let run = f.start();

    // The dispatcher draws jitter from the same seeded generator, in this order.
    let mut rng = StdRng::seed_from_u64(SEED);
    let d2 = schedule::after_failure(1, 8, None, &mut rng).unwrap() as i64;
    let d3 = schedule::after_failure(2, 8, None, &mut rng).unwrap() as i64;
    assert!((4_000..=6_000).contains(&d2), "{d2}");
    assert!((240_000..=360_000).contains(&d3), "{d3}");

    run.recorded(1).await;
    let (row, _) = f.only_delivery("ci").await;
    assert_eq!(
        (row.status.as_str(), row.next_attempt_at),
        ("pending", T0 + d2)
    );
    f.clock.set(T0 + d2 - 1);
    f.clock.set(T0 + d2);
    run.recorded(2).await;
    let (row, _) = f.only_delivery("ci").await;
    assert_eq!(row.next_attempt_at, T0 + d2 + d3);
    f.clock.set(T0 + d2 + d3);
    run.recorded(3).await;

    let (row, attempts) = f.only_delivery("ci").await;
    assert_eq!((row.status.as_str(), row.attempts), ("delivered", 3));
    let at: Vec<&str> = attempts.iter().map(|a| a.at.as_str()).collect();
    assert_eq!(
        at,
        [
            deliveries::timestamp(T0),
            deliveries::timestamp(T0 + d2),
            deliveries::timestamp(T0 + d2 + d3)
        ]
    );
    let codes: Vec<Option<i64>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(500), Some(200)]);
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );
    assert_eq!(
        attempts[0].response_body.as_deref(),
        Some("receiver says hi")
    );

    assert_eq!(rx.delivery_ids(), vec![row.id.clone(); 3]);
    let got = rx.got.lock().unwrap().clone();
    for (g, at_ms) in got.iter().zip([T0, T0 + d2, T0 + d2 + d3]) {
        assert_eq!(g.body, event.payload.as_bytes());
        assert_eq!(header(&g.headers, "webhook-id"), row.id);
        assert_eq!(header(&g.headers, "x-openclaw-event"), "task.completed");
        assert_eq!(header(&g.headers, "content-type"), "application/json");
        assert_eq!(
            header(&g.headers, "x-openclaw-timestamp"),
            (at_ms / 1000).to_string()
        );
        assert_eq!(
            header(&g.headers, "x-openclaw-signature"),
            signing::openclaw_signature(SECRET, &g.body)
        );
        assert_eq!(
            header(&g.headers, "webhook-signature"),
            signing::standard_signature(SECRET, &row.id, at_ms / 1000, &g.body)
        );
    }
    run.stop().await;
}

#[tokio::test]
async fn retry_after_pushes_the_next_attempt_at_least_that_far() {
    let f = Fixture::new().await;
    let rx = Receiver::start(|_| Reply::WithHeader(503, "retry-after", "120".into())).await;
    f.endpoint("slow", &rx.url()).await;
    f.event("x").await;
    let run = f.start();
    run.recorded(1).await;
    let (row, attempts) = f.only_delivery("slow").await;
    assert_eq!(row.status.as_str(), "pending");
    assert!(
        row.next_attempt_at >= T0 + 120_000,
        "{}",
        row.next_attempt_at
    );
    assert!(row.next_attempt_at <= T0 + 121_000);
    assert_eq!(attempts[0].status_code, Some(503));
    run.stop().await;
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_every_delivery_exactly_once() {
    let f = Fixture::new().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    f.endpoint("flaky", &format!("http://{addr}/hook")).await;
    for i in 0..20 {
        f.event(&format!("event {i}")).await;
    }
    let run = f.start();
    run.recorded(20).await;
    let rows = f.deliveries("flaky").await;
    assert_eq!(rows.len(), 20);
    for (row, attempts) in &rows {
        assert_eq!((row.status.as_str(), row.attempts), ("pending", 1));
        assert!(attempts[0].status_code.is_none());
        assert!(attempts[0].error.is_some());
    }

    let rx = Receiver::on(tokio::net::TcpListener::bind(addr).await.unwrap(), |_| {
        Reply::Status(204)
    });
    f.clock.advance(10_000);
    run.recorded(40).await;
    let mut ids = rx.delivery_ids();
    assert_eq!(ids.len(), 20);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "each delivery id exactly once");
    for (row, _) in f.deliveries("flaky").await {
        assert_eq!((row.status.as_str(), row.attempts), ("delivered", 2));
        assert!(ids.contains(&row.id));
    }
    run.stop().await;
}

#[tokio::test]
async fn a_delivery_in_flight_at_stop_is_sent_again_with_the_same_id_after_restart() {
    let f = Fixture::new().await;
    let mut rx = Receiver::start(|n| {
        if n == 0 {
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    })
    .await;
    f.endpoint("r", &rx.url()).await;
    f.event("x").await;

    let first = f.start();
    let a = rx.next().await;
    first.stop().await;
    let (row, attempts) = f.only_delivery("r").await;
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));
    assert!(attempts.is_empty());

    let second = f.start();
    let b = rx.next().await;
    second.recorded(1).await;
    assert_eq!(header(&a.headers, "x-openclaw-delivery"), row.id);
    assert_eq!(header(&b.headers, "x-openclaw-delivery"), row.id);
    let (row, _) = f.only_delivery("r").await;
    assert_eq!((row.status.as_str(), row.attempts), ("delivered", 1));
    second.stop().await;
}

#[tokio::test]
async fn gone_410_fails_the_delivery_disables_the_endpoint_and_raises_system_error() {
    let f = Fixture::new().await;
    let rx = Receiver::start(|_| Reply::Status(410)).await;
    f.endpoint("gone", &rx.url()).await;
    f.event("x").await;
    let run = f.start();
    run.recorded(1).await;

    let (row, _) = f.only_delivery("gone").await;
    assert_eq!(row.status.as_str(), "failed");
    let endpoint = webhooks::get(&f.store, "gone").await.unwrap().unwrap();
    assert!(endpoint.disabled_reason.unwrap().contains("410 Gone"));
    let events = outbox::after(&f.store, 0, 100).await.unwrap();
    let errors: Vec<_> = events
        .iter()
        .filter(|e| e.event == "system.error")
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].payload.contains("webhook gone answered 410 Gone"));
    assert_eq!(rx.count(), 1);
    run.stop().await;
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let f = Fixture::new().await;
    let target = Receiver::start(|_| Reply::Status(200)).await;
    let location = format!("http://{}/elsewhere", target.addr);
    let l = location.clone();
    let rx = Receiver::start(move |_| Reply::WithHeader(302, "location", l.clone())).await;
    f.endpoint("moved", &rx.url()).await;
    f.event("x").await;
    let run = f.start();
    run.recorded(1).await;
    let (row, attempts) = f.only_delivery("moved").await;
    assert_eq!(row.status.as_str(), "pending");
    assert_eq!(attempts[0].status_code, Some(302));
    let error = attempts[0].error.as_deref().unwrap();
    assert!(
        error.contains("redirect (302)") && error.contains(&location),
        "{error}"
    );
    assert_eq!(target.count(), 0);
    run.stop().await;
}

#[tokio::test]
async fn metadata_addresses_are_refused_literal_or_resolved_and_loopback_works() {
    let mut f = Fixture::new().await;
    let rx = Receiver::start(|_| Reply::Status(200)).await;
    let port = rx.addr.port();
    let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
    table.insert(
        "metadata.test".into(),
        vec!["169.254.169.254".parse().unwrap()],
    );
    table.insert("receiver.test".into(), vec!["127.0.0.1".parse().unwrap()]);
    f.lookup = Some(Arc::new(StaticLookup(table)));
    f.endpoint("literal", "http://169.254.169.254/latest/meta-data/")
        .await;
    f.endpoint("rebound", &format!("http://metadata.test:{port}/hook"))
        .await;
    f.endpoint("named", &format!("http://receiver.test:{port}/hook"))
        .await;
    f.event("x").await;
    let run = f.start();
    run.recorded(3).await;

    let (_, attempts) = f.only_delivery("literal").await;
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("refused by network policy: 169.254.169.254 is link-local / cloud metadata")
    );
    let (_, attempts) = f.only_delivery("rebound").await;
    let error = attempts[0].error.as_deref().unwrap();
    assert!(
        error.contains(
            "refused by network policy: metadata.test resolves only to 169.254.169.254 (link-local / cloud metadata)"
        ),
        "{error}"
    );
    let (row, _) = f.only_delivery("named").await;
    assert_eq!(row.status.as_str(), "delivered");
    assert_eq!(
        rx.count(),
        1,
        "only the allowed endpoint reached the receiver"
    );
    run.stop().await;
}

#[tokio::test]
async fn deny_networks_refuses_loopback() {
    let f = Fixture::new().await;
    f.webhooks_config(|w| w.deny_networks = vec!["127.0.0.0/8".into()]);
    let rx = Receiver::start(|_| Reply::Status(200)).await;
    f.endpoint("local", &rx.url()).await;
    f.event("x").await;
    let run = f.start();
    run.recorded(1).await;
    let (row, attempts) = f.only_delivery("local").await;
    assert_eq!(row.status.as_str(), "pending");
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("refused by network policy: 127.0.0.1 is in deny_networks 127.0.0.0/8")
    );
    assert_eq!(rx.count(), 0);
    run.stop().await;
}

#[tokio::test]
async fn a_test_event_is_sent_on_wake_and_a_removed_endpoint_fails_its_deliveries() {
    let f = Fixture::new().await;
    let mut rx = Receiver::start(|_| Reply::Status(200)).await;
    f.endpoint("t", &rx.url()).await;
    let run = f.start();
    let d = deliveries::enqueue(
        &f.store,
        "t",
        "webhook.test",
        r#"{"event":"webhook.test"}"#,
        T0,
    )
    .await
    .unwrap();
    run.dispatcher.wake();
    let got = rx.next().await;
    assert_eq!(header(&got.headers, "x-openclaw-event"), "webhook.test");
    assert_eq!(header(&got.headers, "x-openclaw-delivery"), d.id);
    run.recorded(1).await;

    // Redelivery: same id, the attempt numbering goes on.
    assert!(deliveries::redeliver(&f.store, "t", &d.id, T0)
        .await
        .unwrap());
    run.dispatcher.wake();
    let again = rx.next().await;
    assert_eq!(header(&again.headers, "x-openclaw-delivery"), d.id);
    run.recorded(2).await;
    let (row, attempts) = f.only_delivery("t").await;
    assert_eq!(
        (row.status.as_str(), row.attempts, attempts.len()),
        ("delivered", 2, 2)
    );

    // A delivery whose endpoint is gone is failed without an attempt, in the same pass that
    // starts the one due with it: once that one is recorded, the orphan is settled.
    let orphan = deliveries::enqueue(&f.store, "nobody", "webhook.test", "{}", T0)
        .await
        .unwrap();
    assert!(deliveries::redeliver(&f.store, "t", &d.id, T0)
        .await
        .unwrap());
    run.dispatcher.wake();
    run.recorded(3).await;
    let row = deliveries::get(&f.store, "nobody", &orphan.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status.as_str(), "failed");
    assert_eq!(row.last_error.as_deref(), Some("endpoint removed/disabled"));
    run.stop().await;
}

/// Collects formatted log output, to scan it.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[tokio::test]
async fn the_secret_never_appears_in_logs_errors_or_the_database() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test runtime is single-threaded, so the dispatcher's task logs here too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let f = Fixture::new().await;
    let ok = Receiver::start(|_| Reply::Status(200)).await;
    let bad = Receiver::start(|_| Reply::Status(500)).await;
    let gone = Receiver::start(|_| Reply::Status(410)).await;
    f.endpoint("ok", &ok.url()).await;
    f.endpoint("bad", &bad.url()).await;
    f.endpoint("gone", &gone.url()).await;
    f.endpoint("meta", "http://169.254.169.254/").await;
    f.event(&format!("not the secret: {}", "x")).await;
    let run = f.start();
    run.recorded(4).await;
    f.clock.advance(10_000);
    run.recorded(6).await;
    run.stop().await;

    let mut stored = Vec::new();
    for (endpoint, _) in [("ok", 0), ("bad", 0), ("gone", 0), ("meta", 0)] {
        for (row, attempts) in f.deliveries(endpoint).await {
            stored.push(format!("{row:?}"));
            stored.extend(attempts.iter().map(|a| format!("{a:?}")));
        }
    }
    let stored = stored.join("\n");
    assert!(stored.contains("HTTP 500"), "{stored}");
    assert!(!stored.contains(SECRET));

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("webhook"), "logs were captured: {logs}");
    assert!(!logs.contains(SECRET), "the secret is in the logs");

    let mut files = Vec::new();
    files_under(&f.dir.path().join("data"), &mut files);
    for path in files
        .iter()
        .filter(|p| !p.starts_with(f.secrets.data_dir.join("secrets")))
    {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the secret is in {}",
            path.display()
        );
    }
}
