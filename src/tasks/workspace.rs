//! What a run changed in its working directory: a metadata snapshot before, a walk after, and
//! the difference — in time proportional to the tree's file *count* (one `lstat` each, walked in
//! parallel) plus the bytes of the few files that must be hashed, never the whole tree's bytes.
//!
//! The walk skips `.git` and whatever `.gitignore` files exclude (also outside a git
//! repository), and does not follow symlinks: a symlink is recorded by its target, so
//! retargeting it is a modification, and a linked directory is never walked (nothing outside the
//! root is read).
//!
//! How a change is detected, the way git's index does it:
//! - A regular file is *modified* when its metadata changed: size, mtime (ns), ctime (ns),
//!   inode, device or mode. Any write updates mtime and ctime; ctime cannot be set by a process,
//!   so even a same-size rewrite whose mtime is set back (`touch -d`, `utimensat`) shows. A
//!   rewrite through a temporary file and a rename changes the inode. The earlier bytes are not
//!   kept (reading them is what this design avoids), so a file rewritten with identical bytes
//!   is reported modified.
//! - **Racily clean files** (git's "racy git" rule): timestamps come from a clock that ticks in
//!   steps (the kernel's coarse clock, 1–10 ms; whole seconds on some filesystems, 2 s on FAT),
//!   so a file written in the same tick as the before-snapshot and rewritten in that tick with
//!   the same size would have identical metadata. Every file whose mtime or ctime is within
//!   [`RACY_WINDOW`] of the before-snapshot's start is therefore hashed (SHA-256) at the
//!   before-snapshot, and, when its metadata is unchanged afterwards, hashed again and compared.
//!   Outside that window, an unchanged stat proves an unchanged file. Usually only files
//!   written seconds before the task starts are racy; right after a fresh checkout all are, and
//!   the before-snapshot then reads them all once (correct, just slower).
//! - Renames are a deletion plus a creation. Directories themselves are not reported.
//!
//! There is no cap on the number of files: every file of the tree is compared, so the answer
//! is exact at any size. Memory is about 150 bytes per file (35,000 files ≈ 5 MB).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Files whose mtime or ctime is this close to (or after) the before-snapshot's start are
/// "racily clean" and compared by content. 2 s covers the coarsest common timestamp
/// granularity (FAT's 2 s; 1 s on ext3 and HFS+; the coarse clock's few ms elsewhere).
const RACY_WINDOW: Duration = Duration::from_secs(2);

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

/// The metadata a file is compared by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    len: u64,
    /// Nanoseconds since the epoch.
    mtime: i128,
    ctime: i128,
    ino: u64,
    dev: u64,
    /// Permission bits and file type.
    mode: u32,
}

impl Stat {
    fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            len: meta.len(),
            mtime: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
            mode: meta.mode(),
        }
    }
}

/// What is known about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileState {
    /// A symlink, compared by its target only.
    Link(PathBuf),
    /// A regular file (or anything else that is not a directory).
    File {
        stat: Stat,
        /// For a racily clean file of a before-snapshot: its content's SHA-256 (`None` when it
        /// could not be read, which makes it compare as modified unless still unreadable).
        racy: Option<Option<[u8; 32]>>,
    },
}

/// The files of a working directory at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    root: PathBuf,
    /// Path -> (index for the after-walk's "seen" flags, state).
    files: HashMap<String, (usize, FileState)>,
}

impl Snapshot {
    /// Walks `workdir`, hashing the racily clean files (see the module doc). Blocking; callers
    /// use `spawn_blocking`.
    pub fn take(workdir: &Path) -> std::io::Result<Snapshot> {
        let started = SystemTime::now();
        let racy_since = started
            .checked_sub(RACY_WINDOW)
            .unwrap_or(UNIX_EPOCH)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        walk(workdir, Some(racy_since))
    }

