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
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::auth::Caller;
use super::error::ApiError;
use super::resources::{query, Page};
use super::{AppState, JsonBody};
use crate::manifest::kinds::SecretRef;
use crate::manifest::secret::{remove_secret, store_secret};
use crate::manifest::write::{Edit, WriteError};
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::status::ResourceStatus;
use crate::store::{deliveries, webhooks::EndpointRow};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route(
            "/api/v1/webhooks/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/webhooks/{id}/deliveries", get(list_deliveries))
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(redeliver),
        )
        .route("/api/v1/webhooks/{id}/test", post(send_test))
}

/// Prefix of the stored secrets the API creates (and so may delete).
const SECRET_PREFIX: &str = "webhook-";
const MAX_SECRET_BYTES: usize = 4096;

fn item(r: &Resource, status: Option<&ResourceStatus>, row: Option<&EndpointRow>) -> Value {
    let Spec::Webhook(spec) = &r.spec else {
        return Value::Null;
    };
    let events: Vec<&str> = spec.events.iter().map(|e| e.as_str()).collect();
    json!({
        "id": r.name(),
        "url": spec.url,
        "events": events,
        "enabled": spec.enabled && row.is_none_or(|row| row.disabled_reason.is_none()),
        "description": spec.description,
        "created_at": row.map(|row| row.created_at.clone()),
        "updated_at": row.map(|row| row.updated_at.clone()),
        "disabled_reason": row.and_then(|row| row.disabled_reason.clone()),
        "status": status.map(|s| json!({ "ready": s.ready, "reason": s.reason, "message": s.message })),
        "file": r.origin.file.display().to_string(),
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

async fn list(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let page = query(page)?.checked()?;
    let (shown, total) = super::resources::declared_page(&state, Kind::Webhook, &page).await?;
    let rows = crate::store::webhooks::list(&state.store)
        .await
        .map_err(ApiError::internal)?;
    let items = shown
        .iter()
        .map(|(r, s)| item(r, s.as_ref(), rows.iter().find(|row| row.name == r.name())))
        .collect();
    Ok(super::resources::list_body(items, total, &page))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (r, status) = find(&state, &id).await?;
    let row = row(&state, &id).await?;
    Ok(Json(item(&r, status.as_ref(), row.as_ref())))
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

/// A fresh stored-secret name for a webhook (new per write, so a refused write never loses
/// the secret in force).
fn new_secret_name(webhook: &str) -> String {
    format!(
        "{SECRET_PREFIX}{webhook}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn owned_secret(spec: &Spec) -> Option<String> {
    match spec {
        Spec::Webhook(w) => match &w.secret {
            SecretRef::Ref(name) if name.starts_with(SECRET_PREFIX) => Some(name.clone()),
            _ => None,
        },
        _ => None,
    }
}

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
    let secret = take_secret(&mut body, true)?.unwrap_or_default();
    let name = match body.remove("name").or_else(|| body.remove("id")) {
        None => format!("wh-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        Some(Value::String(n)) => n,
        Some(_) => return Err(field_error("name", "must be a string")),
    };
    if find(&state, &name).await.is_ok() {
        return Err(WriteError::AlreadyExists(Kind::Webhook, name, Default::default()).into());
    }
    let secret_name = new_secret_name(&name);
    store_secret(&state.live.data, &secret_name, &secret)
        .map_err(|e| ApiError::internal(format!("cannot store the webhook secret: {e}")))?;
    body.insert("secret".into(), json!({ "ref": secret_name }));
    let edit = Edit::Create {
        kind: Kind::Webhook,
        name: name.clone(),
        spec: Value::Object(body),
        labels: Default::default(),
    };
    let context = caller.write_context("POST /api/v1/webhooks");
    if let Err(e) = state.controller.write(edit, None, context).await {
        let _ = remove_secret(&state.live.data, &secret_name);
        return Err(e.into());
    }
    tracing::info!(token = %caller.0.name, webhook = %name, "webhook created");
    let (r, status) = find(&state, &name).await?;
    let row = row(&state, &name).await?;
    let mut body = item(&r, status.as_ref(), row.as_ref());
    if body["created_at"].is_null() {
        body["created_at"] = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default()
            .into();
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
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
            store_secret(&state.live.data, &name, &secret)
                .map_err(|e| ApiError::internal(format!("cannot store the webhook secret: {e}")))?;
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
                let _ = remove_secret(&state.live.data, &old);
            }
        }
        Err(e) => {
            if let Some(name) = new_secret {
                let _ = remove_secret(&state.live.data, &name);
            }
            return Err(e.into());
        }
    }
    tracing::info!(token = %caller.0.name, webhook = %id, "webhook updated");
    let (r, status) = find(&state, &id).await?;
    let row = row(&state, &id).await?;
    Ok(Json(item(&r, status.as_ref(), row.as_ref())))
}

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
        let _ = remove_secret(&state.live.data, &secret);
    }
    tracing::info!(token = %caller.0.name, webhook = %id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn unix_ms_to_rfc3339(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

async fn list_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let page = query(page)?.checked()?;
    if row(&state, &id).await?.is_none() {
        find(&state, &id).await?;
    }
    let (found, total) = deliveries::list(&state.store, &id, page.limit as i64, page.offset as i64)
        .await
        .map_err(ApiError::internal)?;
    let items: Vec<Value> = found
        .into_iter()
        .map(|(d, attempts)| {
            let attempts: Vec<Value> = attempts
                .into_iter()
                .map(|a| {
                    json!({
                        "attempt": a.attempt,
                        "at": a.at,
                        "status_code": a.status_code,
                        "duration_ms": a.duration_ms,
                        "error": a.error,
                        "response_body": a.response_body,
                    })
                })
                .collect();
            json!({
                "id": d.id,
                "event": d.event,
                "event_id": d.event_id,
                "status": d.status,
                "attempt_count": d.attempts,
                "created_at": d.created_at,
                "completed_at": d.completed_at,
                "next_attempt_at": if d.status == deliveries::DeliveryStatus::Pending { unix_ms_to_rfc3339(d.next_attempt_at) } else { None },
                "last_status": d.last_status,
                "last_error": d.last_error,
                "attempts": attempts,
            })
        })
        .collect();
    Ok(Json(
        json!({ "items": items, "total": total, "limit": page.limit, "offset": page.offset }),
    ))
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

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
        Json(json!({ "id": delivery_id, "status": deliveries::DeliveryStatus::Pending })),
    )
        .into_response())
}

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
        Json(json!({ "delivery_id": delivery.id, "status": delivery.status })),
    )
        .into_response())
}
