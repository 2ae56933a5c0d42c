//! The delivery worker: fans outbox events out to deliveries, sends the due ones, records every
//! attempt and schedules retries.
//!
//! One task runs [`Dispatcher::run`]'s loop:
//! 1. fan out new outbox events (`store::deliveries::fan_out_at`) when the outbox was signalled
//!    (`Live::outbox`), on [`Dispatcher::wake`], at start, and at least every [`RESCAN_MS`];
//! 2. take due deliveries (up to [`MAX_IN_FLIGHT`] in flight) and send them concurrently with
//!    one pooled HTTP client that follows no redirects and resolves names through the network
//!    policy ([`super::policy`]);
//! 3. record finished attempts in batches (one transaction, a few multi-row statements, for all
//!    that finished together):
//!    2xx delivers; 410 Gone fails the delivery, disables the endpoint and raises
//!    `system.error`; anything else retries per [`super::schedule`] (honouring `Retry-After`)
//!    until `max_attempts`;
//! 4. sleep until the next delivery is due, an attempt finishes, the outbox is signalled,
//!    [`Dispatcher::wake`] or stop.
//!
//! Config (`spec.webhooks`) is re-read on every pass: timeout and `max_attempts` apply to the
//! next attempt; a changed network policy rebuilds the client. Secrets are resolved when
//! sending (once per secret reference per pass) and never logged or stored: attempt errors name the
//! secret reference only.
//!
//! A due delivery whose endpoint no longer exists or is inactive (disabled by its manifest or
//! by a 410) is failed with the error "endpoint removed/disabled" instead of waiting forever;
//! a redelivery after the endpoint is back sends it again.
//!
//! With replicas (`crate::cluster`) steps 1 and the pruning are the leader's alone; every
//! replica sends due deliveries.
//!
//! At-least-once: stopping (or a crash) between sending and recording leaves the delivery
//! pending, so the next process sends the same delivery id again.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::policy::{Lookup, NetworkPolicy, SystemLookup};
use super::{schedule, signing};
use crate::events;
use crate::live::Live;
use crate::manifest::kinds::{SecretRef, WebhooksConfig};
use crate::manifest::secret::SecretContext;
use crate::store::deliveries::{
    self, AttemptOutcome, AttemptResult, DeliveryRow, RESPONSE_BODY_LIMIT,
};
use crate::store::webhooks::{self as endpoints, EndpointRow};
use crate::store::{Store, StoreError};

/// Deliveries sent at once, at most.
pub const MAX_IN_FLIGHT: usize = 128;

/// Outbox events fanned out per transaction.
pub const FANOUT_BATCH: i64 = 1024;

/// A day in milliseconds (Config `webhooks.retention_days` is in days).
const DAY_MS: i64 = 24 * 3_600_000;

/// A resolved secret, or why it cannot be (naming the reference, never a value).
type Resolved = Result<Arc<str>, String>;

/// How long past its timeout a claimed attempt stays claimed (PostgreSQL): the time to
/// record it. A claim older than that is a dead sender's, and another replica retakes it.
const CLAIM_MARGIN_MS: i64 = 30_000;

/// How often old deliveries are pruned.
pub const PRUNE_EVERY_MS: i64 = 3_600_000;

/// How often the outbox is checked without a signal: a safety net for writers that do not
/// signal `Live::outbox` (another process, a forgotten notify). A read when nothing is new.
pub const RESCAN_MS: i64 = 1_000;

/// How soon the outbox is read again when events wait behind an open transaction.
const HELD_RESCAN_MS: i64 = 20;

/// How long to wait before trying again after a database error.
const STORE_RETRY_MS: i64 = 1_000;

/// The error of a delivery given up because its endpoint is gone or inactive.
pub const ENDPOINT_GONE: &str = "endpoint removed/disabled";

