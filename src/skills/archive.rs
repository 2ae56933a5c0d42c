//! Safe unpacking of `.tar.gz` skill archives, and the same checks for copying a directory
//! (path and git sources).
//!
//! Refused: absolute paths, `..` components, symlinks whose target leaves the skill, hard
//! links, devices, FIFOs and anything else that is not a file, a directory or an internal
//! symlink. Limits bound the total size, each file's size and the number of entries, so a
//! hostile archive cannot fill the disk. Everything is written below `dest` only, never
//! through a symlink, with permissions 0644 (0755 when any execute bit was set).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use super::SkillError;

/// Most bytes a skill may unpack to (64 MiB).
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes one file of a skill may hold (16 MiB).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Most entries (files, directories, links) a skill may have.
pub const MAX_ENTRIES: usize = 10_000;

/// Running totals checked against the limits.
#[derive(Debug, Default)]
struct Budget {
    bytes: u64,
    entries: usize,
}

impl Budget {
    fn entry(&mut self) -> Result<(), SkillError> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            return Err(SkillError::TooLarge(format!(
                "the skill has more than {MAX_ENTRIES} entries"
            )));
        }
        Ok(())
    }

    fn file(&mut self, name: &str, size: u64) -> Result<(), SkillError> {
        if size > MAX_FILE_BYTES {
            return Err(SkillError::TooLarge(format!(
                "{name} is larger than the {} MiB per-file limit",
                MAX_FILE_BYTES >> 20
            )));
        }
        self.bytes += size;
        if self.bytes > MAX_TOTAL_BYTES {
            return Err(SkillError::TooLarge(format!(
                "the skill is larger than the {} MiB limit",
                MAX_TOTAL_BYTES >> 20
            )));
        }
        Ok(())
    }
}

/// A relative path made only of normal components, or why not.
fn safe_relative(path: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("the path contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("the path is absolute"),
        }
    }
    Ok(out)
}

/// Whether a symlink at `link` (relative to the root) pointing to `target` stays inside.
fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.has_root() {
        return false;
    }
    let mut depth: usize = link.components().count().saturating_sub(1);
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Creates the parent dirs of `rel` below `dest`, refusing to go through a symlink.
fn prepare_parent(dest: &Path, rel: &Path, shown: &str) -> Result<PathBuf, SkillError> {
    let mut at = dest.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            at.push(c);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(SkillError::Unsafe {
                        entry: shown.to_owned(),
                        why: "a parent directory is a link or a file",
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&at).map_err(|e| SkillError::io(&at, e))?
                }
                Err(e) => return Err(SkillError::io(&at, e)),
            }
        }
    }
    let path = dest.join(rel);
    if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(SkillError::Unsafe {
            entry: shown.to_owned(),
            why: "it would write through a link",
        });
    }
    Ok(path)
}

fn write_file(
    dest: &Path,
    rel: &Path,
    shown: &str,
    mut content: impl Read,
    executable: bool,
    budget: &mut Budget,
) -> Result<(), SkillError> {
    let path = prepare_parent(dest, rel, shown)?;
    let mut file = fs::File::create(&path).map_err(|e| SkillError::io(&path, e))?;
    // Count what is really read: a header may lie about the size.
    let mut limited = (&mut content).take(MAX_FILE_BYTES + 1);
    let n = io::copy(&mut limited, &mut file).map_err(|e| SkillError::io(&path, e))?;
    budget.file(shown, n)?;
    file.flush().map_err(|e| SkillError::io(&path, e))?;
    set_mode(&path, executable)
}

#[cfg(unix)]
fn set_mode(path: &Path, executable: bool) -> Result<(), SkillError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| SkillError::io(path, e))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: bool) -> Result<(), SkillError> {
    Ok(())
}

fn make_link(dest: &Path, rel: &Path, target: &Path, shown: &str) -> Result<(), SkillError> {
    if !link_stays_inside(rel, target) {
        return Err(SkillError::Unsafe {
            entry: shown.to_owned(),
            why: "it is a link pointing outside the skill",
        });
    }
    let path = prepare_parent(dest, rel, shown)?;
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(target, &path).map_err(|e| SkillError::io(&path, e))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Err(SkillError::Unsafe {
            entry: shown.to_owned(),
            why: "links are not supported on this platform",
        })
    }
}

