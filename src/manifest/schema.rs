//! JSON Schema validation of whole manifest documents against the embedded `schemas/*.json`.
//!
//! Every error is reported (not just the first), each with the JSON pointer of the offending
//! field and a message built only from the schema keyword and its limit. Messages never quote
//! the offending value: a user may have pasted a secret where a secret reference belongs, and
//! these messages end up in logs, the status API and webhook payloads.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::Value;

use super::kinds::Kind;

const CONFIG: &str = include_str!("../../schemas/config.schema.json");
const TOKEN: &str = include_str!("../../schemas/token.schema.json");
const SKILL: &str = include_str!("../../schemas/skill.schema.json");
const WEBHOOK: &str = include_str!("../../schemas/webhook.schema.json");
const MCPSERVER: &str = include_str!("../../schemas/mcpserver.schema.json");
const SCHEDULE: &str = include_str!("../../schemas/schedule.schema.json");

/// The message of every error inside a secret reference, whatever the keyword: the value is
/// likely a pasted secret, and the three accepted shapes are what the user needs to see.
const SECRET_REF_MESSAGE: &str =
    "must be a secret reference: {fromEnv: NAME}, {fromFile: PATH} or {ref: NAME}";

/// A compiled schema plus its JSON, which is needed to look up `errorMessage` hints.
struct Compiled {
    schema: Value,
    validator: Validator,
}

fn compile(text: &str) -> Compiled {
    let schema: Value = serde_json::from_str(text).expect("embedded schema is valid JSON");
    // Formats are annotations only by default in 2020-12; we want date-time and uri checked.
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("embedded schema compiles");
    Compiled { schema, validator }
}

static COMPILED: [LazyLock<Compiled>; 6] = [
    LazyLock::new(|| compile(CONFIG)),
    LazyLock::new(|| compile(TOKEN)),
    LazyLock::new(|| compile(SKILL)),
    LazyLock::new(|| compile(WEBHOOK)),
    LazyLock::new(|| compile(MCPSERVER)),
    LazyLock::new(|| compile(SCHEDULE)),
];

fn compiled(kind: Kind) -> &'static Compiled {
    let index = match kind {
        Kind::Config => 0,
        Kind::Token => 1,
        Kind::Skill => 2,
        Kind::Webhook => 3,
        Kind::McpServer => 4,
        Kind::Schedule => 5,
    };
    &COMPILED[index]
}

/// The JSON Schema text of `kind`, as shipped in `schemas/`.
pub fn schema_text(kind: Kind) -> &'static str {
    match kind {
        Kind::Config => CONFIG,
        Kind::Token => TOKEN,
        Kind::Skill => SKILL,
        Kind::Webhook => WEBHOOK,
        Kind::McpServer => MCPSERVER,
        Kind::Schedule => SCHEDULE,
    }
}

/// The parsed JSON Schema of `kind`.
pub fn schema(kind: Kind) -> &'static Value {
    &compiled(kind).schema
}

/// One schema violation in a document.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Violation {
    /// RFC 6901 JSON pointer of the offending field, relative to the document (`""` is the root).
    pub pointer: String,
    /// What is wrong; never contains the offending value.
    pub message: String,
}