    /// The files created, modified or deleted in the working directory since `self` was taken,
    /// sorted by path. Walks the tree again (comparing as it goes: no second snapshot is built)
    /// and hashes only files that were racily clean and whose metadata did not change.
    /// Blocking; callers use `spawn_blocking`.
    pub fn changes_now(&self) -> std::io::Result<Vec<FileChange>> {
        let seen: Vec<AtomicBool> = (0..self.files.len())
            .map(|_| AtomicBool::new(false))
            .collect();
        let out = run_walk(
            &self.root,
            Mode::Diff {
                before: self,
                seen: &seen,
            },
        )?;
        let mut changes = out.changes;
        for (path, (index, _)) in &self.files {
            if !seen[*index].load(Ordering::Relaxed) {
                changes.push(FileChange {
                    path: path.clone(),
                    change: Change::Deleted,
                });
            }
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// The files created, modified or deleted between `self` and `after` (a snapshot of the
    /// same root), sorted by path. May hash racily clean files (see the module doc).
    pub fn changes(&self, after: &Snapshot) -> Vec<FileChange> {
        let mut changes = Vec::new();
        for (path, (_, before)) in &self.files {
            let change = match after.files.get(path) {
                None => Change::Deleted,
                Some((_, now)) if self.modified(path, before, now) => Change::Modified,
                Some(_) => continue,
            };
            changes.push(FileChange {
                path: path.clone(),
                change,
            });
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

    fn modified(&self, path: &str, before: &FileState, now: &FileState) -> bool {
        match (before, now) {
            (FileState::Link(a), FileState::Link(b)) => a != b,
            (FileState::File { stat: a, racy }, FileState::File { stat: b, .. }) => {
                if a != b {
                    return true;
                }
                match racy {
                    // Same metadata, and the metadata was already settled at the
                    // before-snapshot: the content cannot have changed.
                    None => false,
                    Some(digest) => hash_file(&self.root.join(path)) != *digest,
                }
            }
            _ => true,
        }
    }

    /// Number of files and symlinks recorded.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when the working directory held no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// What a walk does with each entry.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Record every entry; with `racy_since` (ns since the epoch), hash regular files whose
    /// mtime or ctime is at or after it.
    Record { racy_since: Option<i128> },
    /// Compare every entry with `before`, flagging the entries found in `seen`.
    Diff {
        before: &'a Snapshot,
        seen: &'a [AtomicBool],
    },
}

/// What the walker threads found, merged.
#[derive(Default)]
struct Found {
    entries: Vec<(String, FileState)>,
    changes: Vec<FileChange>,
}

/// Walks `root` recording every entry.
fn walk(root: &Path, racy_since: Option<i128>) -> std::io::Result<Snapshot> {
    let found = run_walk(root, Mode::Record { racy_since })?;
    let files = found
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, (path, state))| (path, (i, state)))
        .collect();
    Ok(Snapshot {
        root: root.to_path_buf(),
        files,
    })
}

/// Walks `root` in parallel, skipping `.git`, ignored paths and directories themselves.
fn run_walk(root: &Path, mode: Mode<'_>) -> std::io::Result<Found> {
    // Fail for a missing or unreadable working directory rather than report it empty.
    std::fs::read_dir(root)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        // The server user's global excludes would make results depend on the host.
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .threads(threads)
        .build_parallel();
    let all = Mutex::new(Found::default());
    walker.visit(&mut Collector {
        root,
        mode,
        all: &all,
    });
    Ok(all.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Hands each walker thread a [`Visitor`] that collects locally and merges once at the end.
struct Collector<'a> {
    root: &'a Path,
    mode: Mode<'a>,
    all: &'a Mutex<Found>,
}

impl<'s, 'a: 's> ignore::ParallelVisitorBuilder<'s> for Collector<'a> {
    fn build(&mut self) -> Box<dyn ignore::ParallelVisitor + 's> {
        Box::new(Visitor {
            root: self.root,
            mode: self.mode,
            all: self.all,
            found: Found::default(),
        })
    }
}

struct Visitor<'a> {
    root: &'a Path,
    mode: Mode<'a>,
    all: &'a Mutex<Found>,
    found: Found,
}

