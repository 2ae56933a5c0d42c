//! Skill registries: a directory or an http(s) base URL laid out as
//!
//! ```text
//! <registry>/<name>/index.json          {"name", "versions": [{"version", "archive", "sha256"}]}
//! <registry>/<name>/<name>-<version>.tar.gz
//! ```
//!
//! `archive` is relative to the index (or an absolute http(s) URL). Resolving turns a name and
//! a requirement (`latest`, an exact version, a semver range) into one archive and the digest
//! it must have.

use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use super::SkillError;

/// Largest `index.json` read (1 MiB).
pub const MAX_INDEX_BYTES: u64 = 1024 * 1024;
/// Largest archive downloaded (the unpacked limit; gzip only shrinks skills).
pub const MAX_DOWNLOAD_BYTES: u64 = super::archive::MAX_TOTAL_BYTES;
/// How long one registry or archive request may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The file naming a skill's versions.
pub const INDEX_FILE: &str = "index.json";

/// Where a registry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    Dir(PathBuf),
    Http(String),
}

impl Registry {
    /// An http(s) URL, or a directory (relative ones against `base`).
    pub fn parse(spec: &str, base: &Path) -> Registry {
        if is_http(spec) {
            Registry::Http(spec.trim_end_matches('/').to_owned())
        } else {
            Registry::Dir(base.join(spec))
        }
    }

    /// How the registry is named in statuses and records.
    pub fn describe(&self) -> String {
        match self {
            Registry::Dir(p) => p.display().to_string(),
            Registry::Http(u) => u.clone(),
        }
    }
}

/// Whether `s` is an http(s) URL.
pub fn is_http(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `<name>/index.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub versions: Vec<IndexEntry>,
}

/// One version in an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub version: String,
    /// The archive, relative to the index or an absolute http(s) URL.
    pub archive: String,
    /// Lowercase hex SHA-256 of the archive.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where to get bytes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Url(String),
}

impl Location {
    /// The path or URL.
    pub fn describe(&self) -> String {
        match self {
            Location::File(p) => p.display().to_string(),
            Location::Url(u) => u.clone(),
        }
    }
}

/// A name and requirement resolved against a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub version: Version,
    pub archive: Location,
    pub sha256: String,
    pub description: Option<String>,
}

/// A version requirement as written in a Skill's `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// The highest version (the highest release when there is one).
    Latest,
    Exact(Version),
    Range(VersionReq),
}

impl Requirement {
    /// Parses `latest`, `1.2.3` (exactly that version), or a range; comparators may be
    /// separated by spaces (`>=1.0 <2`) as well as commas.
    pub fn parse(s: &str) -> Result<Requirement, SkillError> {
        let s = s.trim();
        if s.is_empty() || s == "latest" || s == "*" {
            return Ok(Requirement::Latest);
        }
        if let Ok(v) = Version::parse(s.trim_start_matches('=')) {
            return Ok(Requirement::Exact(v));
        }
        if let Ok(r) = VersionReq::parse(s) {
            return Ok(Requirement::Range(r));
        }
        // `>= 1.0 <2` -> `>=1.0, <2`
        let mut parts: Vec<String> = Vec::new();
        let mut pending_op = String::new();
        for token in s.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
            if token.chars().all(|c| "<>=~^".contains(c)) {
                pending_op.push_str(token);
            } else {
                parts.push(format!("{}{token}", std::mem::take(&mut pending_op)));
            }
        }
        VersionReq::parse(&parts.join(", "))
            .map(Requirement::Range)
            .map_err(|_| SkillError::InvalidRequirement(s.to_owned()))
    }

    /// Whether `v` satisfies the requirement.
    pub fn matches(&self, v: &Version) -> bool {
        match self {
            Requirement::Latest => true,
            Requirement::Exact(e) => e == v,
            Requirement::Range(r) => r.matches(v),
        }
    }
}

/// The highest entry satisfying `req` (for `latest`, the highest release if there is one).
pub fn pick<'a>(index: &'a Index, req: &Requirement) -> Option<(Version, &'a IndexEntry)> {
    let candidates = index
        .versions
        .iter()
        .filter_map(|e| Version::parse(&e.version).ok().map(|v| (v, e)))
        .filter(|(v, _)| req.matches(v));
    let (releases, pre): (Vec<_>, Vec<_>) = candidates.partition(|(v, _)| v.pre.is_empty());
    let best = |list: Vec<(Version, &'a IndexEntry)>| list.into_iter().max_by(|a, b| a.0.cmp(&b.0));
    match req {
        Requirement::Latest => best(releases).or_else(|| best(pre)),
        _ => best(releases.into_iter().chain(pre).collect()),
    }
}

/// A client for registries and archive downloads under the egress policy of `config`:
/// bounded time, no cookies, rustls.
pub fn http_client(config: &crate::manifest::kinds::ConfigSpec) -> crate::egress::Client {
    let policy = crate::egress::policy_of(config);
    let adjust = |b: reqwest::ClientBuilder| {
        b.timeout(HTTP_TIMEOUT)
            .user_agent(concat!("claw/", env!("CARGO_PKG_VERSION")))
    };
    // Never fails: the reqwest client is built on first use, and a build error is then the
    // fetch's error.
    crate::egress::Client::new(policy.clone(), adjust)
        .or_else(|_| crate::egress::Client::new(policy, |b| b))
        .unwrap_or_else(|_| unreachable!("egress::Client::new builds lazily"))
}

/// Reads at most `limit` bytes from a file or URL; `Ok(None)` when it does not exist.
pub async fn fetch(
    location: &Location,
    http: &crate::egress::Client,
    limit: u64,
) -> Result<Option<Vec<u8>>, SkillError> {
    let what = location.describe();
    let fail = |message: String| SkillError::Fetch {
        what: what.clone(),
        message,
    };
    match location {
        Location::File(path) => {
            let path = path.clone();
            let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
                use std::io::Read;
                let file = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                let mut out = Vec::new();
                file.take(limit + 1).read_to_end(&mut out)?;
                Ok(Some(out))
            })
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
            match read {
                Some(bytes) if bytes.len() as u64 > limit => Err(too_large(&what, limit)),
                other => Ok(other),
            }
        }
        Location::Url(url) => {
            let mut response = http
                .get(url)
                .map_err(|e| fail(e.to_string()))?
                .send()
                .await
                .map_err(|e| fail(crate::egress::describe(e)))?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(fail(format!("HTTP {}", response.status())));
            }
            let mut out = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| fail(crate::egress::describe(e)))?
            {
                out.extend_from_slice(&chunk);
                if out.len() as u64 > limit {
                    return Err(too_large(&what, limit));
                }
            }
            Ok(Some(out))
        }
    }
}