/// The webhook delivery worker.
pub struct Dispatcher {
    store: Store,
    live: Arc<Live>,
    secrets: SecretContext,
    /// `{ref}` secrets sealed in the database (PostgreSQL), opened: value or why not; `None`
    /// for a name the database does not hold (then it is a file in the data dir).
    sealed: Mutex<HashMap<String, Option<Resolved>>>,
    clock: Arc<dyn Clock>,
    lookup: Arc<dyn Lookup>,
    rng: Mutex<Box<dyn RngCore + Send>>,
    wake: Notify,
    recorded: watch::Sender<u64>,
}

/// What one send did, before it is judged against the schedule.
struct Sent {
    delivery_id: String,
    endpoint: String,
    attempt: i64,
    at_ms: i64,
    duration_ms: i64,
    status: Option<u16>,
    error: Option<String>,
    body: Option<String>,
    retry_after: Option<String>,
}

type SendFuture = Pin<Box<dyn Future<Output = Sent> + Send>>;

/// The HTTP client of one network policy.
struct Client {
    key: (Vec<String>, Vec<String>),
    built: Result<(Arc<NetworkPolicy>, reqwest::Client), String>,
}

/// The loop's state between passes.
struct State {
    client: Option<Client>,
    in_flight: FuturesUnordered<SendFuture>,
    in_flight_ids: HashSet<String>,
    fan_out: bool,
    next_prune_ms: i64,
    next_rescan_ms: i64,
}

/// What a pass leaves to wait for.
struct Plan {
    /// More deliveries are due than could be started: wait for an attempt to finish only.
    saturated: bool,
    /// When to wake up at the latest.
    deadline_ms: Option<i64>,
}

impl Dispatcher {
    /// A dispatcher over `store`, reading Config from `live`, resolving endpoint secrets with
    /// `secrets` and telling time by `clock`.
    pub fn new(
        store: Store,
        live: Arc<Live>,
        secrets: SecretContext,
        clock: Arc<dyn Clock>,
    ) -> Dispatcher {
        Dispatcher {
            store,
            live,
            secrets,
            sealed: Mutex::new(HashMap::new()),
            clock,
            lookup: Arc::new(SystemLookup),
            rng: Mutex::new(Box::new(StdRng::from_os_rng())),
            wake: Notify::new(),
            recorded: watch::Sender::new(0),
        }
    }

    /// Resolves host names with `lookup` instead of the system resolver (tests).
    pub fn with_lookup(mut self, lookup: Arc<dyn Lookup>) -> Dispatcher {
        self.lookup = lookup;
        self
    }

    /// Draws retry jitter from `rng` (tests make it deterministic).
    pub fn with_rng(self, rng: impl RngCore + Send + 'static) -> Dispatcher {
        if let Ok(mut r) = self.rng.lock() {
            *r = Box::new(rng);
        }
        self
    }

    /// Asks the loop to look for new events and due deliveries now (e.g. after a redeliver).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Counts attempts recorded so far; subscribe to await progress without polling.
    pub fn recorded(&self) -> watch::Receiver<u64> {
        self.recorded.subscribe()
    }

