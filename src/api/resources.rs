//! `GET /api/v1/resources` (the status of every declared resource) and
//! `POST /api/v1/reconcile` (a full pass now; `{"confirm_prune": true}` lifts the prune guard
//! once).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
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
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    /// One page, in the list's order.
    pub items: Vec<T>,
    /// How many there are in all (matching the filters).
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
}

impl<T> List<T> {
    /// One page of `total` items.
    pub fn new(items: Vec<T>, total: usize, page: &Page) -> List<T> {
        List {
            items,
            total,
            limit: page.limit,
            offset: page.offset,
        }
    }
}

/// The list envelope as a response.
pub fn list_body<T>(items: Vec<T>, total: usize, page: &Page) -> Json<List<T>> {
    Json(List::new(items, total, page))
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
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(reconcile))
}

/// `?limit&offset` as every list takes them.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: usize,
    /// Items to skip.
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    pub offset: usize,
}

fn default_limit() -> usize {
    20
}

impl Page {
    /// Checks the bounds (limit 1..=100, offset at most 2^63 - 1 so it never wraps where it
    /// becomes a database integer).
    pub fn checked(self) -> Result<Page, ApiError> {
        if i64::try_from(self.offset).is_err() {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "offset must be between 0 and 9223372036854775807",
            ));
        }
        if self.limit == 0 || self.limit > 100 {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "limit must be between 1 and 100",
            ));
        }
        Ok(self)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct KindFilter {
    /// Only resources of this kind (any case is accepted).
    #[param(value_type = Option<Kind>)]
    kind: Option<String>,
}

/// The condition of one declared resource (as Kubernetes' `Ready` condition).
#[derive(ToSchema)]
#[allow(dead_code)] // documents `reconcile::status::ResourceStatus` as it serialises
pub struct ResourceStatus {
    kind: Kind,
    name: String,
    /// The manifest file, relative to the manifests dir.
    file: String,
    line: u64,
    ready: bool,
    /// CamelCase cause, e.g. `Applied`, `InvalidManifest`, `ApplyFailed`.
    reason: String,
    message: String,
    /// The manifests revision the current spec was applied at.
    applied_revision: Option<String>,
    /// RFC 3339.
    last_transition_time: String,
}

/// `POST /reconcile`: an empty body runs a full pass.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReconcileRequest {
    /// Lift the prune guard once: apply the deletes it holds back.
    #[serde(default)]
    confirm_prune: bool,
}

/// What a reconcile pass did.
#[derive(ToSchema)]
#[allow(dead_code)] // documents `reconcile::Report` as it serialises
pub struct ReconcileReport {
    /// Manifests revision reconciled (git commit, or `sha256:` content digest).
    revision: String,
    /// Files whose content changed in this pass.
    changed_files: u64,
    /// Steps applied: `{action, kind, name}`.
    applied: Vec<Object>,
    /// Steps that failed: `{action, kind, name, reason, message}`.
    failed: Vec<Object>,
    /// Deletes held back by the prune guard.
    held: u64,
    /// Problems in force after the pass.
    errors: u64,
    duration_ms: u64,
    /// Resources whose drift the pass repaired: `{kind, name, reason, message}`.
    repaired: Vec<Object>,
}

/// A JSON object (for documentation).
type Object = serde_json::Map<String, Value>;

/// Query parameters, with a 400 in our error format when they do not parse.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request("invalid_parameter", e.body_text()))
}

/// List declared resources
///
/// Every declared resource with its status, in manifest order.
#[utoipa::path(get, path = "/api/v1/resources", operation_id = "resources_list", tag = "resources",
    params(KindFilter, Page),
    responses(
        (status = 200, description = "One page of resource statuses", body = List<ResourceStatus>),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    filter: Result<Query<KindFilter>, QueryRejection>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<List<crate::reconcile::status::ResourceStatus>>, ApiError> {
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
    Ok(list_body(items, total, &page))
}

/// Reconcile now
///
/// Runs a full reconcile pass and answers what it did. The body is optional.
#[utoipa::path(post, path = "/api/v1/reconcile", operation_id = "reconcile", tag = "resources",
    request_body(content = Option<ReconcileRequest>, description = "Optional; empty for a plain pass"),
    responses(
        (status = 200, description = "The pass's report", body = ReconcileReport),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
    ))]
async fn reconcile(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // An empty body, or JSON `null`, is a plain pass.
    let trimmed = body.trim_ascii();
    let request: ReconcileRequest = if trimmed.is_empty() || trimmed == b"null" {
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