impl ignore::ParallelVisitor for Visitor<'_> {
    fn visit(&mut self, entry: Result<ignore::DirEntry, ignore::Error>) -> ignore::WalkState {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                tracing::debug!(error = %e, "skipping an unreadable entry");
                return ignore::WalkState::Continue;
            }
        };
        match entry.file_type() {
            Some(t) if t.is_dir() => return ignore::WalkState::Continue,
            None => return ignore::WalkState::Continue,
            Some(_) => {}
        }
        let Ok(relative) = entry.path().strip_prefix(self.root) else {
            return ignore::WalkState::Continue;
        };
        match self.mode {
            Mode::Record { racy_since } => {
                if let Some(state) = file_state(&entry, racy_since) {
                    self.found.entries.push((slash_path(relative), state));
                }
            }
            Mode::Diff { before, seen } => {
                let Some(now) = file_state(&entry, None) else {
                    return ignore::WalkState::Continue;
                };
                // Unix paths are `/`-separated already: look up without allocating.
                let known = match relative.to_str() {
                    Some(path) => before.files.get(path),
                    None => before.files.get(&slash_path(relative)),
                };
                let change = match known {
                    None => Change::Created,
                    Some((index, was)) => {
                        seen[*index].store(true, Ordering::Relaxed);
                        let path = relative.to_str().map(Cow::Borrowed);
                        let path = path.unwrap_or_else(|| Cow::Owned(slash_path(relative)));
                        if !before.modified(&path, was, &now) {
                            return ignore::WalkState::Continue;
                        }
                        Change::Modified
                    }
                };
                self.found.changes.push(FileChange {
                    path: slash_path(relative),
                    change,
                });
            }
        }
        ignore::WalkState::Continue
    }
}

impl Drop for Visitor<'_> {
    fn drop(&mut self) {
        let found = std::mem::take(&mut self.found);
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.entries.extend(found.entries);
        all.changes.extend(found.changes);
    }
}