/// Validates a whole document (`apiVersion`, `kind`, `metadata`, `spec`) against the schema of
/// `kind`; returns every violation, sorted by pointer and deduplicated (empty when valid).
pub fn validate(kind: Kind, document: &Value) -> Vec<Violation> {
    let compiled = compiled(kind);
    let mut out = Vec::new();
    for error in compiled.validator.iter_errors(document) {
        translate(&compiled.schema, &error, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// Turns one validation error into violations (several for `additionalProperties`, or when a
/// `oneOf` is resolved to the errors of the one branch the value evidently meant).
fn translate(schema: &Value, error: &ValidationError<'_>, out: &mut Vec<Violation>) {
    let pointer = error.instance_path().as_str().to_owned();
    let schema_path = error.schema_path().as_str();
    let push = |out: &mut Vec<Violation>, pointer: String, message: String| {
        out.push(Violation { pointer, message });
    };

    if schema_path.contains("/secretRef/") || schema_path.ends_with("/secretRef") {
        // Whatever went wrong inside a secret reference, point at the reference itself.
        let at = secret_ref_pointer(schema_path, &pointer);
        push(out, at, SECRET_REF_MESSAGE.to_owned());
        return;
    }

    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for key in unexpected {
                push(
                    out,
                    format!("{pointer}/{}", escape(key)),
                    format!("unknown field \"{key}\""),
                );
            }
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            // When exactly one branch failed only below this value, that branch is the shape
            // the user meant (e.g. `source: {git: {url: 5}}`): its errors are the useful ones.
            let depth = pointer.len();
            let meant: Vec<_> = context
                .iter()
                .filter(|branch| {
                    !branch.is_empty()
                        && branch.iter().all(|e| {
                            let p = e.instance_path().as_str();
                            p.len() > depth && p.starts_with(pointer.as_str())
                        })
                })
                .collect();
            if let [branch] = meant.as_slice() {
                for inner in branch.iter() {
                    translate(schema, inner, out);
                }
            } else {
                let message = hint(schema, schema_path, "errorMessage")
                    .unwrap_or_else(|| "does not match any of the allowed forms".to_owned());
                push(out, pointer, message);
            }
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            let message = hint(schema, schema_path, "errorMessage")
                .unwrap_or_else(|| "matches more than one of the allowed forms".to_owned());
            push(out, pointer, message);
        }
        ValidationErrorKind::Not { .. } => {
            let message = hint(schema, schema_path, "errorMessage")
                .unwrap_or_else(|| "matches a form that is not allowed".to_owned());
            push(out, pointer, message);
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            // The offending key is not a secret and is what locates the problem.
            let at = match inner.instance().as_ref() {
                Value::String(key) => format!("{pointer}/{}", escape(key)),
                _ => pointer,
            };
            let message = match inner.kind() {
                ValidationErrorKind::Pattern { pattern } => {
                    format!("key does not match pattern {pattern}")
                }
                other => format!(
                    "invalid key: {}",
                    message(schema, inner.schema_path().as_str(), other)
                ),
            };
            push(out, at, message);
        }
        other => push(out, pointer, message(schema, schema_path, other)),
    }
}

/// The message of a single-keyword error, from the keyword and its limit only.
fn message(schema: &Value, schema_path: &str, kind: &ValidationErrorKind) -> String {
    match kind {
        ValidationErrorKind::Required { property } => match property.as_str() {
            Some(name) => format!("missing required field \"{name}\""),
            None => format!("missing required field {property}"),
        },
        ValidationErrorKind::Type { kind } => match kind {
            TypeKind::Single(ty) => format!("must be {}", type_name(*ty)),
            TypeKind::Multiple(set) => {
                let names: Vec<_> = set.iter().map(type_name).collect();
                format!("must be {}", names.join(" or "))
            }
        },
        ValidationErrorKind::Constant { expected_value } => format!("must be {expected_value}"),
        ValidationErrorKind::Enum { options } => match options.as_array() {
            Some(options) => {
                let names: Vec<String> = options
                    .iter()
                    .map(|o| match o.as_str() {
                        Some(s) => s.to_owned(),
                        None => o.to_string(),
                    })
                    .collect();
                format!("must be one of: {}", names.join(", "))
            }
            None => format!("must be one of: {options}"),
        },
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        ValidationErrorKind::MultipleOf { multiple_of } => {
            format!("must be a multiple of {multiple_of}")
        }
        ValidationErrorKind::MinLength { limit: 1 } => "must not be empty".to_owned(),
        ValidationErrorKind::MinLength { limit } => {
            format!("must be at least {limit} characters long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("must be at most {limit} characters long")
        }
        ValidationErrorKind::MinItems { limit: 1 } => "must not be empty".to_owned(),
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} items"),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} items"),
        ValidationErrorKind::MinProperties { limit } => {
            format!("must have at least {limit} fields")
        }
        ValidationErrorKind::MaxProperties { limit } => {
            format!("must have at most {limit} fields")
        }
        ValidationErrorKind::UniqueItems => "must not contain duplicate items".to_owned(),
        ValidationErrorKind::Pattern { pattern } => {
            hint(schema, schema_path, "patternErrorMessage")
                .unwrap_or_else(|| format!("does not match pattern {pattern}"))
        }
        ValidationErrorKind::Format { format } => match format.as_str() {
            "date-time" => "must be an RFC 3339 date-time, e.g. 2025-01-31T12:00:00Z".to_owned(),
            "uri" => "must be a valid URI".to_owned(),
            other => format!("must be a valid {other}"),
        },
        ValidationErrorKind::AdditionalItems { limit } => {
            format!("must have at most {limit} items")
        }
        ValidationErrorKind::UnevaluatedItems { .. } => "has unexpected items".to_owned(),
        ValidationErrorKind::Contains => "must contain a matching item".to_owned(),
        ValidationErrorKind::FalseSchema => "is not allowed".to_owned(),
        ValidationErrorKind::ContentEncoding { content_encoding } => {
            format!("must be {content_encoding}-encoded")
        }
        ValidationErrorKind::ContentMediaType { content_media_type } => {
            format!("must be of media type {content_media_type}")
        }
        ValidationErrorKind::FromUtf8 { .. } => "must decode to UTF-8 text".to_owned(),
        ValidationErrorKind::BacktrackLimitExceeded { .. }
        | ValidationErrorKind::RegexEngineFailure { .. } => {
            "could not be checked against its pattern".to_owned()
        }
        ValidationErrorKind::Referencing(_) => {
            "could not be checked: schema reference unresolved".to_owned()
        }
        ValidationErrorKind::Custom { keyword, .. } => format!("is invalid ({keyword})"),
        // Composite keywords are handled in `translate`; reached only through PropertyNames.
        ValidationErrorKind::AdditionalProperties { .. }
        | ValidationErrorKind::UnevaluatedProperties { .. } => "has unknown fields".to_owned(),
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            "does not match any of the allowed forms".to_owned()
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            "matches more than one of the allowed forms".to_owned()
        }
        ValidationErrorKind::Not { .. } => "matches a form that is not allowed".to_owned(),
        ValidationErrorKind::PropertyNames { .. } => "has an invalid key".to_owned(),
    }
}

