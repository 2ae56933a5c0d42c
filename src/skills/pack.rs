//! `claw skill pack DIR --registry REG`: adds a skill directory to a directory registry as
//! `REG/<name>/<name>-<version>.tar.gz` and lists it in `REG/<name>/index.json`.
//!
//! Archives are reproducible (sorted entries, zero times and owners, modes 0644/0755), so
//! packing the same content twice gives the same digest; re-packing a version with different
//! content is refused, because installs pin the digest.

use std::fs;
use std::path::{Path, PathBuf};

use super::install::RECORD_FILE;
use super::registry::{Index, IndexEntry, INDEX_FILE};
use super::{read_front_matter, sha256_hex, validate_name, SkillError};

/// What `pack` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub name: String,
    pub version: String,
    pub archive: PathBuf,
    pub sha256: String,
    /// False when the same version with the same content was already there.
    pub added: bool,
}

/// Packs `dir` into `registry`; the version is `version`, else the front matter's `version`.
pub fn pack(dir: &Path, registry: &Path, version: Option<&str>) -> Result<Packed, SkillError> {
    let fm = read_front_matter(dir)?;
    validate_name(&fm.name)?;
    let version = version
        .map(str::to_owned)
        .or(fm.version.clone())
        .ok_or_else(|| {
            SkillError::Invalid(
                "no version: pass --version or add `version:` to the SKILL.md front matter".into(),
            )
        })?;
    let parsed = semver::Version::parse(&version).map_err(|e| {
        SkillError::Invalid(format!(
            "version \"{version}\" is not a semver version: {e}"
        ))
    })?;
    let version = parsed.to_string();
    let bytes = archive_dir(dir)?;
    let sha256 = sha256_hex(&bytes);

    let skill_dir = registry.join(&fm.name);
    fs::create_dir_all(&skill_dir).map_err(|e| SkillError::io(&skill_dir, e))?;
    let file_name = format!("{}-{version}.tar.gz", fm.name);
    let archive = skill_dir.join(&file_name);
    let index_path = skill_dir.join(INDEX_FILE);
    let mut index: Index = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            SkillError::Invalid(format!(
                "{} is not a skill index: {e}",
                index_path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index {
            name: fm.name.clone(),
            versions: Vec::new(),
        },
        Err(e) => return Err(SkillError::io(&index_path, e)),
    };
    let listed = index
        .versions
        .iter()
        .find(|e| semver::Version::parse(&e.version).is_ok_and(|v| v == parsed));
    let on_disk = fs::read(&archive).ok().map(|b| sha256_hex(&b));
    for existing in listed.map(|e| e.sha256.clone()).into_iter().chain(on_disk) {
        if existing != sha256 {
            return Err(SkillError::Invalid(format!(
                "{} {version} is already in the registry with different content (sha256 {existing}); bump the version",
                fm.name
            )));
        }
    }
    let added = listed.is_none();
    write_atomic(&archive, &bytes)?;
    if added {
        index.versions.push(IndexEntry {
            version: version.clone(),
            archive: file_name,
            sha256: sha256.clone(),
            description: Some(fm.description.clone()),
        });
        index.versions.sort_by(|a, b| {
            let key = |e: &IndexEntry| semver::Version::parse(&e.version).ok();
            key(a).cmp(&key(b))
        });
        let text = serde_json::to_vec_pretty(&index).unwrap_or_default();
        write_atomic(&index_path, &text)?;
    }
    Ok(Packed {
        name: fm.name,
        version,
        archive,
        sha256,
        added,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SkillError> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    fs::write(&tmp, bytes).map_err(|e| SkillError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        SkillError::io(path, e)
    })
}

/// A reproducible `.tar.gz` of `dir` (files at the top level of the archive), without `.git`
/// and install records. Links are refused: a registry skill is plain files.
pub fn archive_dir(dir: &Path) -> Result<Vec<u8>, SkillError> {
    let mut files = Vec::new();
    collect(dir, Path::new(""), &mut files)?;
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (rel, is_dir, executable) in files {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let io = |e: std::io::Error| SkillError::io(&dir.join(&rel), e);
        if is_dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, &rel, std::io::empty())
                .map_err(io)?;
        } else {
            let bytes = fs::read(dir.join(&rel)).map_err(io)?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if executable { 0o755 } else { 0o644 });
            header.set_size(bytes.len() as u64);
            builder
                .append_data(&mut header, &rel, &bytes[..])
                .map_err(io)?;
        }
    }
    let gz = builder.into_inner().map_err(|e| SkillError::io(dir, e))?;
    gz.finish().map_err(|e| SkillError::io(dir, e))
}

fn collect(
    root: &Path,
    rel: &Path,
    out: &mut Vec<(PathBuf, bool, bool)>,
) -> Result<(), SkillError> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| SkillError::io(&dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| SkillError::io(&dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name == ".git" || (rel.as_os_str().is_empty() && name == RECORD_FILE) {
            continue;
        }
        let rel = rel.join(&name);
        let meta = fs::symlink_metadata(e.path()).map_err(|err| SkillError::io(&e.path(), err))?;
        if meta.is_dir() {
            out.push((rel.clone(), true, false));
            collect(root, &rel, out)?;
        } else if meta.is_file() {
            #[cfg(unix)]
            let executable =
                std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
            #[cfg(not(unix))]
            let executable = false;
            out.push((rel, false, executable));
        } else {
            return Err(SkillError::Invalid(format!(
                "{} is not a regular file or directory; links are not packed",
                root.join(&rel).display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(dir: &Path, version: &str, body: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(
            dir.join("SKILL.md"),
            format!("---\nname: demo\ndescription: A demo\nversion: {version}\n---\n{body}\n"),
        )
        .unwrap();
    }

    #[test]
    fn pack_adds_versions_reproducibly_and_refuses_changed_content() {
        let t = tempfile::tempdir().unwrap();
        let (src, reg) = (t.path().join("src"), t.path().join("reg"));
        skill(&src, "1.0.0", "one");
        let a = pack(&src, &reg, None).unwrap();
        assert!(a.added);
        let again = pack(&src, &reg, None).unwrap();
        assert_eq!(
            (again.sha256.as_str(), again.added),
            (a.sha256.as_str(), false)
        );

        skill(&src, "1.0.0", "changed");
        let e = pack(&src, &reg, None).unwrap_err();
        assert!(e.to_string().contains("different content"), "{e}");
        pack(&src, &reg, Some("1.1.0")).unwrap();

        let index: Index =
            serde_json::from_slice(&fs::read(reg.join("demo/index.json")).unwrap()).unwrap();
        let versions: Vec<_> = index.versions.iter().map(|e| e.version.as_str()).collect();
        assert_eq!(versions, ["1.0.0", "1.1.0"]);
        assert!(reg.join("demo/demo-1.1.0.tar.gz").is_file());
    }
}