/// `None` when the entry vanished during the walk.
fn file_state(entry: &ignore::DirEntry, racy_since: Option<i128>) -> Option<FileState> {
    // Not following links, this is an `lstat` of the entry.
    let meta = entry.metadata().ok()?;
    if meta.file_type().is_symlink() {
        return std::fs::read_link(entry.path()).ok().map(FileState::Link);
    }
    let stat = Stat::of(&meta);
    let racy = racy_since
        .filter(|since| stat.mtime.max(stat.ctime) >= *since)
        .map(|_| hash_file(entry.path()));
    Some(FileState::File { stat, racy })
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
    match relative.to_str() {
        // Unix paths are already `/`-separated.
        Some(s) => s.to_owned(),
        None => relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    }
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

    /// Sets a file's mtime to `secs` ago (its ctime becomes now: only the kernel sets it).
    fn age(path: &Path, secs: u64) {
        let at = SystemTime::now() - Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    #[test]
    fn reports_created_modified_and_deleted_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::write(root.join("keep.txt"), "same").unwrap();
        std::fs::write(root.join("src/edit.rs"), "fn a() {}").unwrap();
        std::fs::write(root.join("src/deep/gone.txt"), "bye").unwrap();
        let before = Snapshot::take(root).unwrap();

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
        assert_eq!(before.changes_now().unwrap(), before.changes(&after));
        assert!(after.changes(&after).is_empty());
    }

    #[test]
    fn racily_clean_files_are_hashed_and_compared_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("fresh.txt"), "one").unwrap();
        std::fs::write(root.join("settled.txt"), "one").unwrap();
        age(&root.join("settled.txt"), 3600);
        // Both are racy (setting the mtime made `settled`'s ctime now): both hashed.
        let mut before = Snapshot::take(root).unwrap();
        let Some((_, FileState::File { racy, .. })) = before.files.get("fresh.txt") else {
            panic!("fresh.txt recorded as a file")
        };
        assert_eq!(
            *racy,
            Some(hash_file(&root.join("fresh.txt"))),
            "a just-written file is hashed"
        );
        // A rewrite in the same clock tick with the same size leaves every stat field equal;
        // simulate it by rewriting and restoring the recorded metadata in the snapshot.
        std::fs::write(root.join("fresh.txt"), "two").unwrap();
        let after = walk(root, None).unwrap();
        for name in ["fresh.txt", "settled.txt"] {
            let Some((_, FileState::File { stat, .. })) = after.files.get(name) else {
                panic!()
            };
            let stat = *stat;
            if let Some((_, FileState::File { stat: s, .. })) = before.files.get_mut(name) {
                *s = stat;
            }
        }
        assert_eq!(
            before.changes(&after),
            vec![change("fresh.txt", Change::Modified)],
            "equal metadata: only the racy file is compared by content"
        );
    }

    #[test]
    fn same_size_rewrite_with_mtime_set_back_is_modified() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.txt"), "aaaa").unwrap();
        age(&root.join("a.txt"), 3600);
        let mtime = std::fs::metadata(root.join("a.txt"))
            .unwrap()
            .modified()
            .unwrap();
        let before = Snapshot::take(root).unwrap();
        std::fs::write(root.join("a.txt"), "bbbb").unwrap();
        std::fs::File::options()
            .write(true)
            .open(root.join("a.txt"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(
            std::fs::metadata(root.join("a.txt"))
                .unwrap()
                .modified()
                .unwrap(),
            mtime
        );
        assert_eq!(
            before.changes_now().unwrap(),
            vec![change("a.txt", Change::Modified)]
        );
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

        assert_eq!(
            before.changes_now().unwrap(),
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
        let mut names: Vec<_> = before.files.keys().collect();
        names.sort();
        assert_eq!(names, ["link", "out"], "the linked directory is not walked");

        std::fs::write(outside.path().join("more.txt"), "x").unwrap();
        std::fs::remove_file(root.join("link")).unwrap();
        std::os::unix::fs::symlink("b", root.join("link")).unwrap();
        assert_eq!(
            before.changes_now().unwrap(),
            vec![change("link", Change::Modified)]
        );
    }

    /// More than 35,000 files (the size at which the earlier, capped snapshot went wrong):
    /// every kind of change is reported, and nothing else.
    #[test]
    fn exact_changes_in_a_tree_of_more_than_35000_files() {
        const DIRS: usize = 120;
        const PER_DIR: usize = 300;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in 0..DIRS {
            let sub = root.join(format!("d{d:03}"));
            std::fs::create_dir(&sub).unwrap();
            for f in 0..PER_DIR {
                std::fs::write(sub.join(format!("f{f:03}.txt")), format!("{d}/{f}")).unwrap();
            }
        }
        std::fs::write(root.join(".gitignore"), "*.tmp\nbuild/\n").unwrap();
        std::os::unix::fs::symlink("d000/f000.txt", root.join("link")).unwrap();
        std::os::unix::fs::symlink("d001/f000.txt", root.join("relink")).unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        // Files written long ago (their mtime) except the one rewritten below in its second.
        let same_second = root.join("d050/f050.txt");
        let before = Snapshot::take(root).unwrap();
        assert_eq!(before.len(), DIRS * PER_DIR + 4);

        // Created (deep and in a new directory), modified (different size; same size with
        // the mtime set back to the same second), deleted, renamed, ignored, symlinks.
        std::fs::write(root.join("d119/new.txt"), "new").unwrap();
        std::fs::create_dir_all(root.join("fresh/dir")).unwrap();
        std::fs::write(root.join("fresh/dir/x.rs"), "x").unwrap();
        std::fs::write(root.join("d007/f007.txt"), "longer content").unwrap();
        let mtime = std::fs::metadata(&same_second).unwrap().modified().unwrap();
        std::fs::write(&same_second, "XX/YY").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&same_second)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::remove_file(root.join("d099/f299.txt")).unwrap();
        std::fs::rename(root.join("d010/f010.txt"), root.join("d010/renamed.txt")).unwrap();
        std::fs::write(root.join("d020/scratch.tmp"), "ignored").unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::write(root.join("build/out.bin"), "ignored").unwrap();
        std::fs::remove_file(root.join("relink")).unwrap();
        std::os::unix::fs::symlink("d002/f000.txt", root.join("relink")).unwrap();
        std::os::unix::fs::symlink("d003", root.join("newlink")).unwrap();

        assert_eq!(
            before.changes_now().unwrap(),
            vec![
                change("d007/f007.txt", Change::Modified),
                change("d010/f010.txt", Change::Deleted),
                change("d010/renamed.txt", Change::Created),
                change("d050/f050.txt", Change::Modified),
                change("d099/f299.txt", Change::Deleted),
                change("d119/new.txt", Change::Created),
                change("fresh/dir/x.rs", Change::Created),
                change("newlink", Change::Created),
                change("relink", Change::Modified),
            ]
        );
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
