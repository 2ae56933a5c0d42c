//! Skills: directories holding a `SKILL.md` (YAML front matter with at least `name` and
//! `description`, then instructions for the agent), installed under `<data>/skills/<name>`.
//!
//! The path a skill takes: [`registry`] resolves a name and version requirement to an archive
//! and its digest; [`source`] fetches any source kind (registry, local path, git, archive)
//! into a staging dir, unpacking archives with the checks of [`archive`]; [`install`] swaps
//! the staged directory into place atomically, records what it installed and detects drift;
//! [`pack`] is the other side of a registry (`claw skill pack`). The reconciler drives it
//! through `reconcile/handlers/skill.rs`; the API through `api/skills.rs`.
//!
//! Installed skills are content for the agent: the server never executes anything in them.

pub mod archive;
pub mod install;
pub mod pack;
pub mod registry;
pub mod source;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The file that makes a directory a skill.
pub const SKILL_FILE: &str = "SKILL.md";

/// Where installed skills live: `<data>/skills`, one directory per skill.
pub fn skills_dir(data: &Path) -> PathBuf {
    data.join("skills")
}

/// Why a skill could not be resolved, fetched or installed. [`SkillError::reason`] is the
/// machine-readable reason a not-Ready status shows.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    #[error("invalid skill name \"{0}\": use lowercase letters, digits, '-', '_' or '.', starting with a letter or digit, at most 63 characters")]
    InvalidName(String),
    #[error("no registry: set spec.skills.registry in the Config, or give the Skill a source")]
    NoRegistry,
    #[error("{0}")]
    NotFound(String),
    #[error("invalid version requirement \"{0}\": use latest, an exact version (1.2.3) or a range (^1.2, >=1.0 <2)")]
    InvalidRequirement(String),
    #[error(
        "digest mismatch for {what}: expected sha256 {expected}, got {actual}; refusing to install"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("unsafe archive entry {entry}: {why}; refusing to install")]
    Unsafe { entry: String, why: &'static str },
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot fetch {what}: {message}")]
    Fetch { what: String, message: String },
    #[error("git {what} failed: {message}")]
    Git { what: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SkillError {
    /// The CamelCase reason shown in a not-Ready status.
    pub fn reason(&self) -> &'static str {
        match self {
            SkillError::InvalidName(_) => "InvalidName",
            SkillError::NoRegistry => "NoRegistry",
            SkillError::NotFound(_) => "NotFound",
            SkillError::InvalidRequirement(_) => "InvalidVersion",
            SkillError::DigestMismatch { .. } => "DigestMismatch",
            SkillError::Unsafe { .. } => "UnsafeArchive",
            SkillError::TooLarge(_) => "LimitExceeded",
            SkillError::Invalid(_) => "InvalidSkill",
            SkillError::Fetch { .. } => "FetchFailed",
            SkillError::Git { .. } => "GitFailed",
            SkillError::Io { .. } => "InstallFailed",
        }
    }

    /// An I/O error about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> SkillError {
        SkillError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Checks a skill name: the same rule as resource names, so it is always one safe path
/// component.
pub fn validate_name(name: &str) -> Result<(), SkillError> {
    let mut chars = name.chars();
    let ok = name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SkillError::InvalidName(name.to_owned()))
    }
}

/// The YAML front matter of a `SKILL.md`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FrontMatter {
    pub name: String,
    pub description: String,
    /// `version`, when the skill declares one (numbers are taken as written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Parses the `---` block at the start of a `SKILL.md`.
pub fn parse_front_matter(text: &str) -> Result<FrontMatter, SkillError> {
    let invalid = |m: &str| SkillError::Invalid(format!("{SKILL_FILE}: {m}"));
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return Err(invalid(
            "must start with a `---` line opening the YAML front matter (name, description)",
        ));
    }
    let mut yaml = String::new();
    let mut closed = false;
    for line in lines {
        if line.trim_end() == "---" {
            closed = true;
            break;
        }
        yaml.push_str(line);
    }
    if !closed {
        return Err(invalid("the front matter is not closed by a `---` line"));
    }
    let value: Value = yaml_serde::from_str(&yaml)
        .map_err(|e| invalid(&format!("front matter is not valid YAML: {e}")))?;
    let field = |key: &str| match value.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let name = field("name").ok_or_else(|| invalid("front matter has no `name`"))?;
    let description =
        field("description").ok_or_else(|| invalid("front matter has no `description`"))?;
    Ok(FrontMatter {
        name,
        description,
        version: field("version"),
    })
}

/// Reads and parses `dir/SKILL.md`.
pub fn read_front_matter(dir: &Path) -> Result<FrontMatter, SkillError> {
    let path = dir.join(SKILL_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_front_matter(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SkillError::Invalid(format!(
            "no {SKILL_FILE} at the top of the skill; a skill is a directory with a {SKILL_FILE}"
        ))),
        Err(e) => Err(SkillError::io(&path, e)),
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_needs_name_and_description() {
        let fm = parse_front_matter(
            "---\nname: git-helper\ndescription: Helps with git\nversion: 1.2\n---\n# Use\n",
        )
        .unwrap();
        assert_eq!(fm.name, "git-helper");
        assert_eq!(fm.description, "Helps with git");
        assert_eq!(fm.version.as_deref(), Some("1.2"));
        assert!(parse_front_matter("---\nname: x\n---\n").is_err());
        assert!(parse_front_matter("# no front matter\n").is_err());
        assert!(parse_front_matter("---\nname: x\ndescription: y\n").is_err());
    }

    #[test]
    fn names_are_single_safe_path_components() {
        for ok in ["git-helper", "a", "x.y_z-1"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "..", ".hidden", "A", "a/b", "a\\b", &"a".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