    /// Runs the loop on its own task until `stop` is cancelled. Attempts in flight at stop are
    /// abandoned unrecorded, so they are sent again (same delivery id) by the next process.
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(stop).await })
    }

    async fn run(&self, stop: CancellationToken) {
        let mut state = State {
            client: None,
            in_flight: FuturesUnordered::new(),
            in_flight_ids: HashSet::new(),
            fan_out: true,
            next_prune_ms: self.clock.now_ms(),
            next_rescan_ms: self.clock.now_ms(),
        };
        tracing::info!("webhook dispatcher started");
        // Interest in the outbox signal stays registered while the loop works, and is renewed
        // as soon as it fires, so a `notify_waiters` at any moment is never lost. (`wake` uses
        // `notify_one`, whose permit waits for the next `notified()`.)
        let mut outbox = Box::pin(self.live.outbox.notified());
        outbox.as_mut().enable();
        'run: loop {
            let plan = match self.pass(&mut state).await {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery: database error; retrying");
                    state.fan_out = true;
                    Plan {
                        saturated: false,
                        deadline_ms: Some(self.clock.now_ms() + STORE_RETRY_MS),
                    }
                }
            };
            let sleep = async {
                match plan.deadline_ms {
                    _ if plan.saturated => std::future::pending().await,
                    Some(deadline) => self.clock.sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(sleep);
            // Waits for a reason to make a pass.
            loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break 'run,
                    Some(sent) = state.in_flight.next(), if !state.in_flight.is_empty() => {
                        let mut done = vec![sent];
                        while let Some(Some(more)) = state.in_flight.next().now_or_never() {
                            done.push(more);
                        }
                        for s in &done {
                            state.in_flight_ids.remove(&s.delivery_id);
                        }
                        if let Err(e) = self.record(&mut state, done).await {
                            // The deliveries stay pending and are sent again: at-least-once.
                            tracing::warn!(error = %e, "webhook delivery: attempts not recorded");
                        }
                    }
                    _ = &mut outbox => {
                        outbox.set(self.live.outbox.notified());
                        outbox.as_mut().enable();
                        // With replicas a follower's own events are the leader's to fan out: it
                        // tells the leader, and makes no pass for them (its rescan and finished
                        // attempts claim due deliveries).
                        if !self.live.cluster.is_leader() {
                            self.live.cluster.outbox_written();
                            continue;
                        }
                        state.fan_out = true;
                    }
                    _ = self.wake.notified() => state.fan_out = true,
                    _ = &mut sleep => state.fan_out = true,
                }
                break;
            }
        }
        tracing::info!(
            in_flight = state.in_flight_ids.len(),
            "webhook dispatcher stopped"
        );
    }

    /// Fans out, prunes when due and starts due deliveries.
    async fn pass(&self, state: &mut State) -> Result<Plan, StoreError> {
        let now = self.clock.now_ms();
        if now >= state.next_rescan_ms {
            state.fan_out = true;
        }
        // Single duties (SPEC §6): with replicas only the leader fans out and prunes; the
        // others send due deliveries only.
        let leads = self.live.cluster.is_leader();
        if state.fan_out {
            state.fan_out = false;
            state.next_rescan_ms = now + RESCAN_MS;
            if leads {
                while deliveries::fan_out_at(&self.store, FANOUT_BATCH, now).await?
                    == FANOUT_BATCH as usize
                {}
                // PostgreSQL: events committed behind a transaction still open are read once
                // it ends, which may write no event (and so wake no one): look again soon.
                if deliveries::fan_out_held(&self.store).await? {
                    state.next_rescan_ms = now + HELD_RESCAN_MS;
                }
            }
        }
        if now >= state.next_prune_ms {
            if leads {
                let days = i64::from(self.live.config.load().spec.webhooks.retention_days.max(1));
                let cutoff = deliveries::timestamp(now - days * DAY_MS);
                let pruned = deliveries::prune(&self.store, &cutoff).await?;
                if pruned > 0 {
                    tracing::info!(pruned, "pruned old webhook deliveries");
                }
            }
            state.next_prune_ms = now + PRUNE_EVERY_MS;
        }

        let capacity = MAX_IN_FLIGHT - state.in_flight_ids.len();
        // Refill only below half: each refill reads past the rows in flight, so refilling
        // after every finished attempt would cost a query per attempt.
        if state.in_flight_ids.len() > MAX_IN_FLIGHT / 2 {
            return Ok(Plan {
                saturated: true,
                deadline_ms: None,
            });
        }
        // On PostgreSQL each row is claimed for this replica until its attempt can no longer
        // be running (the timeout, with a margin); on SQLite the rows in flight are skipped.
        let timeout_ms = self.live.config.load().spec.webhooks.timeout_seconds.max(1) as i64 * 1000;
        let until = now + timeout_ms + CLAIM_MARGIN_MS;
        let (rows, saturated) =
            deliveries::claim_due(&self.store, now, capacity, until, &state.in_flight_ids).await?;
        if !rows.is_empty() {
            self.start(state, rows, now).await?;
        }
        let next_due = if saturated {
            None
        } else {
            deliveries::next_due_after(&self.store, now).await?
        };
        let timers = state.next_prune_ms.min(state.next_rescan_ms);
        let deadline_ms = Some(next_due.map_or(timers, |d| d.min(timers)));
        Ok(Plan {
            saturated,
            deadline_ms,
        })
    }

    /// The client for the policy of `config`, rebuilt when the policy changed.
    fn client(
        &self,
        state: &mut State,
        config: &WebhooksConfig,
    ) -> Result<(Arc<NetworkPolicy>, reqwest::Client), String> {
        let key = (config.allow_networks.clone(), config.deny_networks.clone());
        if state.client.as_ref().is_none_or(|c| c.key != key) {
            let built = NetworkPolicy::new(config)
                .map_err(|e| format!("network policy: {e}"))
                .and_then(|policy| {
                    let policy = Arc::new(policy);
                    build_client(policy.clone(), self.lookup.clone()).map(|c| (policy, c))
                });
            if let Err(e) = &built {
                tracing::error!(error = %e, "webhook deliveries cannot be sent until Config is fixed");
            }
            state.client = Some(Client { key, built });
        }
        match &state.client {
            Some(c) => c.built.clone(),
            None => Err("no HTTP client".to_string()),
        }
    }

    /// Starts sending `rows` (all due, none in flight).
    async fn start(
        &self,
        state: &mut State,
        rows: Vec<DeliveryRow>,
        now: i64,
    ) -> Result<(), StoreError> {
        let config = self.live.config.load().spec.webhooks.clone();
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        let client = self.client(state, &config);
        let endpoints: HashMap<String, EndpointRow> = endpoints::list(&self.store)
            .await?
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        self.refresh_sealed(endpoints.values().map(|e| e.secret_ref.as_str()))
            .await?;
        let mut secrets: HashMap<String, Result<Arc<str>, String>> = HashMap::new();
        let mut gone = Vec::new();
        for row in rows {
            let Some(endpoint) = endpoints.get(&row.endpoint).filter(|e| e.active()) else {
                gone.push(row.id);
                continue;
            };
            // Endpoints sharing a secret reference share one resolve.
            let secret = secrets
                .entry(endpoint.secret_ref.clone())
                .or_insert_with(|| self.secret(&endpoint.secret_ref))
                .clone()
                .map_err(|e| format!("webhook {}: {e}", endpoint.name));
            let job = Job {
                client: client.clone(),
                url: endpoint.url.clone(),
                secret,
                attempt: row.attempts + 1,
                at_ms: now,
                timeout,
                row,
            };
            state.in_flight_ids.insert(job.row.id.clone());
            state.in_flight.push(Box::pin(job.send()));
        }
        if !gone.is_empty() {
            tracing::warn!(
                count = gone.len(),
                "webhook deliveries failed: {ENDPOINT_GONE}"
            );
            deliveries::fail_pending(&self.store, &gone, ENDPOINT_GONE, now).await?;
        }
        Ok(())
    }

    /// On PostgreSQL, `{ref}` secrets live sealed in the database: reads them again when an
    /// endpoint names one not looked up yet (a secret is never changed in place: a new one gets
    /// a new name, so what was read stays true).
    async fn refresh_sealed<'a>(
        &self,
        refs: impl Iterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        if !self.store.is_postgres() {
            return Ok(());
        }
        let missing: Vec<String> = {
            let sealed = self.sealed.lock().unwrap_or_else(|e| e.into_inner());
            refs.filter_map(|r| match serde_json::from_str::<SecretRef>(r) {
                Ok(SecretRef::Ref(name)) if !sealed.contains_key(&name) => Some(name),
                _ => None,
            })
            .collect()
        };
        if !missing.is_empty() {
            let opened = crate::store::secrets::open_all(&self.store).await?;
            let mut sealed = self.sealed.lock().unwrap_or_else(|e| e.into_inner());
            sealed.extend(opened.into_iter().map(|(n, v)| (n, Some(v.map(Arc::from)))));
            for name in missing {
                sealed.entry(name).or_insert(None);
            }
        }
        Ok(())
    }

    /// The secret of an endpoint's `secret_ref`; the error names the reference, never a value.
    fn secret(&self, secret_ref: &str) -> Result<Arc<str>, String> {
        let reference: SecretRef = serde_json::from_str(secret_ref).map_err(|_| {
            "its secret reference is not valid JSON of {fromEnv}, {fromFile} or {ref}".to_string()
        })?;
        if let SecretRef::Ref(name) = &reference {
            let sealed = self.sealed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(Some(found)) = sealed.get(name) {
                return found.clone();
            }
        }
        self.secrets
            .resolve(&reference)
            .map(Arc::from)
            .map_err(|e| format!("secret cannot be resolved: {e}"))
    }

    /// Judges finished attempts, records them in one transaction and handles 410s.
    async fn record(&self, state: &mut State, done: Vec<Sent>) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let max_attempts = self.live.config.load().spec.webhooks.max_attempts;
        let mut gone: Vec<(String, String)> = Vec::new();
        let outcomes: Vec<AttemptOutcome> = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            done.into_iter()
                .map(|s| {
                    let result = match s.status {
                        Some(code) if (200..300).contains(&code) => AttemptResult::Delivered,
                        Some(410) => {
                            gone.push((s.endpoint.clone(), s.delivery_id.clone()));
                            AttemptResult::Failed
                        }
                        _ => {
                            let retry_after = s
                                .retry_after
                                .as_deref()
                                .and_then(|v| schedule::parse_retry_after(v, now));
                            match schedule::after_failure(
                                u32::try_from(s.attempt).unwrap_or(u32::MAX),
                                max_attempts,
                                retry_after,
                                &mut *rng,
                            ) {
                                Some(delay) => AttemptResult::Retry {
                                    at_ms: now.saturating_add(delay as i64),
                                },
                                None => AttemptResult::Failed,
                            }
                        }
                    };
                    log_attempt(&s, result);
                    AttemptOutcome {
                        delivery_id: s.delivery_id,
                        attempt: s.attempt,
                        at_ms: s.at_ms,
                        status_code: s.status.map(i64::from),
                        duration_ms: s.duration_ms,
                        error: s.error,
                        response_body: s.body,
                        result,
                    }
                })
                .collect()
        };
        deliveries::record_attempts(&self.store, &outcomes).await?;
        for o in &outcomes {
            self.live.metrics.webhook_attempt(o.result);
        }
        let mut seen = HashSet::new();
        for (endpoint, delivery_id) in gone {
            if !seen.insert(endpoint.clone()) {
                continue;
            }
            let at = deliveries::timestamp(now);
            let reason = format!("answered 410 Gone to delivery {delivery_id} at {at}");
            let event = events::system_error(
                "webhooks",
                &format!(
                    "webhook {endpoint} answered 410 Gone: the endpoint is disabled until its manifest changes"
                ),
                serde_json::json!({ "webhook": endpoint, "delivery_id": delivery_id }),
            );
            if deliveries::disable_endpoint(&self.store, &endpoint, &reason, &at, &event).await? {
                tracing::warn!(webhook = %endpoint, delivery_id = %delivery_id, "webhook endpoint answered 410 Gone; disabled");
                state.fan_out = true;
                // Its `system.error`: with replicas, for the leader to fan out.
                self.live.cluster.outbox_written();
            }
        }
        // Counted last: a watcher of `recorded` sees everything an attempt caused, including
        // an endpoint disabled by 410.
        self.recorded.send_modify(|n| *n += outcomes.len() as u64);
        Ok(())
    }
}

