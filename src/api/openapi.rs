//! The OpenAPI 3.1 description of the API, served at `GET /api/v1/openapi.json` (no token)
//! and committed as `schemas/openapi.json`.
//!
//! Generated, never hand-kept: each handler carries a `#[utoipa::path]` annotation and the
//! types it answers derive `ToSchema`; `api::routes` registers every route through
//! `utoipa_axum`, so a route cannot be served without being described. This module adds what
//! is the same for every operation, from the code that enforces it: the bearer scheme, the
//! scope each operation needs (`x-required-scope`, from [`auth::required_scope`]), the
//! authentication, rate-limit and body-limit errors, and the `X-RateLimit-*` / `Retry-After`
//! headers. The Config spec is described by the same JSON Schema `claw validate` uses
//! (`schemas/config.schema.json`).

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{header, Method};
use axum::response::IntoResponse;
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::{auth, Routes};
use crate::manifest::schema::schema_text;
use crate::manifest::Kind;

/// The parts of the document no handler owns.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "claw — OpenClaw API",
        description = "The OpenClaw API as served by `claw serve`: a GitOps controller whose writes \
go back to YAML manifests. Authenticate with `Authorization: Bearer ocl_…`; a token's scope \
(`read` < `execute` < `full`) decides what it may call (each operation's `x-required-scope`). \
Errors are `{\"error\": {\"code\", \"message\", \"details\"?, \"retry_after\"?}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "This server")),
    tags(
        (name = "system", description = "Status, health, metrics and this document"),
        (name = "tasks", description = "Prompts run by the agent"),
        (name = "skills", description = "Skill manifests"),
        (name = "config", description = "The Config manifest"),
        (name = "webhooks", description = "Webhook manifests and their deliveries"),
        (name = "schedules", description = "Schedule manifests: tasks that run on their own"),
        (name = "mcp", description = "McpServer manifests and their live state"),
        (name = "resources", description = "Every declared resource and the reconciler"),
        (name = "openai", description = "The OpenAI-compatible API (`/v1`), off unless Config `api.openai_compatible`; errors in OpenAI's shape"),
    )
)]
struct Base;

/// Media type of error bodies.
const JSON: &str = "application/json";

/// The whole document.
pub fn document() -> Value {
    let Routes {
        bearer,
        hooks,
        public,
        openai,
    } = super::routes();
    let mut doc = to_value(Base::openapi());
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for (part, auth) in [
        (bearer.into_openapi(), Auth::Bearer),
        (hooks.into_openapi(), Auth::BearerOrSignature),
        (public.into_openapi(), Auth::None),
        (openai.into_openapi(), Auth::OpenAi),
    ] {
        let mut part = to_value(part);
        if let Some(Value::Object(part_paths)) = part.get_mut("paths").map(Value::take) {
            for (path, mut item) in part_paths {
                if let Value::Object(ops) = &mut item {
                    for (method, op) in ops.iter_mut() {
                        decorate(&path, method, op, auth);
                    }
                }
                paths.insert(path, item);
            }
        }
        if let Some(Value::Object(s)) = part.pointer_mut("/components/schemas").map(Value::take) {
            schemas.extend(s);
        }
    }
    schemas.extend(kind_schemas());
    schemas.sort_keys();
    doc["paths"] = Value::Object(paths);
    doc["components"] = json!({
        "schemas": schemas,
        "responses": common_responses(),
        "headers": common_headers(),
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token (`ocl_…`), created with `claw token create`."
            },
            "gitHubSignature": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Hub-Signature-256",
                "description": "`sha256=<hex HMAC-SHA256 of the body>` keyed with the git webhook secret (`POST /api/v1/hooks/git` only)."
            }
        }
    });
    doc["security"] = json!([{ "bearer": [] }]);
    doc
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// `GET /api/v1/openapi.json` (public; built once per process).
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi", tag = "system",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
pub async fn serve() -> impl IntoResponse {
    static TEXT: OnceLock<Bytes> = OnceLock::new();
    let body = TEXT.get_or_init(|| Bytes::from(document_text())).clone();
    ([(header::CONTENT_TYPE, JSON)], body)
}

fn to_value(doc: utoipa::openapi::OpenApi) -> Value {
    serde_json::to_value(doc).unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    /// Behind `auth::authenticate`.
    Bearer,
    /// `POST /api/v1/hooks/git`: a signature, or else the bearer token.
    BearerOrSignature,
    /// No token.
    None,
    /// The OpenAI-compatible `/v1/...`: the bearer token, errors in OpenAI's shape.
    OpenAi,
}

