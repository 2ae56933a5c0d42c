//! Skills: `GET/POST /skills`, `GET/DELETE /skills/:name`.
//!
//! Skills are Skill manifests: `POST` resolves the skill first (nothing is written when it
//! cannot be), then writes `skills/<name>.yaml` through the reconciler, which installs it
//! before the response returns; `DELETE` removes the document, which uninstalls it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::{ApiError, FieldError};
use super::resources::{query, Page};
use super::{AppState, JsonBody};
use crate::manifest::kinds::SkillSpec;
use crate::manifest::write::{default_path, Edit, WriteError};
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::status::ResourceStatus;
use crate::skills::install::{Installed, Installer};
use crate::skills::source::{self, Context};
use crate::skills::{registry, validate_name};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/skills", get(list).post(create))
        .route("/api/v1/skills/{name}", get(show).delete(remove))
}

fn item(r: &Resource, status: Option<&ResourceStatus>, installed: Option<&Installed>) -> Value {
    let Spec::Skill(spec) = &r.spec else {
        return Value::Null;
    };
    let front = installed.and_then(|i| i.front_matter.as_ref());
    json!({
        "name": r.name(),
        "version": spec.version,
        "resolved_version": installed.map(|i| i.record.version.clone()),
        "description": spec.description.clone().or_else(|| front.map(|f| f.description.clone())),
        "enabled": spec.enabled,
        "source": spec.source,
        "installed": installed.is_some(),
        "digest": installed.map(|i| i.record.digest.clone()),
        "installed_at": installed.map(|i| i.record.installed_at.clone()),
        "status": status.map(|s| json!({ "ready": s.ready, "reason": s.reason, "message": s.message })),
        "file": r.origin.file.display().to_string(),
    })
}

/// Reads install records off the request path's thread.
async fn installed(state: &AppState, names: Vec<String>) -> Vec<Option<Installed>> {
    let installer = Installer::new(&state.live.data);
    tokio::task::spawn_blocking(move || names.iter().map(|n| installer.installed(n)).collect())
        .await
        .unwrap_or_default()
}

async fn find(
    state: &AppState,
    name: &str,
) -> Result<(Resource, Option<ResourceStatus>), ApiError> {
    super::resources::find_declared(state, Kind::Skill, name).await
}

async fn one(state: &AppState, name: &str) -> Result<Value, ApiError> {
    let (r, status) = find(state, name).await?;
    let installed = installed(state, vec![name.to_owned()]).await;
    Ok(item(
        &r,
        status.as_ref(),
        installed.first().and_then(Option::as_ref),
    ))
}

async fn list(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let page = query(page)?.checked()?;
    let (shown, total) = super::resources::declared_page(&state, Kind::Skill, &page).await?;
    let found = installed(
        &state,
        shown.iter().map(|(r, _)| r.name().to_owned()).collect(),
    )
    .await;
    let items = shown
        .iter()
        .zip(found.iter().chain(std::iter::repeat(&None)))
        .map(|((r, s), i)| item(r, s.as_ref(), i.as_ref()))
        .collect();
    Ok(super::resources::list_body(items, total, &page))
}

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(one(&state, &name).await?))
}

fn field_error(field: &str, message: String) -> ApiError {
    ApiError::invalid_field("the skill request is invalid", field, message)
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object such as {\"name\": \"openclaw-skill-git-helper\", \"version\": \"latest\"}",
        ));
    };
    let name = match body.remove("name") {
        Some(Value::String(n)) => n,
        Some(_) => return Err(field_error("name", "must be a string".into())),
        None => return Err(field_error("name", "is required".into())),
    };
    validate_name(&name).map_err(|e| field_error("name", e.to_string()))?;
    if find(&state, &name).await.is_ok() {
        return Err(WriteError::AlreadyExists(Kind::Skill, name, Default::default()).into());
    }
    let spec_value = Value::Object(Map::from_iter(body));
    state.check_privilege(Kind::Skill, &Value::Null, &spec_value)?;
    let spec: SkillSpec = serde_json::from_value(spec_value.clone())
        .map_err(|e| ApiError::bad_request("validation_failed", format!("invalid skill: {e}")))?;

    // Resolve before writing: a skill that cannot be found must leave no manifest behind.
    if spec.enabled {
        let ctx = Context::new(
            &state.live.manifests,
            &default_path(Kind::Skill, &name),
            state.live.config.load().spec.skills.registry.clone(),
            registry::http_client(&state.live.config.load().spec),
        );
        if let Err(e) = source::resolve(&name, &spec, &ctx).await {
            let mut err = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "skill_unresolvable",
                e.to_string(),
            );
            err.details = vec![FieldError {
                field: "version".into(),
                pointer: "/spec/version".into(),
                message: format!("{}: {e}", e.reason()),
                file: None,
                line: None,
            }];
            return Err(err);
        }
    }
    let edit = Edit::Create {
        kind: Kind::Skill,
        name: name.clone(),
        spec: spec_value,
        labels: Default::default(),
    };
    let context = caller.write_context("POST /api/v1/skills");
    state.controller.write(edit, None, context).await?;
    tracing::info!(token = %caller.0.name, skill = %name, "skill created");
    Ok((StatusCode::CREATED, Json(one(&state, &name).await?)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    find(&state, &name).await?;
    state
        .controller
        .write(
            Edit::Delete {
                kind: Kind::Skill,
                name: name.clone(),
            },
            None,
            caller.write_context(format!("DELETE /api/v1/skills/{name}")),
        )
        .await?;
    tracing::info!(token = %caller.0.name, skill = %name, "skill deleted");
    Ok(StatusCode::NO_CONTENT)
}
