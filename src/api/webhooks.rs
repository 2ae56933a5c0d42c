//! Webhook subscriptions: `GET/POST /webhooks`, `GET/PATCH/DELETE /webhooks/:id`,
//! `GET /webhooks/:id/deliveries`, `POST /webhooks/:id/deliveries/:delivery_id/redeliver`,
//! `POST /webhooks/:id/test`.
//!
//! Subscriptions are Webhook manifests: writes go through the reconciler. A secret sent to the
//! API is stored under the data dir (mode 0600) and the manifest refers to it with
//! `{ref: NAME}`; no response, manifest or log line ever carries it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::resources::{query, List, Page};
use super::{AppState, JsonBody};
use crate::events::EventFilter;
use crate::manifest::kinds::SecretRef;
use crate::manifest::secret::{remove_secret, store_secret};
use crate::manifest::write::{Edit, WriteError};
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::status::ResourceStatus;
use crate::store::{deliveries, webhooks::EndpointRow};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(send_test))
}

/// A webhook subscription as the API shows it (never its secret).
#[derive(Serialize, ToSchema)]
pub struct Webhook {
    /// The Webhook resource's name.
    #[schema(example = "wh-1a2b3c4d5e6f")]
    pub id: String,
    pub url: String,
    pub events: Vec<EventFilter>,
    /// Declared enabled and not disabled by the server (410 Gone).
    pub enabled: bool,
    pub description: Option<String>,
    /// RFC 3339; null until the endpoint is in force.
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// Why the server disabled it, if it did.
    pub disabled_reason: Option<String>,
    /// The resource's condition (null before its first reconcile).
    pub status: Option<Condition>,
    /// The manifest file that declares it, relative to the manifests dir.
    pub file: String,
}

/// A resource's `Ready` condition.
#[derive(Serialize, ToSchema)]
pub struct Condition {
    pub ready: bool,
    /// CamelCase cause, e.g. `Applied`.
    pub reason: String,
    pub message: String,
}

impl From<&ResourceStatus> for Condition {
    fn from(s: &ResourceStatus) -> Condition {
        Condition {
            ready: s.ready,
            reason: s.reason.to_owned(),
            message: s.message.to_string(),
        }
    }
}

/// `POST /webhooks`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the body; the handler checks it against the Webhook schema
pub struct WebhookCreate {
    /// The resource name (default: `wh-` and 12 random hex digits); `id` is accepted too.
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,62}$")]
    #[serde(default)]
    name: String,
    /// Where events are POSTed (http or https).
    #[schema(
        example = "http://localhost:4000/openclaw-webhook",
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#]+"
    )]
    url: String,
    #[schema(min_items = 1)]
    events: Vec<EventFilter>,
    /// The HMAC key receivers verify `X-OpenClaw-Signature` with; stored apart, never returned.
    #[schema(min_length = 1, max_length = 4096)]
    secret: String,
    #[schema(default = true)]
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    description: String,
}

/// `PATCH /webhooks/:id`: a JSON merge patch (RFC 7396) of the subscription.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WebhookPatch {
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#]+")]
    #[serde(default)]
    url: String,
    #[schema(min_items = 1)]
    #[serde(default)]
    events: Vec<EventFilter>,
    /// A new secret (replaces the stored one).
    #[schema(min_length = 1, max_length = 4096)]
    #[serde(default)]
    secret: String,
    /// `null`: back to the default (`true`).
    enabled: Option<bool>,
    /// `null` removes it.
    description: Option<String>,
}

/// One delivery of an event to an endpoint, with its attempts.
#[derive(Serialize, ToSchema)]
pub struct Delivery {
    /// Stable across retries (`X-OpenClaw-Delivery`, `webhook-id`).
    pub id: String,
    pub event: String,
    pub event_id: String,
    pub status: deliveries::DeliveryStatus,
    pub attempt_count: i64,
    pub created_at: String,
    pub completed_at: Option<String>,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub attempts: Vec<Attempt>,
}

/// One attempt of a delivery.
#[derive(Serialize, ToSchema)]
pub struct Attempt {
    pub attempt: i64,
    /// RFC 3339.
    pub at: String,
    /// The receiver's HTTP status (null when no response came).
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// The first 20 KB of the receiver's response.
    pub response_body: Option<String>,
}

/// A redelivery scheduled.
#[derive(Serialize, ToSchema)]
pub struct Redelivery {
    /// The delivery's id.
    pub id: String,
    /// Always `pending`.
    pub status: deliveries::DeliveryStatus,
}

/// A test event queued.
#[derive(Serialize, ToSchema)]
pub struct TestDelivery {
    pub delivery_id: String,
    /// Always `pending`.
    pub status: deliveries::DeliveryStatus,
}