/// A path template made concrete, for [`auth::required_scope`].
fn sample_path(template: &str) -> String {
    template.replace(['{', '}'], "")
}

/// Adds what every operation of its kind shares.
fn decorate(path: &str, method: &str, op: &mut Value, auth: Auth) {
    let Some(op) = op.as_object_mut() else {
        return;
    };
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut responses = responses;
    if op.contains_key("requestBody") {
        responses
            .entry("400")
            .or_insert_with(|| reference("InvalidBody"));
        responses.insert("413".into(), reference("PayloadTooLarge"));
    }
    if method == "post" && super::idempotency::ROUTES.contains(&path) {
        idempotent(op, &mut responses);
    }
    if auth == Auth::None {
        op.insert("security".into(), json!([]));
        op.insert("responses".into(), Value::Object(responses));
        return;
    }
    let Ok(method_parsed) = method.to_ascii_uppercase().parse::<Method>() else {
        return;
    };
    let scope = auth::required_scope(&method_parsed, &sample_path(path));
    op.insert("x-required-scope".into(), scope.as_str().into());
    let note = format!(
        "Requires a token with scope `{}` (or wider).",
        scope.as_str()
    );
    let description = match op.get("description").and_then(Value::as_str) {
        Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
        _ => note,
    };
    op.insert("description".into(), description.into());
    op.insert(
        "security".into(),
        if auth == Auth::BearerOrSignature {
            json!([{ "bearer": [] }, { "gitHubSignature": [] }])
        } else {
            json!([{ "bearer": [] }])
        },
    );
    // Every answer past authentication carries the rate-limit headers (a signed git hook is
    // not rate-limited, so it has none).
    if auth == Auth::Bearer || auth == Auth::OpenAi {
        for (status, response) in responses.iter_mut() {
            // `/v1`'s 404 may be the switch's, which answers before authentication.
            let before_auth = auth == Auth::OpenAi && status == "404";
            if status != "400" && status != "413" && !before_auth {
                add_rate_limit_headers(response);
            }
        }
    }
    responses
        .entry("400")
        .or_insert_with(|| reference("TokenInQuery"));
    responses.insert("401".into(), reference("Unauthorized"));
    if scope != crate::auth::Scope::Read {
        responses.insert("403".into(), reference("Forbidden"));
    }
    responses.insert("429".into(), reference("RateLimited"));
    if auth == Auth::OpenAi {
        // The same answers, in OpenAI's error shape.
        for response in responses.values_mut() {
            if let Some(Value::String(r)) = response.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/components/responses/") {
                    *r = format!("#/components/responses/{OPENAI_PREFIX}{name}");
                }
            }
        }
    }
    op.insert("responses".into(), Value::Object(sort_statuses(responses)));
}

/// Prefix of the common responses in OpenAI's error shape (`/v1/...`).
const OPENAI_PREFIX: &str = "OpenAi";

/// The `Idempotency-Key` header of a creating POST ([`super::idempotency`]): the parameter,
/// `Idempotent-Replayed` on its answers, and the 409 / 422 it adds.
fn idempotent(op: &mut Map<String, Value>, responses: &mut Map<String, Value>) {
    let parameters = op.entry("parameters").or_insert_with(|| json!([]));
    if let Some(list) = parameters.as_array_mut() {
        list.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Makes a retry safe, as Stripe's header does: the same key with the same method, path and body within 24 h answers the first response again (with `Idempotent-Replayed: true`) instead of creating twice; the same key with another request is 422 `idempotency_key_reused`. Keys are per token; 1 to 255 printable ASCII characters (else 400 `invalid_idempotency_key`). Responses of 5xx, 408, 409, 425 and 429 are not kept: a retry runs again.",
            "schema": { "type": "string", "minLength": 1, "maxLength": super::idempotency::MAX_KEY_LEN, "pattern": "^[\\x21-\\x7E]([\\x20-\\x7E]*[\\x21-\\x7E])?$" }
        }));
    }
    for (status, response) in responses.iter_mut() {
        if status.starts_with('2') {
            if let Some(r) = response.as_object_mut().filter(|r| !r.contains_key("$ref")) {
                let headers = r.entry("headers").or_insert_with(|| json!({}));
                headers["Idempotent-Replayed"] = header_ref("Idempotent-Replayed");
            }
        }
    }
    let in_progress = "`idempotency_key_in_progress`: a request with this `Idempotency-Key` is still running; retry after `Retry-After` seconds with the same key";
    match responses.get_mut("409").and_then(Value::as_object_mut) {
        Some(r) => {
            let before = r.get("description").and_then(Value::as_str).unwrap_or("");
            let description = format!("{before}; or {in_progress}");
            r.insert("description".into(), description.into());
        }
        None => {
            responses.insert("409".into(), error_response(in_progress, json!({})));
        }
    }
    responses.insert(
        "422".into(),
        error_response(
            "`idempotency_key_reused`: this `Idempotency-Key` was used with another request within 24 h",
            json!({}),
        ),
    );
}

