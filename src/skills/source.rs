//! Fetching a Skill's source into a staging directory: a registry (the Config's
//! `skills.registry` unless the Skill names one), a local `path` (relative to the manifest
//! file), `git: {url, ref}` (the real `git` binary, no prompts), or `archive: {url, sha256}`.
//!
//! [`resolve`] is the cheap half (it reads a registry index but downloads nothing), so the API
//! can refuse a Skill that cannot be resolved before writing its manifest; [`fetch`] does the
//! rest and checks the result is a skill whose front matter names it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::registry::{self, Location, Registry, Requirement, Resolved};
use super::{archive, read_front_matter, sha256_hex, FrontMatter, SkillError, SKILL_FILE};
use crate::manifest::kinds::{SkillSource, SkillSpec};

/// How long a `git` command may run.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// What relative paths and the default registry resolve against.
#[derive(Clone)]
pub struct Context {
    /// The manifests root (a relative Config `skills.registry` is relative to it).
    pub manifests: PathBuf,
    /// The directory of the Skill's manifest file (relative `path`, `registry`, `archive.url`
    /// and git paths are relative to it).
    pub manifest_dir: PathBuf,
    /// The Config's `skills.registry`.
    pub default_registry: Option<String>,
    pub http: crate::egress::Client,
}

impl Context {
    /// The context of a Skill declared in `file` (relative to `manifests`).
    pub fn new(
        manifests: &Path,
        file: &Path,
        default_registry: Option<String>,
        http: crate::egress::Client,
    ) -> Context {
        Context {
            manifests: manifests.to_path_buf(),
            manifest_dir: manifests.join(file.parent().unwrap_or(Path::new(""))),
            default_registry,
            http,
        }
    }
}

/// A source pinned down as far as possible without downloading it.
#[derive(Debug, Clone)]
pub enum Plan {
    Registry {
        registry: Registry,
        resolved: Resolved,
    },
    Path(PathBuf),
    Git {
        url: String,
        reference: Option<String>,
    },
    Archive {
        location: Location,
        sha256: String,
    },
}

impl Plan {
    /// The source as recorded with an installed skill; an install is reused only when this
    /// and the archive digest are unchanged.
    pub fn describe(&self) -> String {
        match self {
            Plan::Registry { registry, resolved } => {
                format!(
                    "registry {} ({})",
                    registry.describe(),
                    resolved.archive.describe()
                )
            }
            Plan::Path(p) => format!("path {}", p.display()),
            Plan::Git { url, reference } => match reference {
                Some(r) => format!("git {url}#{r}"),
                None => format!("git {url}"),
            },
            Plan::Archive { location, .. } => format!("archive {}", location.describe()),
        }
    }

    /// The digest the downloaded archive must have (registry and archive sources).
    pub fn archive_sha256(&self) -> Option<&str> {
        match self {
            Plan::Registry { resolved, .. } => Some(&resolved.sha256),
            Plan::Archive { sha256, .. } => Some(sha256),
            _ => None,
        }
    }
}

/// A fetched skill, ready to be installed.
#[derive(Debug)]
pub struct Fetched {
    /// The directory holding `SKILL.md` (inside the staging dir).
    pub root: PathBuf,
    pub version: String,
    pub front_matter: FrontMatter,
    /// For git sources, the commit checked out.
    pub commit: Option<String>,
}

fn local(ctx: &Context, s: &str) -> PathBuf {
    ctx.manifest_dir.join(s)
}

/// Pins down the source of `spec` (reading a registry index, checking a path exists).
pub async fn resolve(name: &str, spec: &SkillSpec, ctx: &Context) -> Result<Plan, SkillError> {
    super::validate_name(name)?;
    Requirement::parse(&spec.version)?;
    match &spec.source {
        None | Some(SkillSource::Registry(_)) => {
            let registry = match &spec.source {
                Some(SkillSource::Registry(r)) => Registry::parse(r, &ctx.manifest_dir),
                _ => Registry::parse(
                    ctx.default_registry
                        .as_deref()
                        .ok_or(SkillError::NoRegistry)?,
                    &ctx.manifests,
                ),
            };
            let resolved = registry::resolve(&registry, name, &spec.version, &ctx.http).await?;
            Ok(Plan::Registry { registry, resolved })
        }
        Some(SkillSource::Path(p)) => {
            let path = local(ctx, p);
            if !path.join(SKILL_FILE).is_file() {
                return Err(SkillError::NotFound(format!(
                    "source path {} has no {SKILL_FILE}",
                    path.display()
                )));
            }
            Ok(Plan::Path(path))
        }
        Some(SkillSource::Git(g)) => {
            if g.url.starts_with('-') || g.reference.as_deref().is_some_and(|r| r.starts_with('-'))
            {
                return Err(SkillError::Invalid(
                    "git url and ref must not start with '-'".into(),
                ));
            }
            let url = if g.url.contains(':') {
                g.url.clone()
            } else {
                local(ctx, &g.url).display().to_string()
            };
            Ok(Plan::Git {
                url,
                reference: g.reference.clone(),
            })
        }
        Some(SkillSource::Archive(a)) => {
            let location = if registry::is_http(&a.url) {
                Location::Url(a.url.clone())
            } else {
                Location::File(local(ctx, &a.url))
            };
            Ok(Plan::Archive {
                location,
                sha256: a.sha256.to_ascii_lowercase(),
            })
        }
    }
}