fn log_attempt(s: &Sent, result: AttemptResult) {
    match result {
        AttemptResult::Delivered => tracing::debug!(
            webhook = %s.endpoint, delivery_id = %s.delivery_id, attempt = s.attempt,
            status = s.status, duration_ms = s.duration_ms, "webhook delivered"
        ),
        AttemptResult::Retry { at_ms } => tracing::info!(
            webhook = %s.endpoint, delivery_id = %s.delivery_id, attempt = s.attempt,
            status = s.status, error = s.error.as_deref().unwrap_or(""),
            retry_at = %deliveries::timestamp(at_ms), "webhook attempt failed; will retry"
        ),
        AttemptResult::Failed => tracing::warn!(
            webhook = %s.endpoint, delivery_id = %s.delivery_id, attempt = s.attempt,
            status = s.status, error = s.error.as_deref().unwrap_or(""),
            "webhook delivery failed; giving up"
        ),
    }
}

fn build_client(
    policy: Arc<NetworkPolicy>,
    lookup: Arc<dyn Lookup>,
) -> Result<reqwest::Client, String> {
    crate::egress::client_builder(policy, lookup)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(signing::USER_AGENT)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .build()
        .map_err(|e| format!("HTTP client: {}", error_chain(&e)))
}

/// One attempt to send.
struct Job {
    client: Result<(Arc<NetworkPolicy>, reqwest::Client), String>,
    url: String,
    secret: Result<Arc<str>, String>,
    attempt: i64,
    at_ms: i64,
    timeout: Duration,
    row: DeliveryRow,
}