/// Webhook ids in paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct WebhookId {
    /// The webhook's id (its resource name).
    id: String,
}

/// A delivery of a webhook, in paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct DeliveryPath {
    /// The webhook's id.
    id: String,
    /// The delivery's id.
    delivery_id: String,
}

/// Prefix of the stored secrets the API creates (and so may delete).
const SECRET_PREFIX: &str = "webhook-";
const MAX_SECRET_BYTES: usize = 4096;

fn item(
    r: &Resource,
    status: Option<&ResourceStatus>,
    row: Option<&EndpointRow>,
) -> Result<Webhook, ApiError> {
    let Spec::Webhook(spec) = &r.spec else {
        return Err(ApiError::internal(format!(
            "resource {} is not a Webhook",
            r.name()
        )));
    };
    Ok(Webhook {
        id: r.name().to_owned(),
        url: spec.url.clone(),
        events: spec.events.clone(),
        enabled: spec.enabled && row.is_none_or(|row| row.disabled_reason.is_none()),
        description: spec.description.clone(),
        created_at: row.map(|row| row.created_at.clone()),
        updated_at: row.map(|row| row.updated_at.clone()),
        disabled_reason: row.and_then(|row| row.disabled_reason.clone()),
        status: status.map(Condition::from),
        file: r.origin.file.display().to_string(),
    })
}

async fn find(state: &AppState, id: &str) -> Result<(Resource, Option<ResourceStatus>), ApiError> {
    super::resources::find_declared(state, Kind::Webhook, id).await
}

async fn row(state: &AppState, id: &str) -> Result<Option<EndpointRow>, ApiError> {
    crate::store::webhooks::get(&state.store, id)
        .await
        .map_err(ApiError::internal)
}

