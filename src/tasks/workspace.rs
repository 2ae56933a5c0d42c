//! What a run changed in its working directory: a snapshot before, one after, and the diff.
//!
//! The walk skips `.git` and whatever `.gitignore` files exclude (also outside a git
//! repository), and does not follow symlinks: a symlink is recorded by its target, so
//! retargeting it is a modification. Files are compared by a SHA-256 of their content, so a
//! file rewritten with the same bytes is unchanged; files above [`MAX_HASHED_BYTES`] are
//! compared by length and modification time only.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// Files larger than this are compared by length and mtime rather than content.
const MAX_HASHED_BYTES: u64 = 8 * 1024 * 1024;
/// Files recorded at most; past it a warning is logged and the rest is not compared.
const MAX_FILES: usize = 20_000;

/// How a file changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Modified,
    Deleted,
}

/// One changed file; `path` is relative to the working directory, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
}

/// What is known about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileState {
    len: u64,
    mtime: Option<SystemTime>,
    /// `None` for files too large to hash (or unreadable): compared by len + mtime.
    digest: Option<[u8; 32]>,
}

impl FileState {
    fn differs_from(&self, other: &FileState) -> bool {
        match (self.digest, other.digest) {
            (Some(a), Some(b)) => a != b,
            _ => self.len != other.len || self.mtime != other.mtime,
        }
    }
}

/// The files of a working directory at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    files: BTreeMap<String, FileState>,
}

impl Snapshot {
    /// Walks `workdir`. Blocking; callers use `spawn_blocking`.
    pub fn take(workdir: &Path) -> std::io::Result<Snapshot> {
        // Fail for a missing or unreadable working directory rather than report it empty.
        std::fs::read_dir(workdir)?;
        let walker = ignore::WalkBuilder::new(workdir)
            .hidden(false)
            .git_ignore(true)
            .git_exclude(true)
            // The server user's global excludes would make results depend on the host.
            .git_global(false)
            .require_git(false)
            .follow_links(false)
            .filter_entry(|entry| entry.file_name() != ".git")
            .build();
        let mut files = BTreeMap::new();
        for entry in walker {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::debug!(error = %e, "skipping an unreadable entry");
                    continue;
                }
            };
            let Some(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(workdir) else {
                continue;
            };
            let Some(state) = file_state(entry.path(), file_type.is_symlink()) else {
                continue;
            };
            if files.len() >= MAX_FILES {
                tracing::warn!(
                    workdir = %workdir.display(),
                    limit = MAX_FILES,
                    "working directory has too many files; changes past the limit are not reported"
                );
                break;
            }
            files.insert(slash_path(relative), state);
        }
        Ok(Snapshot { files })
    }

    /// The files created, modified or deleted between `self` and `after`, sorted by path.
    pub fn changes(&self, after: &Snapshot) -> Vec<FileChange> {
        let mut changes = Vec::new();
        for (path, before) in &self.files {
            match after.files.get(path) {
                None => changes.push(FileChange {
                    path: path.clone(),
                    change: Change::Deleted,
                }),
                Some(now) if before.differs_from(now) => changes.push(FileChange {
                    path: path.clone(),
                    change: Change::Modified,
                }),
                Some(_) => {}
            }
        }
        for path in after.files.keys() {
            if !self.files.contains_key(path) {
                changes.push(FileChange {
                    path: path.clone(),
                    change: Change::Created,
                });
            }
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        changes
    }
}

/// `None` when the file vanished or cannot be read at all.
fn file_state(path: &Path, is_symlink: bool) -> Option<FileState> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mtime = meta.modified().ok();
    if is_symlink {
        let target = std::fs::read_link(path).ok()?;
        let digest = Sha256::digest(target.as_os_str().as_encoded_bytes()).into();
        return Some(FileState {
            len: meta.len(),
            mtime,
            digest: Some(digest),
        });
    }
    let digest = if meta.len() <= MAX_HASHED_BYTES {
        hash_file(path)
    } else {
        None
    };
    Some(FileState {
        len: meta.len(),
        mtime,
        digest,
    })
}

fn hash_file(path: &Path) -> Option<[u8; 32]> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    Some(hasher.finalize().into())
}

fn slash_path(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, change: Change) -> FileChange {
        FileChange {
            path: path.to_owned(),
            change,
        }
    }

    #[test]
    fn reports_created_modified_and_deleted_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::write(root.join("keep.txt"), "same").unwrap();
        std::fs::write(root.join("rewrite.txt"), "same bytes").unwrap();
        std::fs::write(root.join("src/edit.rs"), "fn a() {}").unwrap();
        std::fs::write(root.join("src/deep/gone.txt"), "bye").unwrap();
        let before = Snapshot::take(root).unwrap();

        std::fs::write(root.join("rewrite.txt"), "same bytes").unwrap();
        std::fs::write(root.join("src/edit.rs"), "fn b() {}").unwrap();
        std::fs::remove_file(root.join("src/deep/gone.txt")).unwrap();
        std::fs::write(root.join("src/deep/new.txt"), "hi").unwrap();
        std::fs::write(root.join("a-new.txt"), "hi").unwrap();
        let after = Snapshot::take(root).unwrap();

        assert_eq!(
            before.changes(&after),
            vec![
                change("a-new.txt", Change::Created),
                change("src/deep/gone.txt", Change::Deleted),
                change("src/deep/new.txt", Change::Created),
                change("src/edit.rs", Change::Modified),
            ]
        );
        assert!(after.changes(&after).is_empty());
    }

    #[test]
    fn skips_git_and_gitignored_files_outside_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n").unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        let before = Snapshot::take(root).unwrap();

        std::fs::write(root.join(".git/index"), "x").unwrap();
        std::fs::create_dir_all(root.join("target/debug")).unwrap();
        std::fs::write(root.join("target/debug/out"), "x").unwrap();
        std::fs::write(root.join("build.log"), "x").unwrap();
        std::fs::write(root.join(".env"), "hidden files count").unwrap();
        let after = Snapshot::take(root).unwrap();

        assert_eq!(
            before.changes(&after),
            vec![change(".env", Change::Created)]
        );
    }

    #[test]
    fn symlinks_are_recorded_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(outside.path().join("big.txt"), "outside").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
        let before = Snapshot::take(root).unwrap();
        assert_eq!(
            before.files.keys().collect::<Vec<_>>(),
            ["link", "out"],
            "the linked directory is not walked"
        );

        std::fs::write(outside.path().join("more.txt"), "x").unwrap();
        std::fs::remove_file(root.join("link")).unwrap();
        std::os::unix::fs::symlink("b", root.join("link")).unwrap();
        let after = Snapshot::take(root).unwrap();
        assert_eq!(
            before.changes(&after),
            vec![change("link", Change::Modified)]
        );
    }

    #[test]
    fn large_files_compare_by_length_and_mtime() {
        let a = FileState {
            len: MAX_HASHED_BYTES + 1,
            mtime: Some(SystemTime::UNIX_EPOCH),
            digest: None,
        };
        let touched = FileState {
            mtime: Some(SystemTime::now()),
            ..a.clone()
        };
        assert!(!a.differs_from(&a.clone()));
        assert!(a.differs_from(&touched));
    }

    #[test]
    fn a_missing_workdir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Snapshot::take(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn changes_serialize_in_lowercase() {
        let json = serde_json::to_value(change("a/b.txt", Change::Created)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"path": "a/b.txt", "change": "created"})
        );
    }
}
