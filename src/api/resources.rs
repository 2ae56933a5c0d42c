//! `GET /api/v1/resources` (the status of every declared resource) and
//! `POST /api/v1/reconcile` (a full pass now; `{"confirm_prune": true}` lifts the prune guard
//! once).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::manifest::Kind;
use crate::reconcile::Scope;

/// Declared resources of `kind` with their statuses, one page of them, and the total.
pub async fn declared_page(
    state: &AppState,
    kind: Kind,
    page: &Page,
) -> Result<
    (
        Vec<(
            crate::manifest::Resource,
            Option<crate::reconcile::status::ResourceStatus>,
        )>,
        usize,
    ),
    ApiError,
> {
    let (shown, total) = state.live.resources.page(kind, page.offset, page.limit);
    Ok((
        shown
            .into_iter()
            .map(|(r, s)| (crate::manifest::Resource::clone(&r), s))
            .collect(),
        total,
    ))
}

/// The list envelope every list endpoint answers: `{items, total, limit, offset}`.
pub fn list_body(items: Vec<Value>, total: usize, page: &Page) -> Json<Value> {
    Json(json!({ "items": items, "total": total, "limit": page.limit, "offset": page.offset }))
}

/// A declared resource of `kind` named `name`, with its status (404 when not declared).
pub async fn find_declared(
    state: &AppState,
    kind: Kind,
    name: &str,
) -> Result<
    (
        crate::manifest::Resource,
        Option<crate::reconcile::status::ResourceStatus>,
    ),
    ApiError,
> {
    state
        .live
        .resources
        .get(kind, name)
        .map(|(r, s)| (crate::manifest::Resource::clone(&r), s))
        .ok_or_else(|| {
            ApiError::not_found(format!("{} {name} not found", kind.as_str().to_lowercase()))
        })
}

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/resources", get(list))
        .route("/api/v1/reconcile", post(reconcile))
}

/// `?limit&offset` as every list takes them.
#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
}

fn default_limit() -> usize {
    20
}

impl Page {
    /// Checks the bounds (limit 1..=100).
    pub fn checked(self) -> Result<Page, ApiError> {
        if self.limit == 0 || self.limit > 100 {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "limit must be between 1 and 100",
            ));
        }
        Ok(self)
    }
}

#[derive(Debug, Deserialize)]
struct KindFilter {
    kind: Option<String>,
}

/// Query parameters, with a 400 in our error format when they do not parse.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request("invalid_parameter", e.body_text()))
}

async fn list(
    State(state): State<AppState>,
    filter: Result<Query<KindFilter>, QueryRejection>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = query(filter)?;
    let kind = match filter.kind.as_deref() {
        None => None,
        Some(k) => Some(
            k.parse::<Kind>()
                .map_err(|e| ApiError::bad_request("invalid_parameter", e.to_string()))?,
        ),
    };
    let page = query(page)?.checked()?;
    let all = state.live.resources.statuses();
    let matching: Vec<_> = all
        .into_iter()
        .filter(|s| kind.is_none_or(|k| s.kind == k))
        .collect();
    let total = matching.len();
    let items: Vec<_> = matching
        .into_iter()
        .skip(page.offset)
        .take(page.limit)
        .collect();
    Ok(Json(
        json!({ "items": items, "total": total, "limit": page.limit, "offset": page.offset }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileRequest {
    #[serde(default)]
    confirm_prune: bool,
}

async fn reconcile(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: ReconcileRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReconcileRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::bad_request(
                "invalid_json",
                "body must be empty or {\"confirm_prune\": true}",
            )
        })?
    };
    let report = if request.confirm_prune {
        state.controller.confirm_prune().await
    } else {
        state.controller.reconcile(Scope::Full).await
    }
    .map_err(ApiError::internal)?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}
