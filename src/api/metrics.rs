//! `GET /metrics`: Prometheus text format (version 0.0.4), behind a read token like every GET.
//! Counters and latencies come from [`crate::metrics::Metrics`]; gauges (resources, tasks,
//! webhook deliveries) are read at scrape time from live state and the store.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::AppState;
use crate::store::deliveries;

/// The `/metrics` route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Counts every routed request by method, matched route (not the raw path, so ids do not
/// explode the series) and status, with its latency.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    track_then(&state, req, |req| next.run(req)).await
}

/// [`track`] around `inner` (a concrete future: see [`super::auth::authenticate_then`]).
pub async fn track_then<F, Fut>(state: &AppState, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let started = Instant::now();
    let method = req.method().clone();
    // MatchedPath is a shared string: cloning it does not allocate.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = inner(req).await;
    if let Some(route) = route {
        state.live.metrics.request(
            method.as_str(),
            route.as_str(),
            response.status().as_u16(),
            started.elapsed(),
        );
    }
    response
}

/// Prometheus metrics
///
/// Text exposition format 0.0.4: reconcile passes, HTTP requests by route and status,
/// resources, tasks and webhook deliveries.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "system",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let deliveries = deliveries::count_by_status(&state.store)
        .await
        .map_err(ApiError::internal)?;
    let live = &state.live;
    let m = &live.metrics;
    let mut out = String::with_capacity(4096);

    family(
        &mut out,
        "claw_reconciles_total",
        "counter",
        "Reconcile passes run.",
    );
    let _ = writeln!(
        out,
        "claw_reconciles_total {}",
        m.reconciles.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "claw_drift_repairs_total",
        "counter",
        "Resources found drifted from their manifest and repaired at a resync.",
    );
    let _ = writeln!(
        out,
        "claw_drift_repairs_total {}",
        m.drift_repairs.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "claw_reconcile_duration_seconds",
        "histogram",
        "Duration of reconcile passes.",
    );
    m.reconcile_duration
        .render(&mut out, "claw_reconcile_duration_seconds", "");

    family(
        &mut out,
        "claw_resources",
        "gauge",
        "Declared resources by kind and readiness.",
    );
    let summary = live.summary.load();
    for (kind, count) in &summary.resources {
        let _ = writeln!(
            out,
            "claw_resources{{kind=\"{kind}\",ready=\"true\"}} {}",
            count.ready
        );
        let _ = writeln!(
            out,
            "claw_resources{{kind=\"{kind}\",ready=\"false\"}} {}",
            count.total - count.ready
        );
    }

    family(&mut out, "claw_tasks", "gauge", "Tasks by status.");
    for (status, n) in state.tasks.deployment_counts().await {
        let _ = writeln!(out, "claw_tasks{{status=\"{status}\"}} {n}");
    }

    family(
        &mut out,
        "claw_webhook_deliveries",
        "gauge",
        "Webhook deliveries by outcome (pending, delivered, failed) in the store.",
    );
    for outcome in deliveries::DeliveryStatus::ALL {
        let n = deliveries
            .iter()
            .find(|(s, _)| *s == outcome)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "claw_webhook_deliveries{{outcome=\"{outcome}\"}} {n}");
    }

    family(
        &mut out,
        "claw_webhook_delivery_attempts_total",
        "counter",
        "Webhook delivery attempts recorded by this process, by outcome (delivered, retry, failed).",
    );
    for (outcome, n) in m.webhook_attempts() {
        let _ = writeln!(
            out,
            "claw_webhook_delivery_attempts_total{{outcome=\"{outcome}\"}} {n}"
        );
    }

    family(
        &mut out,
        "claw_http_requests_total",
        "counter",
        "HTTP requests by method, route and status.",
    );
    let series = m.http_series();
    for ((method, route, status), h) in &series {
        let _ = writeln!(
            out,
            "claw_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
            escape(route),
            h.count()
        );
    }
    family(
        &mut out,
        "claw_http_request_duration_seconds",
        "histogram",
        "HTTP request latency by method, route and status.",
    );
    for ((method, route, status), h) in &series {
        let labels = format!(
            "method=\"{method}\",route=\"{}\",status=\"{status}\"",
            escape(route)
        );
        h.render(&mut out, "claw_http_request_duration_seconds", &labels);
    }

    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