fn sort_statuses(responses: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<_> = responses.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

fn reference(response: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{response}") })
}

fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

fn add_rate_limit_headers(response: &mut Value) {
    if let Some(r) = response.as_object_mut() {
        if r.contains_key("$ref") {
            return;
        }
        let headers = r.entry("headers").or_insert_with(|| json!({}));
        for name in [
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
        ] {
            headers[name] = header_ref(name);
        }
    }
}

fn error_response(description: &str, headers: Value) -> Value {
    json!({
        "description": description,
        "headers": headers,
        "content": { JSON: { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
    })
}

fn rate_limit_headers() -> Value {
    json!({
        "X-RateLimit-Limit": header_ref("X-RateLimit-Limit"),
        "X-RateLimit-Remaining": header_ref("X-RateLimit-Remaining"),
        "X-RateLimit-Reset": header_ref("X-RateLimit-Reset"),
    })
}

fn common_responses() -> Value {
    let mut ours = our_common_responses();
    // Each again for `/v1/...`, whose errors are OpenAI's `{"error": {"message", "type",
    // "param", "code"}}`.
    let theirs: Vec<(String, Value)> = ours
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, response)| {
            let mut response = response.clone();
            response["content"][JSON]["schema"] =
                json!({ "$ref": "#/components/schemas/OpenAiErrorBody" });
            (format!("{OPENAI_PREFIX}{name}"), response)
        })
        .collect();
    if let Some(map) = ours.as_object_mut() {
        map.extend(theirs);
    }
    ours
}

fn our_common_responses() -> Value {
    let mut limited = rate_limit_headers();
    limited["Retry-After"] = header_ref("Retry-After");
    json!({
        "TokenInQuery": error_response(
            "`token_in_query`: a credential was sent in the URL (refused before authentication), or a handler's `invalid_parameter` / `validation_failed`",
            json!({})),
        "InvalidBody": error_response(
            "`invalid_json`, `invalid_body` or `validation_failed` (with `details`); also `token_in_query`",
            json!({})),
        "PayloadTooLarge": error_response(
            "`payload_too_large`: the body is over the limit (1 MiB by default)", json!({})),
        "Unauthorized": error_response(
            "`unauthorized`: the bearer token is missing, unknown, expired or revoked",
            json!({ "WWW-Authenticate": { "schema": { "type": "string" }, "required": true } })),
        "Forbidden": error_response(
            "`forbidden`: the token's scope does not allow this call (see `x-required-scope`)",
            rate_limit_headers()),
        "RateLimited": error_response(
            "`rate_limited`: over the token's rate limit (Config `rate_limit`); retry after `Retry-After` seconds (also `error.retry_after`)",
            limited),
    })
}

fn common_headers() -> Value {
    let integer = |description: &str| {
        json!({
            "description": description,
            "required": true,
            "schema": { "type": "integer", "minimum": 0 }
        })
    };
    json!({
        "X-RateLimit-Limit": integer("Requests the token may make per window (Config `rate_limit.burst`, or the token's own; 4294967295 for an `unlimited` token, whose remainder is the same and reset now)"),
        "X-RateLimit-Remaining": integer("Requests left in the current window"),
        "X-RateLimit-Reset": integer("Unix time (seconds) when the window is full again"),
        "Idempotent-Replayed": {
            "description": "`true` when this is the stored response of an earlier request with the same `Idempotency-Key`",
            "required": false,
            "schema": { "type": "string", "enum": ["true"] }
        },
        "Retry-After": {
            "description": "Seconds to wait before retrying (at least 1)",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 }
        },
    })
}

