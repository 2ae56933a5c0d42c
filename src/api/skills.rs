//! Skills: `GET/POST /skills`, `GET/DELETE /skills/:name`.
//!
//! Skills are Skill manifests: `POST` resolves the skill first (nothing is written when it
//! cannot be), then writes `skills/<name>.yaml` through the reconciler, which installs it
//! before the response returns; `DELETE` removes the document, which uninstalls it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody, FieldError};
use super::resources::{query, List, Page};
use super::webhooks::Condition;
use super::{AppState, JsonBody};
use crate::manifest::kinds::{SkillSource, SkillSpec};
use crate::manifest::write::{default_path, Edit, WriteError};
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::status::ResourceStatus;
use crate::skills::install::{Installed, Installer};
use crate::skills::source::{self, Context};
use crate::skills::{registry, validate_name};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
}

/// A skill as the API shows it: its manifest plus what is installed.
#[derive(Serialize, ToSchema)]
pub struct Skill {
    #[schema(example = "openclaw-skill-git-helper")]
    pub name: String,
    /// As declared: `latest`, an exact version or a semver range.
    pub version: String,
    /// The version installed.
    pub resolved_version: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Where it comes from (null: the Config's registry).
    pub source: Option<SkillSource>,
    pub installed: bool,
    /// `sha256:` digest of the installed files.
    pub digest: Option<String>,
    pub installed_at: Option<String>,
    /// The resource's condition (`Progressing`, then `Ready` or the error).
    pub status: Option<Condition>,
    /// The manifest file that declares it, relative to the manifests dir.
    pub file: String,
}

/// `POST /skills`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the body; the handler checks it as a Skill spec
pub struct SkillCreate {
    #[schema(example = "openclaw-skill-git-helper")]
    name: String,
    /// `latest` (default), an exact version or a semver range.
    #[schema(example = "latest")]
    #[serde(default)]
    version: String,
    source: Option<SkillSource>,
    #[schema(default = true)]
    #[serde(default)]
    enabled: bool,
    description: Option<String>,
}

/// Skill names in paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct SkillName {
    /// The skill's name.
    name: String,
}

fn item(
    r: &Resource,
    status: Option<&ResourceStatus>,
    installed: Option<&Installed>,
) -> Result<Skill, ApiError> {
    let Spec::Skill(spec) = &r.spec else {
        return Err(ApiError::internal(format!(
            "resource {} is not a Skill",
            r.name()
        )));
    };
    let front = installed.and_then(|i| i.front_matter.as_ref());
    Ok(Skill {
        name: r.name().to_owned(),
        version: spec.version.clone(),
        resolved_version: installed.map(|i| i.record.version.clone()),
        description: spec
            .description
            .clone()
            .or_else(|| front.map(|f| f.description.clone())),
        enabled: spec.enabled,
        source: spec.source.clone(),
        installed: installed.is_some(),
        digest: installed.map(|i| i.record.digest.clone()),
        installed_at: installed.map(|i| i.record.installed_at.clone()),
        status: status.map(Condition::from),
        file: r.origin.file.display().to_string(),
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

async fn one(state: &AppState, name: &str) -> Result<Skill, ApiError> {
    let (r, status) = find(state, name).await?;
    let installed = installed(state, vec![name.to_owned()]).await;
    item(
        &r,
        status.as_ref(),
        installed.first().and_then(Option::as_ref),
    )
}

/// List skills
#[utoipa::path(get, path = "/api/v1/skills", operation_id = "skills_list", tag = "skills",
    params(Page),
    responses(
        (status = 200, description = "One page of skills", body = List<Skill>),
        (status = 400, description = "`invalid_parameter`", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<List<Skill>>, ApiError> {
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
        .collect::<Result<_, _>>()?;
    Ok(super::resources::list_body(items, total, &page))
}

/// Get a skill
#[utoipa::path(get, path = "/api/v1/skills/{name}", operation_id = "skills_get", tag = "skills",
    params(SkillName),
    responses(
        (status = 200, description = "The skill", body = Skill),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Skill>, ApiError> {
    Ok(Json(one(&state, &name).await?))
}

fn field_error(field: &str, message: String) -> ApiError {
    ApiError::invalid_field("the skill request is invalid", field, message)
}

/// Add a skill
///
/// Resolves the name and version first (nothing is written when that fails), then writes
/// `skills/<name>.yaml`; the download and install follow, shown in the skill's `status` and as
/// a `skill.installed` event.
#[utoipa::path(post, path = "/api/v1/skills", operation_id = "skills_create", tag = "skills",
    request_body = SkillCreate,
    responses(
        (status = 201, description = "Declared", body = Skill,
            links(
                ("GetSkill" = (operation_id = "skills_get", parameters(("name" = "$response.body#/name")))),
                ("DeleteSkill" = (operation_id = "skills_delete", parameters(("name" = "$response.body#/name")))),
            )),
        (status = 400, description = "`validation_failed` (with `details`), `invalid_body` or `invalid_json`", body = ErrorBody),
        (status = 409, description = "`already_exists`", body = ErrorBody),
        (status = 422, description = "`skill_unresolvable`: no such skill or version", body = ErrorBody),
    ))]
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

/// Remove a skill
///
/// Deletes the Skill manifest, which uninstalls it.
#[utoipa::path(delete, path = "/api/v1/skills/{name}", operation_id = "skills_delete", tag = "skills",
    params(SkillName),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the manifest moved meanwhile", body = ErrorBody),
    ))]
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
