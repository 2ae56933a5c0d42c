//! `GET /api/v1/stats/hourly?hours=N`: per-hour counts for charts (the dashboard's overview):
//! tasks finished by final status and webhook delivery attempts by outcome, over the last `N`
//! hours (default 24, at most 168), one bucket per hour, oldest first, empty hours included.
//! The counting is SQL in `store/stats.rs`.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime};

use super::error::ApiError;
use super::resources::query;
use super::AppState;
use crate::store::stats::{self, HourCount};
use crate::tasks::service::timestamp;

/// Most hours one call may ask for (a week).
const MAX_HOURS: u32 = 168;

/// Final task statuses and delivery outcomes, always present (as 0) in every bucket so that a
/// client can draw a stacked chart without guessing the series.
const TASK_SERIES: [&str; 3] = ["completed", "failed", "cancelled"];
const DELIVERY_SERIES: [&str; 3] = ["succeeded", "failed", "error"];

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/stats/hourly", get(hourly))
}

#[derive(Debug, Deserialize)]
struct HourlyQuery {
    hours: Option<u32>,
}

async fn hourly(
    State(state): State<AppState>,
    q: Result<Query<HourlyQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let hours = query(q)?.hours.unwrap_or(24);
    if hours == 0 || hours > MAX_HOURS {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("hours must be between 1 and {MAX_HOURS}"),
        ));
    }
    let now = OffsetDateTime::now_utc();
    // The current hour counts as one of the `hours`: buckets start on an hour boundary.
    let current = now
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .map_err(ApiError::internal)?;
    let first = current - Duration::hours(i64::from(hours) - 1);
    let since = timestamp(first);
    let tasks = stats::tasks_finished(&state.store, &since)
        .await
        .map_err(ApiError::internal)?;
    let deliveries = stats::delivery_attempts(&state.store, &since)
        .await
        .map_err(ApiError::internal)?;
    let tasks = by_hour(&tasks);
    let deliveries = by_hour(&deliveries);
    let buckets: Vec<Value> = (0..hours)
        .map(|i| {
            let start = first + Duration::hours(i64::from(i));
            let key = &timestamp(start)[..13];
            json!({
                "hour": format!("{key}:00:00Z"),
                "tasks": series(&TASK_SERIES, tasks.get(key)),
                "deliveries": series(&DELIVERY_SERIES, deliveries.get(key)),
            })
        })
        .collect();
    Ok(Json(json!({
        "hours": hours,
        "from": format!("{}:00:00Z", &since[..13]),
        "to": timestamp(now),
        "buckets": buckets,
    })))
}

fn by_hour(counts: &[HourCount]) -> BTreeMap<&str, Vec<(&str, i64)>> {
    let mut out: BTreeMap<&str, Vec<(&str, i64)>> = BTreeMap::new();
    for c in counts {
        out.entry(c.hour.as_str())
            .or_default()
            .push((c.label.as_str(), c.count));
    }
    out
}

fn series(names: &[&str], found: Option<&Vec<(&str, i64)>>) -> Value {
    let mut out: Map<String, Value> = names.iter().map(|n| ((*n).into(), json!(0))).collect();
    for (label, count) in found.into_iter().flatten() {
        out.insert((*label).into(), json!(count));
    }
    Value::Object(out)
}