/// List webhooks
#[utoipa::path(get, path = "/api/v1/webhooks", operation_id = "webhooks_list", tag = "webhooks",
    params(Page),
    responses(
        (status = 200, description = "One page of webhooks", body = List<Webhook>),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<List<Webhook>>, ApiError> {
    let page = query(page)?.checked()?;
    let (shown, total) = super::resources::declared_page(&state, Kind::Webhook, &page).await?;
    let rows = crate::store::webhooks::list(&state.store)
        .await
        .map_err(ApiError::internal)?;
    let items = shown
        .iter()
        .map(|(r, s)| item(r, s.as_ref(), rows.iter().find(|row| row.name == r.name())))
        .collect::<Result<_, _>>()?;
    Ok(super::resources::list_body(items, total, &page))
}

/// Get a webhook
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", operation_id = "webhooks_get", tag = "webhooks",
    params(WebhookId),
    responses(
        (status = 200, description = "The webhook", body = Webhook),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    let (r, status) = find(&state, &id).await?;
    let row = row(&state, &id).await?;
    Ok(Json(item(&r, status.as_ref(), row.as_ref())?))
}

/// Takes `secret` out of a request body: a non-empty string, never echoed.
fn take_secret(body: &mut Map<String, Value>, required: bool) -> Result<Option<String>, ApiError> {
    match body.remove("secret") {
        None if required => Err(field_error(
            "secret",
            "is required: the key receivers verify X-OpenClaw-Signature with",
        )),
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_SECRET_BYTES => Ok(Some(s)),
        Some(_) => Err(field_error(
            "secret",
            &format!("must be a non-empty string of at most {MAX_SECRET_BYTES} bytes"),
        )),
    }
}

fn field_error(field: &str, message: &str) -> ApiError {
    ApiError::invalid_field("the webhook request is invalid", field, message)
}

use crate::manifest::secret::new_webhook_secret_name as new_secret_name;

fn owned_secret(spec: &Spec) -> Option<String> {
    match spec {
        Spec::Webhook(w) => match &w.secret {
            SecretRef::Ref(name) if name.starts_with(SECRET_PREFIX) => Some(name.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Create a webhook
///
/// Writes a Webhook manifest (`webhooks/<name>.yaml`) and stores the secret apart (mode 0600),
/// referring to it as `{ref: NAME}`; in force when the call returns.
#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "webhooks_create", tag = "webhooks",
    request_body = WebhookCreate,
    responses(
        (status = 201, description = "Created", body = Webhook,
            links(
                ("GetWebhook" = (operation_id = "webhooks_get", parameters(("id" = "$response.body#/id")))),
                ("UpdateWebhook" = (operation_id = "webhooks_update", parameters(("id" = "$response.body#/id")))),
                ("DeleteWebhook" = (operation_id = "webhooks_delete", parameters(("id" = "$response.body#/id")))),
                ("ListDeliveries" = (operation_id = "webhooks_deliveries_list", parameters(("id" = "$response.body#/id")))),
                ("TestWebhook" = (operation_id = "webhooks_test", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, description = "`validation_failed` (with `details`), `invalid_body` or `invalid_json`; nothing was written", body = ErrorBody),
        (status = 409, description = "`already_exists`", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object with url, events and secret",
        ));
    };
    // The name is checked before anything is stored: a refused request leaves nothing behind.
    let name = match body.remove("name").or_else(|| body.remove("id")) {
        None => format!("wh-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        Some(Value::String(n)) => n,
        Some(_) => return Err(field_error("name", "must be a string")),
    };
    if crate::skills::validate_name(&name).is_err() {
        return Err(field_error(
            "name",
            "must be 1-63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    let secret = take_secret(&mut body, true)?.unwrap_or_default();
    if find(&state, &name).await.is_ok() {
        return Err(WriteError::AlreadyExists(Kind::Webhook, name, Default::default()).into());
    }
    let secret_name = new_secret_name(&name);
    keep_secret(&state, &secret_name, &secret).await?;
    body.insert("secret".into(), json!({ "ref": secret_name }));
    let edit = Edit::Create {
        kind: Kind::Webhook,
        name: name.clone(),
        spec: Value::Object(body),
        labels: Default::default(),
    };
    let context = caller.write_context("POST /api/v1/webhooks");
    if let Err(e) = state.controller.write(edit, None, context).await {
        forget_secret(&state, &secret_name).await;
        return Err(e.into());
    }
    tracing::info!(token = %caller.0.name, webhook = %name, "webhook created");
    let (r, status) = find(&state, &name).await?;
    let row = row(&state, &name).await?;
    let mut body = item(&r, status.as_ref(), row.as_ref())?;
    if body.created_at.is_none() {
        body.created_at = OffsetDateTime::now_utc().format(&Rfc3339).ok();
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Update a webhook
///
/// A JSON merge patch (RFC 7396) of the Webhook manifest; a `secret` replaces the stored one.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", operation_id = "webhooks_update", tag = "webhooks",
    params(WebhookId),
    request_body(content = WebhookPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = Webhook),
        (status = 400, description = "`validation_failed` (with `details`), `invalid_patch` or `invalid_json`; nothing was written", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the manifest moved meanwhile", body = ErrorBody),
    ))]
async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Webhook>, ApiError> {
    let Value::Object(mut patch) = body else {
        return Err(ApiError::bad_request(
            "invalid_patch",
            "the body must be a JSON object (a merge patch)",
        ));
    };
    let (current, _) = find(&state, &id).await?;
    let old_secret = owned_secret(&current.spec);
    let new_secret = match take_secret(&mut patch, false)? {
        Some(secret) => {
            let name = new_secret_name(&id);
            keep_secret(&state, &name, &secret).await?;
            patch.insert("secret".into(), json!({ "ref": name }));
            Some(name)
        }
        None => None,
    };
    let edit = Edit::MergePatch {
        kind: Kind::Webhook,
        name: id.clone(),
        patch: Value::Object(patch),
    };
    let context = caller.write_context(format!("PATCH /api/v1/webhooks/{id}"));
    match state.controller.write(edit, None, context).await {
        Ok(_) => {
            if let (Some(_), Some(old)) = (&new_secret, old_secret) {
                forget_secret(&state, &old).await;
            }
        }
        Err(e) => {
            if let Some(name) = new_secret {
                forget_secret(&state, &name).await;
            }
            return Err(e.into());
        }
    }
    tracing::info!(token = %caller.0.name, webhook = %id, "webhook updated");
    let (r, status) = find(&state, &id).await?;
    let row = row(&state, &id).await?;
    Ok(Json(item(&r, status.as_ref(), row.as_ref())?))
}

/// Delete a webhook
///
/// Removes the Webhook manifest and its stored secret.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "webhooks_delete", tag = "webhooks",
    params(WebhookId),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the manifest moved meanwhile", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (current, _) = find(&state, &id).await?;
    state
        .controller
        .write(
            Edit::Delete {
                kind: Kind::Webhook,
                name: id.clone(),
            },
            None,
            caller.write_context(format!("DELETE /api/v1/webhooks/{id}")),
        )
        .await?;
    if let Some(secret) = owned_secret(&current.spec) {
        forget_secret(&state, &secret).await;
    }
    tracing::info!(token = %caller.0.name, webhook = %id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Keeps a secret given to the API under `name` for a `{ref}`: a file in the data dir (SQLite),
/// or sealed in the shared database (PostgreSQL: every replica signs with it).
async fn keep_secret(state: &AppState, name: &str, value: &str) -> Result<(), ApiError> {
    let kept = if state.store.is_postgres() {
        crate::store::secrets::put(&state.store, name, value)
            .await
            .map_err(|e| e.to_string())
    } else {
        store_secret(&state.live.data, name, value).map_err(|e| e.to_string())
    };
    kept.map_err(|e| ApiError::internal(format!("cannot store the webhook secret: {e}")))
}

/// Removes a secret [`keep_secret`] kept; failures are left for nobody to see (an unused
/// secret harms no one).
async fn forget_secret(state: &AppState, name: &str) {
    if state.store.is_postgres() {
        let _ = crate::store::secrets::remove(&state.store, name).await;
    } else {
        let _ = remove_secret(&state.live.data, name);
    }
}

fn unix_ms_to_rfc3339(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

/// List a webhook's deliveries
///
/// Newest first, each with every attempt (status, duration, first 20 KB of the response).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "webhooks_deliveries_list", tag = "webhooks",
    params(WebhookId, Page),
    responses(
        (status = 200, description = "One page of deliveries", body = List<Delivery>),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn list_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<List<Delivery>>, ApiError> {
    let page = query(page)?.checked()?;
    if row(&state, &id).await?.is_none() {
        find(&state, &id).await?;
    }
    let (found, total) = deliveries::list(&state.store, &id, page.limit as i64, page.offset as i64)
        .await
        .map_err(ApiError::internal)?;
    let items = found
        .into_iter()
        .map(|(d, attempts)| Delivery {
            next_attempt_at: if d.status == deliveries::DeliveryStatus::Pending {
                unix_ms_to_rfc3339(d.next_attempt_at)
            } else {
                None
            },
            id: d.id,
            event: d.event,
            event_id: d.event_id,
            status: d.status,
            attempt_count: d.attempts,
            created_at: d.created_at,
            completed_at: d.completed_at,
            last_status: d.last_status,
            last_error: d.last_error,
            attempts: attempts
                .into_iter()
                .map(|a| Attempt {
                    attempt: a.attempt,
                    at: a.at,
                    status_code: a.status_code,
                    duration_ms: a.duration_ms,
                    error: a.error,
                    response_body: a.response_body,
                })
                .collect(),
        })
        .collect();
    Ok(Json(List::new(items, total as usize, &page)))
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Redeliver a delivery
///
/// Schedules the delivery again, now, with the same delivery id.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", operation_id = "webhooks_redeliver", tag = "webhooks",
    params(DeliveryPath),
    responses(
        (status = 202, description = "Scheduled", body = Redelivery),
        (status = 404, description = "`not_found`: no such delivery of this webhook", body = ErrorBody),
    ))]
async fn redeliver(
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let found = deliveries::redeliver(&state.store, &id, &delivery_id, now_ms())
        .await
        .map_err(ApiError::internal)?;
    if !found {
        return Err(ApiError::not_found(format!(
            "delivery {delivery_id} of webhook {id} not found"
        )));
    }
    state.webhooks.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(Redelivery {
            id: delivery_id,
            status: deliveries::DeliveryStatus::Pending,
        }),
    )
        .into_response())
}

/// Send a test event
///
/// Queues a `webhook.test` event to this endpoint (signed like any other).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", operation_id = "webhooks_test", tag = "webhooks",
    params(WebhookId),
    responses(
        (status = 202, description = "Queued", body = TestDelivery,
            links(
                ("Redeliver" = (operation_id = "webhooks_redeliver", parameters(("id" = "$request.path.id"), ("delivery_id" = "$response.body#/delivery_id")))),
            )),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`webhook_not_ready`: declared but not in force", body = ErrorBody),
    ))]
async fn send_test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if row(&state, &id).await?.is_none() {
        let (_, status) = find(&state, &id).await?;
        let why = status.map(|s| s.message).unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook_not_ready",
            format!("webhook {id} is not in force: {why}"),
        ));
    }
    let payload = json!({
        "event": "webhook.test",
        "timestamp": OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(OffsetDateTime::now_utc()).format(&Rfc3339).unwrap_or_default(),
        "data": { "webhook_id": id, "message": "This is a test event from claw." },
    })
    .to_string();
    let delivery = deliveries::enqueue(&state.store, &id, "webhook.test", &payload, now_ms())
        .await
        .map_err(ApiError::internal)?;
    state.webhooks.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(TestDelivery {
            delivery_id: delivery.id,
            status: delivery.status,
        }),
    )
        .into_response())
}