fn type_name(ty: JsonType) -> &'static str {
    match ty {
        JsonType::Array => "an array",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Null => "null",
        JsonType::Number => "a number",
        JsonType::Object => "an object",
        JsonType::String => "a string",
    }
}

/// A string hint (`errorMessage`, `patternErrorMessage`) on the schema object holding the
/// failing keyword; these keywords are also understood by yaml-language-server.
fn hint(schema: &Value, schema_path: &str, name: &str) -> Option<String> {
    let (parent, _keyword) = schema_path.rsplit_once('/')?;
    schema
        .pointer(parent)?
        .get(name)?
        .as_str()
        .map(str::to_owned)
}

/// The instance pointer of the secret reference an error inside it belongs to: the error's
/// own pointer minus however many instance levels the schema path descends below `secretRef`.
fn secret_ref_pointer(schema_path: &str, pointer: &str) -> String {
    let below = schema_path
        .rsplit_once("/secretRef")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    // Only `properties/<name>` steps move into the instance inside a secretRef.
    let levels = below.split('/').filter(|s| *s == "properties").count();
    let mut p = pointer;
    for _ in 0..levels {
        p = p.rsplit_once('/').map_or("", |(head, _)| head);
    }
    p.to_owned()
}

/// Escapes one JSON pointer segment (RFC 6901).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_embedded_schema_compiles() {
        for kind in Kind::ALL {
            let c = compiled(kind);
            assert_eq!(
                c.schema["properties"]["kind"]["const"],
                json!(kind.as_str()),
                "{kind}"
            );
            assert_eq!(
                c.schema["$id"],
                json!(format!(
                    "https://openclaw.dev/schemas/v1/{}.schema.json",
                    kind.as_str().to_lowercase()
                ))
            );
        }
    }

    #[test]
    fn schemas_are_valid_draft_2020_12() {
        for kind in Kind::ALL {
            assert!(
                jsonschema::meta::is_valid(schema(kind)),
                "{kind} schema is not a valid JSON Schema"
            );
        }
    }

    fn token(spec: Value) -> Value {
        json!({"apiVersion": "openclaw.dev/v1", "kind": "Token", "metadata": {"name": "ci"}, "spec": spec})
    }

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn messages_name_keyword_and_limit() {
        let doc = token(json!({"scop": "full", "sha256": "nope", "description": 5}));
        let v = validate(Kind::Token, &doc);
        let got: Vec<(&str, &str)> = v
            .iter()
            .map(|v| (v.pointer.as_str(), v.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/spec", "missing required field \"scope\""),
                ("/spec/description", "must be a string"),
                ("/spec/scop", "unknown field \"scop\""),
                ("/spec/sha256", "does not match pattern ^[0-9a-f]{64}$"),
            ]
        );
        let doc = token(json!({"scope": "admin", "sha256": HASH}));
        assert_eq!(
            validate(Kind::Token, &doc)[0].message,
            "must be one of: full, read, execute"
        );
    }

    #[test]
    fn pointer_of_unknown_key_is_escaped() {
        let mut doc = token(json!({"scope": "full", "sha256": HASH}));
        doc["spec"]["a/b~c"] = json!(1);
        let v = validate(Kind::Token, &doc);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].pointer, "/spec/a~1b~0c");
    }

    #[test]
    fn one_of_reports_the_branch_meant() {
        let doc = json!({"apiVersion": "openclaw.dev/v1", "kind": "Skill", "metadata": {"name": "s"},
            "spec": {"source": {"git": {"url": 5}}}});
        let v = validate(Kind::Skill, &doc);
        assert_eq!(
            v,
            vec![Violation {
                pointer: "/spec/source/git/url".into(),
                message: "must be a string".into()
            }]
        );
        let doc = json!({"apiVersion": "openclaw.dev/v1", "kind": "Skill", "metadata": {"name": "s"},
            "spec": {"source": {"git": {"url": "u"}, "path": "/x"}}});
        let v = validate(Kind::Skill, &doc);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.starts_with("must be exactly one of"), "{v:?}");
    }

    #[test]
    fn secret_ref_errors_point_at_the_reference() {
        let doc = json!({"apiVersion": "openclaw.dev/v1", "kind": "Webhook", "metadata": {"name": "w"},
            "spec": {"url": "https://example.com/h", "events": ["*"], "secret": {"fromEnv": "sk-secret-123"}}});
        let v = validate(Kind::Webhook, &doc);
        assert_eq!(
            v,
            vec![Violation {
                pointer: "/spec/secret".into(),
                message: SECRET_REF_MESSAGE.into()
            }]
        );
    }

    #[test]
    fn bad_env_key_is_pointed_at() {
        let doc = json!({"apiVersion": "openclaw.dev/v1", "kind": "McpServer", "metadata": {"name": "m"},
            "spec": {"command": "x", "env": {"BAD-KEY": "v", "OK": {"fromFile": "/run/k"}, "N": 3}}});
        let v = validate(Kind::McpServer, &doc);
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/spec/env/BAD-KEY", "/spec/env/N"], "{v:?}");
    }

    #[test]
    fn formats_are_checked() {
        let doc = token(json!({"scope": "read", "sha256": HASH, "expiresAt": "tomorrow"}));
        let v = validate(Kind::Token, &doc);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].pointer, "/spec/expiresAt");
        let doc =
            token(json!({"scope": "read", "sha256": HASH, "expiresAt": "2030-01-01T00:00:00Z"}));
        assert!(validate(Kind::Token, &doc).is_empty());
    }

    #[test]
    fn wrong_kind_and_version_are_reported() {
        let doc = json!({"apiVersion": "v2", "kind": "Tokn", "metadata": {"name": "x"}, "spec": {"scope": "read", "sha256": HASH}});
        let v = validate(Kind::Token, &doc);
        assert_eq!(
            v,
            vec![
                Violation {
                    pointer: "/apiVersion".into(),
                    message: "must be \"openclaw.dev/v1\"".into()
                },
                Violation {
                    pointer: "/kind".into(),
                    message: "must be \"Token\"".into()
                },
            ]
        );
    }

    #[test]
    fn config_must_be_named_default() {
        let doc = json!({"apiVersion": "openclaw.dev/v1", "kind": "Config", "metadata": {"name": "prod"}});
        let v = validate(Kind::Config, &doc);
        assert_eq!(
            v,
            vec![Violation {
                pointer: "/metadata/name".into(),
                message: "must be \"default\"".into()
            }]
        );
    }
}