/// Fetches the planned source into `staging` (an empty directory) and checks it is the skill
/// `name` at a version satisfying `requirement`.
pub async fn fetch(
    name: &str,
    requirement: &str,
    plan: &Plan,
    staging: &Path,
    http: &crate::egress::Client,
) -> Result<Fetched, SkillError> {
    let unpacked = staging.join("content");
    std::fs::create_dir(&unpacked).map_err(|e| SkillError::io(&unpacked, e))?;
    let mut commit = None;
    match plan {
        Plan::Registry { .. } | Plan::Archive { .. } => {
            let (location, expected) = match plan {
                Plan::Registry { resolved, .. } => (&resolved.archive, &resolved.sha256),
                Plan::Archive { location, sha256 } => (location, sha256),
                _ => unreachable!("matched above"),
            };
            let bytes = registry::fetch(location, http, registry::MAX_DOWNLOAD_BYTES)
                .await?
                .ok_or_else(|| SkillError::Fetch {
                    what: location.describe(),
                    message: "not found".into(),
                })?;
            let actual = sha256_hex(&bytes);
            if &actual != expected {
                return Err(SkillError::DigestMismatch {
                    what: location.describe(),
                    expected: expected.clone(),
                    actual,
                });
            }
            let dest = unpacked.clone();
            blocking(move || archive::unpack(&bytes[..], &dest)).await?;
        }
        Plan::Path(path) => {
            let (src, dest) = (path.clone(), unpacked.clone());
            blocking(move || archive::copy_tree(&src, &dest)).await?;
        }
        Plan::Git { url, reference } => {
            let checkout = staging.join("git");
            // git resolves on its own: check the host against the egress policy first.
            http.check_resolved(url)
                .await
                .map_err(|e| SkillError::Git {
                    what: format!("clone of {url}"),
                    message: e.to_string(),
                })?;
            commit = Some(git_checkout(url, reference.as_deref(), &checkout).await?);
            let dest = unpacked.clone();
            blocking(move || archive::copy_tree(&checkout, &dest)).await?;
        }
    }
    let root = skill_root(&unpacked)?;
    let front_matter = read_front_matter(&root)?;
    if front_matter.name != name {
        return Err(SkillError::Invalid(format!(
            "{SKILL_FILE} names the skill \"{}\" but the Skill resource is \"{name}\"; rename one of them",
            front_matter.name
        )));
    }
    let version = match plan {
        Plan::Registry { resolved, .. } => resolved.version.to_string(),
        _ => {
            let req = Requirement::parse(requirement)?;
            match &front_matter.version {
                Some(v) => {
                    if req != Requirement::Latest {
                        let ok = semver::Version::parse(v).is_ok_and(|v| req.matches(&v));
                        if !ok {
                            return Err(SkillError::NotFound(format!(
                                "the source holds version {v} of {name}, which does not match \"{requirement}\""
                            )));
                        }
                    }
                    v.clone()
                }
                None => match (&commit, plan) {
                    (Some(c), _) => format!("git-{}", &c[..c.len().min(12)]),
                    (None, Plan::Archive { sha256, .. }) => format!("sha256-{}", &sha256[..12]),
                    _ => "unversioned".into(),
                },
            }
        }
    };
    Ok(Fetched {
        root,
        version,
        front_matter,
        commit,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SkillError> + Send + 'static,
) -> Result<T, SkillError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SkillError::Invalid(format!("the install worker failed: {e}")))?
}

/// The directory holding `SKILL.md`: the top, or its only subdirectory (archives made with
/// `tar czf x.tar.gz dir/`).
fn skill_root(unpacked: &Path) -> Result<PathBuf, SkillError> {
    if unpacked.join(SKILL_FILE).is_file() {
        return Ok(unpacked.to_path_buf());
    }
    let entries: Vec<_> = std::fs::read_dir(unpacked)
        .map_err(|e| SkillError::io(unpacked, e))?
        .filter_map(Result::ok)
        .collect();
    if let [only] = &entries[..] {
        let dir = only.path();
        let is_dir = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
        if is_dir && dir.join(SKILL_FILE).is_file() {
            return Ok(dir);
        }
    }
    Err(SkillError::Invalid(format!(
        "no {SKILL_FILE} at the top of the skill; a skill is a directory with a {SKILL_FILE}"
    )))
}

fn looks_like_commit(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn git(args: &[&str], cwd: Option<&Path>, what: &str) -> Result<String, SkillError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        // The host was checked against the egress policy; a redirect could lead elsewhere.
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.followRedirects")
        .env("GIT_CONFIG_VALUE_0", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let fail = |message: String| SkillError::Git {
        what: what.to_owned(),
        message,
    };
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| fail(format!("timed out after {GIT_TIMEOUT:?}")))?
        .map_err(|e| fail(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(fail(format!("{} ({})", last.trim(), out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Clones `url` at `reference` into `dest`; returns the commit checked out.
async fn git_checkout(
    url: &str,
    reference: Option<&str>,
    dest: &Path,
) -> Result<String, SkillError> {
    let dest_s = dest.display().to_string();
    let what = format!("clone of {url}");
    match reference {
        Some(r) if looks_like_commit(r) => {
            git(
                &["clone", "--quiet", "--no-checkout", "--", url, &dest_s],
                None,
                &what,
            )
            .await?;
            git(
                &[
                    "-c",
                    "advice.detachedHead=false",
                    "checkout",
                    "--quiet",
                    "--detach",
                    r,
                ],
                Some(dest),
                &format!("checkout of {r} from {url}"),
            )
            .await?;
        }
        Some(r) => {
            git(
                &[
                    "clone", "--quiet", "--depth", "1", "--branch", r, "--", url, &dest_s,
                ],
                None,
                &what,
            )
            .await?;
        }
        None => {
            git(
                &["clone", "--quiet", "--depth", "1", "--", url, &dest_s],
                None,
                &what,
            )
            .await?;
        }
    }
    git(
        &["rev-parse", "HEAD"],
        Some(dest),
        &format!("rev-parse in {url}"),
    )
    .await
}
