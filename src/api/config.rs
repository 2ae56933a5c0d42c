//! `GET /api/v1/config` and `PATCH /api/v1/config` (RFC 7396 JSON merge patch of the Config
//! spec, written back to the file that holds the Config, with `ETag` / `If-Match`).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::{etag, AppState, JsonBody};
use crate::manifest::kinds::ConfigSpec;
use crate::manifest::rules::CONFIG_NAME;
use crate::manifest::write::{merge_patch, Edit, WriteError};
use crate::manifest::{Digest, Kind};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_config, patch_config))
}

/// Conditional GET.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct GetHeaders {
    /// An ETag from an earlier GET: 304 when the Config is unchanged.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

/// Optimistic concurrency.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct PatchHeaders {
    /// The ETag of the Config the patch was written against (or `*`): 412 when it has changed since.
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

/// The spec as the API shows it. Secret references (`{fromEnv: NAME}`, ...) name where a
/// secret lives, never its value, and values are never resolved here.
fn redacted(spec: &ConfigSpec) -> Value {
    serde_json::to_value(spec).unwrap_or_default()
}

fn respond(spec: &ConfigSpec, digest: Option<&Digest>) -> Response {
    let mut response = Json(redacted(spec)).into_response();
    if let Some(d) = digest {
        response.headers_mut().insert(header::ETAG, etag(d));
    }
    response
}

/// Get the config
///
/// The Config spec with every default filled in. Secrets appear as their references
/// (`{fromEnv: NAME}`, ...), never their values.
#[utoipa::path(get, path = "/api/v1/config", operation_id = "config_get", tag = "config",
    params(GetHeaders),
    responses(
        (status = 200, description = "The Config spec", body = ref("#/components/schemas/ConfigSpec"),
            headers(("ETag" = String, description = "Entity tag of the Config manifest, for `If-Match`"))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag",
            headers(("ETag" = String, description = "Entity tag of the Config manifest"))),
    ))]
async fn get_config(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let active = state.live.config.load();
    if let (Some(d), Some(inm)) = (active.digest.as_ref(), headers.get(header::IF_NONE_MATCH)) {
        if inm.as_bytes() == etag(d).as_bytes() {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            r.headers_mut().insert(header::ETAG, etag(d));
            return r;
        }
    }
    respond(&active.spec, active.digest.as_ref())
}

/// Parses `If-Match`: `None` for absent or `*`, else the digest it names.
/// The digest an `If-Match` header holds the write to (RFC 9110 §13.1.1): `None` without the
/// header or with `*`; with a list, the current digest when any of its tags matches it
/// (strong comparison: a weak tag `W/"…"` never matches); 412 when none does.
fn if_match(headers: &HeaderMap, current: Option<Digest>) -> Result<Option<Digest>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    for tag in text.split(',').map(str::trim) {
        if tag == "*" {
            return Ok(None);
        }
        if tag.starts_with("W/") {
            continue;
        }
        let Some(hex_tag) = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
            continue;
        };
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(hex_tag, &mut digest).is_ok() && current.is_none_or(|c| c == digest)
        {
            return Ok(Some(digest));
        }
    }
    // A tag we never issued, a weak one, or an old one: it cannot match.
    Err(ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
        "If-Match does not match the current config; GET it again for its ETag",
    ))
}

/// Change the config
///
/// A JSON merge patch (RFC 7396) of the Config spec, written back to the file that holds the
/// Config (a git commit with `git.auto_commit`), in force when the call returns.
#[utoipa::path(patch, path = "/api/v1/config", operation_id = "config_update", tag = "config",
    params(PatchHeaders),
    request_body(content = ref("#/components/schemas/ConfigPatch"), content_type = "application/json"),
    responses(
        (status = 200, description = "The Config spec now in force", body = ref("#/components/schemas/ConfigSpec"),
            headers(("ETag" = String, description = "Entity tag of the new Config manifest"))),
        (status = 400, description = "`validation_failed` (with `details`), `invalid_patch` or `invalid_json`; nothing was written", body = ErrorBody),
        (status = 409, description = "`conflict`: the manifest moved meanwhile", body = ErrorBody),
        (status = 412, description = "`precondition_failed`: `If-Match` names an older Config", body = ErrorBody),
    ))]
async fn patch_config(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<Value>,
) -> Result<Response, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "invalid_patch",
            "the body must be a JSON object: a merge patch of the config (RFC 7396)",
        ));
    }
    // Manifest-only settings (SPEC §5a): compared with the Config in force.
    let old = serde_json::to_value(&state.live.config.load().spec).unwrap_or(Value::Null);
    let mut new = old.clone();
    merge_patch(&mut new, &patch);
    state.check_privilege(Kind::Config, &old, &new)?;
    let expected = if_match(&headers, state.live.config.load().digest)?;
    if let (Some(expected), Some(current)) = (expected, state.live.config.load().digest) {
        if expected != current {
            return Err(WriteError::PreconditionFailed(Kind::Config, CONFIG_NAME.into()).into());
        }
    }
    let context = caller.write_context("PATCH /api/v1/config");
    let edit = Edit::MergePatch {
        kind: Kind::Config,
        name: CONFIG_NAME.into(),
        patch: patch.clone(),
    };
    let outcome = match state
        .controller
        .write(edit, expected, context.clone())
        .await
    {
        // No Config manifest at all: the patch of an empty spec creates one.
        Err(WriteError::NotFound(..)) if expected.is_none() => {
            let mut spec = Value::Object(Default::default());
            merge_patch(&mut spec, &patch);
            let edit = Edit::Create {
                kind: Kind::Config,
                name: CONFIG_NAME.into(),
                spec,
                labels: Default::default(),
            };
            state.controller.write(edit, None, context).await?
        }
        other => other?,
    };
    tracing::info!(token = %caller.0.name, file = %outcome.path.display(), "config patched");
    let active = state.live.config.load();
    Ok(respond(&active.spec, active.digest.as_ref()))
}
