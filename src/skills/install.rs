//! Installed skills under `<data>/skills/<name>`, each with a record (`.claw-skill.json`) of
//! the resolved version, the source and a SHA-256 per file.
//!
//! Installing never leaves a half-installed skill: content is staged in a `.tmp-*` dir inside
//! the skills dir, the old version is renamed aside, the new one renamed into place, the old
//! one removed. Names starting with `.` are never skills (names are validated), so staging
//! and set-aside dirs cannot collide with one. [`Installer::verify`] compares the files with
//! the record, which is how a resync finds hand edits.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{read_front_matter, sha256_hex, skills_dir, validate_name, FrontMatter, SkillError};

/// The record kept inside each installed skill.
pub const RECORD_FILE: &str = ".claw-skill.json";

/// What was installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// The resolved version.
    pub version: String,
    /// The source (see [`super::source::Plan::describe`]).
    pub source: String,
    /// Digest of the archive installed from (registry and archive sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_sha256: Option<String>,
    /// The commit installed from (git sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// `sha256:` over every file's path and digest: one value naming the installed content.
    #[serde(default)]
    pub digest: String,
    /// Path (with `/`) -> hex SHA-256 of the content (of the target, for links).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub installed_at: String,
}

/// An installed skill as found on disk.
#[derive(Debug, Clone)]
pub struct Installed {
    pub path: PathBuf,
    pub record: Record,
    /// `None` when `SKILL.md` was removed or broken since.
    pub front_matter: Option<FrontMatter>,
}

/// A staging directory inside the skills dir, removed when dropped.
#[derive(Debug)]
pub struct Staging {
    pub path: PathBuf,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Installs, verifies and removes skills under one skills dir.
#[derive(Debug, Clone)]
pub struct Installer {
    root: PathBuf,
}

impl Installer {
    /// The installer of `<data>/skills`.
    pub fn new(data: &Path) -> Installer {
        Installer {
            root: skills_dir(data),
        }
    }

    /// The skills dir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, name: &str) -> Result<PathBuf, SkillError> {
        validate_name(name)?;
        Ok(self.root.join(name))
    }

    /// A fresh staging dir (on the same file system, so installing is a rename).
    pub fn staging(&self) -> Result<Staging, SkillError> {
        fs::create_dir_all(&self.root).map_err(|e| SkillError::io(&self.root, e))?;
        let path = self
            .root
            .join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir(&path).map_err(|e| SkillError::io(&path, e))?;
        Ok(Staging { path })
    }

    /// Removes staging and set-aside dirs a crashed process left behind.
    pub fn clean_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") || name.starts_with(".old-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Moves the staged skill at `staged` (inside a [`Staging`] dir) into place as `name`,
    /// replacing any installed version; returns the record written.
    pub fn install(
        &self,
        name: &str,
        staged: &Path,
        mut record: Record,
    ) -> Result<Record, SkillError> {
        let target = self.dir_of(name)?;
        let _ = fs::remove_file(staged.join(RECORD_FILE));
        record.files = digest_tree(staged)?;
        record.digest = overall_digest(&record.files);
        record.name = name.to_owned();
        record.installed_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let text = serde_json::to_vec_pretty(&record).unwrap_or_default();
        let record_path = staged.join(RECORD_FILE);
        fs::write(&record_path, text).map_err(|e| SkillError::io(&record_path, e))?;

        let aside = match fs::symlink_metadata(&target) {
            Ok(_) => {
                let aside = self
                    .root
                    .join(format!(".old-{name}-{}", uuid::Uuid::new_v4().simple()));
                fs::rename(&target, &aside).map_err(|e| SkillError::io(&target, e))?;
                Some(aside)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(SkillError::io(&target, e)),
        };
        if let Err(e) = fs::rename(staged, &target) {
            if let Some(aside) = &aside {
                let _ = fs::rename(aside, &target);
            }
            return Err(SkillError::io(&target, e));
        }
        if let Some(aside) = aside {
            let _ = remove_any(&aside);
        }
        if let Ok(dir) = fs::File::open(&self.root) {
            let _ = dir.sync_all();
        }
        Ok(record)
    }

    /// The installed skill `name`, if any (with a readable record).
    pub fn installed(&self, name: &str) -> Option<Installed> {
        let path = self.dir_of(name).ok()?;
        let record: Record =
            serde_json::from_slice(&fs::read(path.join(RECORD_FILE)).ok()?).ok()?;
        let front_matter = read_front_matter(&path).ok();
        Some(Installed {
            path,
            record,
            front_matter,
        })
    }

    /// `Ok(None)` when `name` is installed exactly as recorded; otherwise what differs.
    pub fn verify(&self, name: &str) -> Result<Option<String>, SkillError> {
        let path = self.dir_of(name)?;
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(Some("the skill's directory was replaced".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Some("the skill's directory is missing".into()))
            }
            Err(e) => return Err(SkillError::io(&path, e)),
        }
        let Some(installed) = self.installed(name) else {
            return Ok(Some(format!(
                "its record {RECORD_FILE} is missing or unreadable"
            )));
        };
        let files = digest_tree(&path)?;
        let expected = &installed.record.files;
        let mut drift = Vec::new();
        for (f, digest) in expected {
            match files.get(f) {
                None => drift.push(format!("{f} removed")),
                Some(d) if d != digest => drift.push(format!("{f} modified")),
                Some(_) => {}
            }
        }
        drift.extend(
            files
                .keys()
                .filter(|f| !expected.contains_key(*f))
                .map(|f| format!("{f} added")),
        );
        Ok((!drift.is_empty()).then(|| {
            let more = drift.len().saturating_sub(5);
            drift.truncate(5);
            let mut s = drift.join(", ");
            if more > 0 {
                s.push_str(&format!(" and {more} more"));
            }
            s
        }))
    }