/// Unpacks a gzip-compressed tar stream into `dest` (an empty directory).
pub fn unpack(gz: impl Read, dest: &Path) -> Result<(), SkillError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let bad = |e: io::Error| SkillError::Invalid(format!("not a valid .tar.gz archive: {e}"));
    let mut budget = Budget::default();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let shown = raw.display().to_string();
        let rel = safe_relative(&raw).map_err(|why| SkillError::Unsafe {
            entry: shown.clone(),
            why,
        })?;
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            continue;
        }
        budget.entry()?;
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                continue;
            }
            return Err(SkillError::Unsafe {
                entry: shown,
                why: "the entry has no name",
            });
        }
        match kind {
            T::Regular | T::Continuous => {
                let executable = entry.header().mode().unwrap_or(0) & 0o111 != 0;
                write_file(dest, &rel, &shown, &mut entry, executable, &mut budget)?;
            }
            T::Directory => {
                let path = prepare_parent(dest, &rel, &shown)?;
                match fs::create_dir(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
                    Err(e) => return Err(SkillError::io(&path, e)),
                }
            }
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .ok_or_else(|| SkillError::Invalid(format!("link {shown} has no target")))?;
                make_link(dest, &rel, &target, &shown)?;
            }
            T::Link => {
                return Err(SkillError::Unsafe {
                    entry: shown,
                    why: "hard links are not accepted",
                })
            }
            T::Char | T::Block => {
                return Err(SkillError::Unsafe {
                    entry: shown,
                    why: "it is a device",
                })
            }
            _ => {
                return Err(SkillError::Unsafe {
                    entry: shown,
                    why: "it is not a file, a directory or a link",
                })
            }
        }
    }
    Ok(())
}

/// Copies the directory tree `src` into `dest` under the same rules as [`unpack`], skipping
/// `.git`.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), SkillError> {
    let mut budget = Budget::default();
    copy_dir(src, dest, Path::new(""), &mut budget)
}

fn copy_dir(root: &Path, dest: &Path, rel: &Path, budget: &mut Budget) -> Result<(), SkillError> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| SkillError::io(&dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| SkillError::io(&dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name() == ".git" {
            continue;
        }
        let rel = rel.join(entry.file_name());
        let shown = rel.display().to_string();
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| SkillError::io(&path, e))?;
        budget.entry()?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let to = prepare_parent(dest, &rel, &shown)?;
            fs::create_dir(&to).map_err(|e| SkillError::io(&to, e))?;
            copy_dir(root, dest, &rel, budget)?;
        } else if ft.is_file() {
            let file = fs::File::open(&path).map_err(|e| SkillError::io(&path, e))?;
            #[cfg(unix)]
            let executable =
                std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
            #[cfg(not(unix))]
            let executable = false;
            write_file(dest, &rel, &shown, file, executable, budget)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(|e| SkillError::io(&path, e))?;
            make_link(dest, &rel, &target, &shown)?;
        } else {
            return Err(SkillError::Unsafe {
                entry: shown,
                why: "it is not a file, a directory or a link",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A raw tar.gz with one entry, written without the `tar` crate's path checks.
    pub fn raw_archive(path: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        {
            let bytes = header.as_old_mut();
            bytes.name[..path.len()].copy_from_slice(path.as_bytes());
            bytes.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        b.append(&header, data).unwrap();
        b.into_inner().unwrap().finish().unwrap()
    }

    fn refused(archive: Vec<u8>) -> SkillError {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let e = unpack(&archive[..], &dest).unwrap_err();
        // Nothing escaped next to the destination.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "something was written outside dest");
        e
    }

    #[test]
    fn parent_components_are_refused() {
        let e = refused(raw_archive(
            "../evil.txt",
            tar::EntryType::Regular,
            "",
            b"x",
        ));
        assert_eq!(e.reason(), "UnsafeArchive", "{e}");
    }

    #[test]
    fn absolute_paths_are_refused() {
        let e = refused(raw_archive(
            "/tmp/evil.txt",
            tar::EntryType::Regular,
            "",
            b"x",
        ));
        assert_eq!(e.reason(), "UnsafeArchive", "{e}");
    }

    #[test]
    fn links_out_of_the_skill_and_devices_are_refused() {
        for (kind, link) in [
            (tar::EntryType::Symlink, "../../etc/passwd"),
            (tar::EntryType::Symlink, "/etc/passwd"),
            (tar::EntryType::Link, "SKILL.md"),
            (tar::EntryType::Char, ""),
            (tar::EntryType::Fifo, ""),
        ] {
            let e = refused(raw_archive("x", kind, link, b""));
            assert_eq!(e.reason(), "UnsafeArchive", "{kind:?} {e}");
        }
    }

    #[test]
    fn internal_links_and_files_unpack() {
        let dir = tempfile::tempdir().unwrap();
        unpack(
            &raw_archive("docs/link", tar::EntryType::Symlink, "../SKILL.md", b"")[..],
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            fs::read_link(dir.path().join("docs/link")).unwrap(),
            Path::new("../SKILL.md")
        );
    }

    #[test]
    fn oversized_files_are_refused() {
        let big = vec![0u8; (MAX_FILE_BYTES + 1) as usize];
        let e = refused(raw_archive("big", tar::EntryType::Regular, "", &big));
        assert_eq!(e.reason(), "LimitExceeded", "{e}");
    }

    #[test]
    fn link_containment_is_lexical() {
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a/b"), Path::new("/c")));
    }
}
