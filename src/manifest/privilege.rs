//! Manifest-only settings (SPEC §5a): settings that run programs or reach host paths reach the
//! server through a reviewed commit, not through the API. [`widened`] compares a resource's
//! spec before and after an API write-back and names the first setting the write would grant
//! or widen; the API refuses such a write with 403 `manifest_only` unless the server runs with
//! `--allow-api-privileged`. Giving privilege up (provider away from `command`,
//! `allow_commands: false`, fewer roots, dropping a `fromFile`) is never refused.
//!
//! The settings: `model.provider: command`, `model.command`, `tasks.allow_commands`,
//! `tasks.allowed_roots`, `skills.registry` as a local path, a Skill `source` that is a local
//! path (`path`, or a `registry` / archive / git location that is not http(s)), an McpServer's
//! `command` / `args` / `env` / `cwd`, and every `fromFile` secret reference. http(s) URLs
//! are not privileged: the egress policy guards them.

use serde_json::Value;

use super::kinds::Kind;

/// A setting an API write may not grant: the JSON pointer in the spec and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileged {
    /// The field, as a path below `spec` (e.g. `model.command`).
    pub field: String,
    /// What it grants.
    pub why: &'static str,
}

impl std::fmt::Display for Privileged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is a manifest-only setting ({}): commit it to the manifests, or start the server with --allow-api-privileged",
            self.field, self.why
        )
    }
}

fn is_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|v| !v.is_null())
}

fn field(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// Every `fromFile` reference in `v`, with its pointer.
fn from_files<'a>(v: &'a Value, pointer: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            if let Some(path) = map.get("fromFile") {
                out.push((pointer.clone(), path));
            }
            for (k, child) in map {
                from_files(child, format!("{pointer}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                from_files(child, format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The first manifest-only setting that `new` grants or widens compared with `old` (the specs
/// of one resource of `kind`; `Value::Null` when it does not exist yet).
pub fn widened(kind: Kind, old: &Value, new: &Value) -> Option<Privileged> {
    let changed = |p: &str| at(new, p).is_some() && at(new, p) != at(old, p);
    let mut files = Vec::new();
    from_files(new, String::new(), &mut files);
    for (pointer, path) in files {
        let known = old.pointer(&pointer).and_then(|o| o.get("fromFile"));
        if known != Some(path) {
            return Some(Privileged {
                field: field(&pointer),
                why: "a fromFile secret reads a file of the host",
            });
        }
    }
    let deny = |pointer: &str, why| {
        Some(Privileged {
            field: field(pointer),
            why,
        })
    };
    match kind {
        Kind::Config => {
            if at(new, "/model/provider").and_then(Value::as_str) == Some("command")
                && at(old, "/model/provider").and_then(Value::as_str) != Some("command")
            {
                return deny("/model/provider", "the command provider runs a program");
            }
            if changed("/model/command") {
                return deny(
                    "/model/command",
                    "it is the program the command provider runs",
                );
            }
            if at(new, "/tasks/allow_commands") == Some(&Value::Bool(true))
                && at(old, "/tasks/allow_commands") != Some(&Value::Bool(true))
            {
                return deny("/tasks/allow_commands", "tasks may run shell commands");
            }
            let roots = |v: &Value| -> Vec<String> {
                at(v, "/tasks/allowed_roots")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(|r| r.to_string()).collect())
                    .unwrap_or_default()
            };
            let before = roots(old);
            if roots(new).iter().any(|r| !before.contains(r)) {
                return deny(
                    "/tasks/allowed_roots",
                    "tasks may work in more host directories",
                );
            }
            if let Some(registry) = at(new, "/skills/registry").and_then(Value::as_str) {
                if !is_url(registry) && changed("/skills/registry") {
                    return deny("/skills/registry", "a local registry reads host paths");
                }
            }
        }
        Kind::Skill => {
            if changed("/source/path") {
                return deny("/source/path", "a local source reads host paths");
            }
            for pointer in ["/source/registry", "/source/archive/url", "/source/git/url"] {
                if let Some(location) = at(new, pointer).and_then(Value::as_str) {
                    if !is_url(location) && changed(pointer) {
                        return deny(pointer, "a local source reads host paths");
                    }
                }
            }
        }
        Kind::McpServer => {
            for pointer in ["/command", "/args", "/env", "/cwd"] {
                if changed(pointer) {
                    return deny(pointer, "a stdio MCP server is a program the server runs");
                }
            }
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn granting_is_refused_giving_up_is_not() {
        let base =
            json!({"model": {"provider": "anthropic"}, "tasks": {"allowed_roots": ["/srv/a"]}});
        let refused = [
            (json!({"model": {"provider": "command"}}), "model.provider"),
            (json!({"model": {"command": ["sh"]}}), "model.command"),
            (
                json!({"tasks": {"allow_commands": true}}),
                "tasks.allow_commands",
            ),
            (
                json!({"tasks": {"allowed_roots": ["/srv/a", "/"]}}),
                "tasks.allowed_roots",
            ),
            (json!({"skills": {"registry": "/etc"}}), "skills.registry"),
            (
                json!({"model": {"api_key": {"fromFile": "/etc/shadow"}}}),
                "model.api_key",
            ),
        ];
        for (patch, name) in refused {
            let mut new = base.clone();
            crate::manifest::write::merge_patch(&mut new, &patch);
            let got = widened(Kind::Config, &base, &new).map(|p| p.field);
            assert_eq!(got.as_deref(), Some(name), "{patch}");
        }
        let privileged = json!({"model": {"provider": "command", "command": ["x"]}, "tasks": {"allow_commands": true, "allowed_roots": ["/a", "/b"]}});
        for patch in [
            json!({"model": {"provider": "anthropic", "command": null}}),
            json!({"tasks": {"allow_commands": false}}),
            json!({"tasks": {"allowed_roots": ["/a"]}}),
            json!({"skills": {"registry": "https://skills.example"}}),
            json!({"rate_limit": {"burst": 3}}),
        ] {
            let mut new = privileged.clone();
            crate::manifest::write::merge_patch(&mut new, &patch);
            assert_eq!(widened(Kind::Config, &privileged, &new), None, "{patch}");
        }
        assert!(widened(
            Kind::Skill,
            &Value::Null,
            &json!({"source": {"path": "/etc"}})
        )
        .is_some());
        assert!(widened(
            Kind::Skill,
            &Value::Null,
            &json!({"source": {"registry": "https://r"}})
        )
        .is_none());
    }
}