    /// Removes `name`; returns its record when something was installed.
    /// Whether anything is installed under `name` (one `lstat`).
    pub fn present(&self, name: &str) -> bool {
        self.dir_of(name)
            .is_ok_and(|path| fs::symlink_metadata(path).is_ok())
    }

    pub fn uninstall(&self, name: &str) -> Result<Option<Record>, SkillError> {
        let path = self.dir_of(name)?;
        let record = self.installed(name).map(|i| i.record);
        match fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(record),
            Err(e) => return Err(SkillError::io(&path, e)),
        }
        // Rename first, so a crash mid-removal leaves a leftover, not a half skill.
        let aside = self
            .root
            .join(format!(".old-{name}-{}", uuid::Uuid::new_v4().simple()));
        fs::rename(&path, &aside).map_err(|e| SkillError::io(&path, e))?;
        remove_any(&aside).map_err(|e| SkillError::io(&aside, e))?;
        Ok(record.or_else(|| {
            Some(Record {
                name: name.to_owned(),
                version: "unknown".into(),
                source: String::new(),
                archive_sha256: None,
                commit: None,
                digest: String::new(),
                files: BTreeMap::new(),
                installed_at: String::new(),
            })
        }))
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Path -> digest of every file and link below `dir`, except the record.
pub fn digest_tree(dir: &Path) -> Result<BTreeMap<String, String>, SkillError> {
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out)?;
    out.remove(RECORD_FILE);
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) -> Result<(), SkillError> {
    for entry in fs::read_dir(dir).map_err(|e| SkillError::io(dir, e))? {
        let entry = entry.map_err(|e| SkillError::io(dir, e))?;
        let path = entry.path();
        let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let ft = entry.file_type().map_err(|e| SkillError::io(&path, e))?;
        if ft.is_dir() {
            walk(&path, &format!("{rel}/"), out)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(|e| SkillError::io(&path, e))?;
            let text = format!("link:{}", target.display());
            out.insert(rel, sha256_hex(text.as_bytes()));
        } else {
            let bytes = fs::read(&path).map_err(|e| SkillError::io(&path, e))?;
            out.insert(rel, sha256_hex(&bytes));
        }
    }
    Ok(())
}

/// `sha256:` over `path\0digest\n` lines in path order.
pub fn overall_digest(files: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (path, digest) in files {
        text.push_str(path);
        text.push('\0');
        text.push_str(digest);
        text.push('\n');
    }
    format!("sha256:{}", sha256_hex(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: &str) -> Record {
        Record {
            name: String::new(),
            version: version.into(),
            source: "test".into(),
            archive_sha256: None,
            commit: None,
            digest: String::new(),
            files: BTreeMap::new(),
            installed_at: String::new(),
        }
    }

    fn stage(installer: &Installer, body: &str) -> Staging {
        let staging = installer.staging().unwrap();
        fs::write(
            staging.path.join("SKILL.md"),
            format!("---\nname: demo\ndescription: d\n---\n{body}"),
        )
        .unwrap();
        staging
    }

    #[test]
    fn install_replace_verify_and_uninstall() {
        let data = tempfile::tempdir().unwrap();
        let installer = Installer::new(data.path());
        let s = stage(&installer, "one");
        let r1 = installer.install("demo", &s.path, record("1.0.0")).unwrap();
        assert!(r1.digest.starts_with("sha256:"));
        assert_eq!(installer.verify("demo").unwrap(), None);

        let s = stage(&installer, "two");
        installer.install("demo", &s.path, record("2.0.0")).unwrap();
        let got = installer.installed("demo").unwrap();
        assert_eq!(got.record.version, "2.0.0");
        assert_eq!(got.front_matter.unwrap().name, "demo");
        // Only the skill is left: no staging or set-aside dirs.
        drop(s);
        let names: Vec<_> = fs::read_dir(installer.root())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("demo")]);

        fs::write(got.path.join("SKILL.md"), "tampered").unwrap();
        fs::write(got.path.join("extra"), "x").unwrap();
        let drift = installer.verify("demo").unwrap().unwrap();
        assert!(
            drift.contains("SKILL.md modified") && drift.contains("extra added"),
            "{drift}"
        );

        assert_eq!(
            installer.uninstall("demo").unwrap().unwrap().version,
            "2.0.0"
        );
        assert!(installer.installed("demo").is_none());
        assert_eq!(installer.uninstall("demo").unwrap(), None);
    }
}