impl Job {
    async fn send(self) -> Sent {
        let started = Instant::now();
        let mut sent = Sent {
            delivery_id: self.row.id.clone(),
            endpoint: self.row.endpoint.clone(),
            attempt: self.attempt,
            at_ms: self.at_ms,
            duration_ms: 0,
            status: None,
            error: None,
            body: None,
            retry_after: None,
        };
        if let Err(e) = self.post(&mut sent).await {
            sent.error = Some(e);
        }
        sent.duration_ms = started.elapsed().as_millis().min(i64::MAX as u128) as i64;
        sent
    }

    async fn post(&self, sent: &mut Sent) -> Result<(), String> {
        let (policy, client) = self.client.as_ref().map_err(Clone::clone)?;
        let secret = self.secret.as_ref().map_err(Clone::clone)?;
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("invalid URL: {e}"))?;
        policy.check_url(&url)?;
        let body = self.row.payload.as_bytes();
        let mut request = client.post(url).timeout(self.timeout);
        for (name, value) in signing::headers(
            secret,
            &self.row.id,
            &self.row.event,
            self.at_ms / 1000,
            body,
        ) {
            request = request.header(name, value);
        }
        let mut response = request
            .body(self.row.payload.clone())
            .send()
            .await
            .map_err(|e| describe(e, self.timeout))?;
        let status = response.status();
        sent.status = Some(status.as_u16());
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        sent.retry_after = header(reqwest::header::RETRY_AFTER);
        let location = header(reqwest::header::LOCATION);
        // The body is only kept for the record; reading it may still time out.
        let mut bytes = Vec::new();
        while bytes.len() < RESPONSE_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    sent.body = Some(utf8_prefix(&bytes));
                    return Err(format!(
                        "reading the response: {}",
                        describe(e, self.timeout)
                    ));
                }
            }
        }
        sent.body = Some(utf8_prefix(&bytes));
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err(format!(
                "redirect ({}) to {} not followed: webhook deliveries follow no redirects",
                status.as_u16(),
                location.as_deref().unwrap_or("(no Location header)")
            ))
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

/// The first [`RESPONSE_BODY_LIMIT`] bytes as text, cut at a character boundary.
fn utf8_prefix(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(RESPONSE_BODY_LIMIT)];
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        // Cut inside a character at the end: drop the partial character.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => {
            let s = String::from_utf8_lossy(bytes);
            deliveries::truncate_at_char_boundary(&s, RESPONSE_BODY_LIMIT).to_string()
        }
    }
}

/// A request error with its causes (the URL is left out: the attempt belongs to its endpoint).
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} s", timeout.as_secs());
    }
    error_chain(&e.without_url())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