fn too_large(what: &str, limit: u64) -> SkillError {
    SkillError::TooLarge(format!("{what} is larger than {limit} bytes"))
}

/// Reads `<registry>/<name>/index.json`.
pub async fn index(
    registry: &Registry,
    name: &str,
    http: &crate::egress::Client,
) -> Result<Index, SkillError> {
    super::validate_name(name)?;
    let location = match registry {
        Registry::Dir(dir) => Location::File(dir.join(name).join(INDEX_FILE)),
        Registry::Http(base) => Location::Url(format!("{base}/{name}/{INDEX_FILE}")),
    };
    let bytes = fetch(&location, http, MAX_INDEX_BYTES)
        .await?
        .ok_or_else(|| {
            SkillError::NotFound(format!(
                "skill {name} is not in the registry {}",
                registry.describe()
            ))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| SkillError::Fetch {
        what: location.describe(),
        message: format!("not a skill index: {e}"),
    })
}

/// Resolves `name` at `requirement` in `registry`.
pub async fn resolve(
    registry: &Registry,
    name: &str,
    requirement: &str,
    http: &crate::egress::Client,
) -> Result<Resolved, SkillError> {
    let req = Requirement::parse(requirement)?;
    let index = index(registry, name, http).await?;
    let (version, entry) = pick(&index, &req).ok_or_else(|| {
        let mut known: Vec<&str> = index.versions.iter().map(|e| e.version.as_str()).collect();
        known.sort_unstable();
        SkillError::NotFound(format!(
            "no version of {name} in {} matches \"{requirement}\" (available: {})",
            registry.describe(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let archive = if is_http(&entry.archive) {
        Location::Url(entry.archive.clone())
    } else {
        let rel = Path::new(&entry.archive);
        let plain = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(SkillError::Fetch {
                what: format!("{name}/{INDEX_FILE}"),
                message: format!(
                    "archive \"{}\" must be a relative path inside the skill's directory or an http(s) URL",
                    entry.archive
                ),
            });
        }
        match registry {
            Registry::Dir(dir) => Location::File(dir.join(name).join(rel)),
            Registry::Http(base) => Location::Url(format!("{base}/{name}/{}", entry.archive)),
        }
    };
    let sha256 = entry.sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SkillError::Fetch {
            what: format!("{name}/{INDEX_FILE}"),
            message: format!("version {version} has no valid sha256"),
        });
    }
    Ok(Resolved {
        version,
        archive,
        sha256,
        description: entry.description.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(versions: &[&str]) -> Index {
        Index {
            name: "s".into(),
            versions: versions
                .iter()
                .map(|v| IndexEntry {
                    version: (*v).into(),
                    archive: format!("s-{v}.tar.gz"),
                    sha256: "0".repeat(64),
                    description: None,
                })
                .collect(),
        }
    }

    fn picked(versions: &[&str], req: &str) -> Option<String> {
        pick(&index(versions), &Requirement::parse(req).unwrap()).map(|(v, _)| v.to_string())
    }

    #[test]
    fn latest_is_the_highest_release() {
        let all = ["1.0.0", "1.10.0", "1.2.0", "2.0.0-beta.1"];
        assert_eq!(picked(&all, "latest").as_deref(), Some("1.10.0"));
        assert_eq!(
            picked(&["2.0.0-rc.1"], "latest").as_deref(),
            Some("2.0.0-rc.1")
        );
        assert_eq!(picked(&[], "latest"), None);
    }

    #[test]
    fn exact_versions_and_ranges() {
        let all = ["1.0.0", "1.2.0", "1.3.1", "2.0.0"];
        assert_eq!(picked(&all, "1.2.0").as_deref(), Some("1.2.0"));
        assert_eq!(picked(&all, "1.2.5"), None);
        assert_eq!(picked(&all, "^1.2").as_deref(), Some("1.3.1"));
        assert_eq!(picked(&all, "~1.2").as_deref(), Some("1.2.0"));
        assert_eq!(picked(&all, ">=1.0 <2").as_deref(), Some("1.3.1"));
        assert_eq!(picked(&all, ">= 1.0, < 1.3").as_deref(), Some("1.2.0"));
        assert!(Requirement::parse("banana").is_err());
    }

    #[test]
    fn registry_specs() {
        assert_eq!(
            Registry::parse("https://r.example/skills/", Path::new("/m")),
            Registry::Http("https://r.example/skills".into())
        );
        assert_eq!(
            Registry::parse("reg", Path::new("/m")),
            Registry::Dir("/m/reg".into())
        );
    }
}