/// `ConfigSpec` (and the definitions it uses) from the Config kind's JSON Schema, so the
/// API and `claw validate` describe the Config with one schema; plus `ConfigPatch`.
fn kind_schemas() -> Map<String, Value> {
    let mut out = Map::new();
    let Ok(schema) = serde_json::from_str::<Value>(schema_text(Kind::Config)) else {
        return out;
    };
    let prefix = "Config_";
    let mut spec = schema
        .pointer("/properties/spec")
        .cloned()
        .unwrap_or_default();
    rewrite_refs(&mut spec, prefix);
    out.insert("ConfigSpec".into(), spec);
    if let Some(Value::Object(defs)) = schema.get("$defs") {
        for (name, def) in defs {
            let mut def = def.clone();
            rewrite_refs(&mut def, prefix);
            out.insert(format!("{prefix}{name}"), def);
        }
    }
    // Keep only the definitions the spec reaches.
    let mut reached = std::collections::BTreeSet::new();
    let mut todo = vec!["ConfigSpec".to_owned()];
    while let Some(name) = todo.pop() {
        if !reached.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = out.get(&name) {
            collect_refs(schema, &mut todo);
        }
    }
    out.retain(|name, _| reached.contains(name));
    out.insert(
        "ConfigPatch".into(),
        json!({
            "type": "object",
            "description": "A JSON merge patch (RFC 7396) of `ConfigSpec`: the fields to change; `null` removes a field (its default applies again)."
        }),
    );
    out
}

fn rewrite_refs(schema: &mut Value, prefix: &str) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/$defs/") {
                    *r = format!("#/components/schemas/{prefix}{name}");
                }
            }
            map.remove("$defs");
            map.values_mut().for_each(|v| rewrite_refs(v, prefix));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

fn collect_refs(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(name.to_owned());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = "schemas/openapi.json";

    /// The committed copy is what the code generates. `UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn committed_openapi_json_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
        let generated = document_text();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write schemas/openapi.json");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{COMMITTED} is stale (the API changed): regenerate it with\n    \
             cargo run -- openapi > {COMMITTED}\nor\n    \
             UPDATE_OPENAPI=1 cargo test --lib openapi\nand commit the result"
        );
    }

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                out.push((path.clone(), method.clone(), op));
            }
        }
        out
    }

    #[test]
    fn every_operation_declares_the_scope_the_middleware_enforces() {
        let doc = document();
        let public = ["/healthz", "/readyz", "/api/v1/openapi.json"];
        let ops = operations(&doc);
        assert!(ops.len() >= 30, "only {} operations described", ops.len());
        for (path, method, op) in ops {
            if public.contains(&path.as_str()) {
                assert_eq!(op["security"], json!([]), "{method} {path} is public");
                assert!(op.get("x-required-scope").is_none());
                continue;
            }
            let method: Method = method.to_ascii_uppercase().parse().unwrap();
            let needed = auth::required_scope(&method, &sample_path(&path));
            assert_eq!(
                op["x-required-scope"].as_str(),
                Some(needed.as_str()),
                "{method} {path}"
            );
            assert!(op["responses"]["401"].is_object(), "{method} {path}: 401");
            assert!(op["responses"]["429"].is_object(), "{method} {path}: 429");
            assert_eq!(
                op["responses"]["403"].is_object(),
                needed != crate::auth::Scope::Read,
                "{method} {path}: 403 exactly when more than read is needed"
            );
        }
    }

    #[test]
    fn operation_ids_are_unique_and_every_reference_resolves() {
        let doc = document();
        let mut ids = std::collections::BTreeSet::new();
        for (path, method, op) in operations(&doc) {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(ids.insert(id.clone()), "operationId {id} is used twice");
        }
        let mut refs = Vec::new();
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                        out.push(r.to_owned());
                    }
                    m.values().for_each(|v| walk(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&doc, &mut refs);
        for r in refs {
            let pointer = r.strip_prefix('#').unwrap_or(&r);
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    }

    /// What GET /config answers for a default Config validates against the `ConfigSpec` the
    /// document gives (taken from the kind schema).
    #[test]
    fn the_default_config_matches_the_documented_config_spec() {
        let spec = kind_schemas().remove("ConfigSpec").unwrap();
        assert_eq!(spec["type"], "object");
        let served = serde_json::to_value(crate::manifest::kinds::ConfigSpec::default()).unwrap();
        let mut schema = schema_text(Kind::Config)
            .parse::<Value>()
            .unwrap()
            .pointer("/properties/spec")
            .cloned()
            .unwrap();
        // Validate against the kind schema with its own $defs.
        schema["$defs"] =
            serde_json::from_str::<Value>(schema_text(Kind::Config)).unwrap()["$defs"].clone();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&served)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}
