//! Process metrics that are counted where they happen (reconcile passes, HTTP requests), kept
//! in atomics so the hot path takes no lock beyond a read lock on the per-route series map.
//! `api/metrics.rs` renders them, with the gauges read at scrape time, as Prometheus text.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::store::deliveries::AttemptResult;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; the last slot is `+Inf`).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes the `_bucket`, `_sum` and `_count` series; `labels` is empty or `a="b",...`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, slot) in self.buckets.iter().enumerate() {
            cumulative += slot.load(Ordering::Relaxed);
            let le = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(
            out,
            "{name}_count{braces} {}",
            self.count.load(Ordering::Relaxed)
        );
    }
}

/// An HTTP series: method, matched route, status code.
pub type HttpKey = (String, String, u16);

/// Per route, its series by method and status (few per route, so a scan).
type HttpSeries = HashMap<String, Vec<(String, u16, Arc<Histogram>)>>;

/// Metrics counted as things happen.
#[derive(Default)]
pub struct Metrics {
    /// Reconcile passes that ran (a request that found nothing changed is not a pass).
    pub reconciles: AtomicU64,
    pub reconcile_duration: Histogram,
    /// Resources whose runtime drifted from their manifest and was repaired at a resync.
    pub drift_repairs: AtomicU64,
    http: RwLock<HttpSeries>,
    /// Recorded webhook delivery attempts by outcome: delivered, retry, failed.
    webhook_attempts: [AtomicU64; 3],
}

/// The outcomes of webhook delivery attempts, in `webhook_attempts` order.
pub const WEBHOOK_OUTCOMES: [&str; 3] = AttemptResult::OUTCOMES;

impl Metrics {
    /// Records one reconcile pass.
    pub fn reconciled(&self, elapsed: Duration) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        self.reconcile_duration.observe(elapsed);
    }

    /// Records one recorded webhook delivery attempt.
    pub fn webhook_attempt(&self, result: AttemptResult) {
        self.webhook_attempts[result.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// `(outcome, attempts)` for every outcome, since the process started.
    pub fn webhook_attempts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        WEBHOOK_OUTCOMES
            .iter()
            .zip(&self.webhook_attempts)
            .map(|(o, n)| (*o, n.load(Ordering::Relaxed)))
    }

    /// Records one HTTP request.
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        // Hot path: observe under the read lock, no allocation, no reference counting.
        {
            let map = self.http.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, _, h)) = map
                .get(route)
                .and_then(|series| series.iter().find(|(m, s, _)| m == method && *s == status))
            {
                h.observe(elapsed);
                return;
            }
        }
        let mut map = self.http.write().unwrap_or_else(|e| e.into_inner());
        let series = map.entry(route.to_owned()).or_default();
        match series.iter().find(|(m, s, _)| m == method && *s == status) {
            Some((_, _, h)) => h.observe(elapsed),
            None => {
                let h = Arc::new(Histogram::default());
                h.observe(elapsed);
                series.push((method.to_owned(), status, h));
            }
        }
    }

    pub fn http_series(&self) -> Vec<(HttpKey, Arc<Histogram>)> {
        let mut all: Vec<_> = self
            .http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|(route, series)| {
                series
                    .iter()
                    .map(|(m, s, h)| ((m.clone(), route.clone(), *s), h.clone()))
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
