//! What a run changed in its working directory: a metadata snapshot before (one walk, in time
//! proportional to the tree's file *count*: one `statx` each, in parallel), a watch on its
//! directories while the task runs, and afterwards a look at only what the watch saw change —
//! plus the bytes of the few files that must be hashed, never the whole tree's bytes.
//!
//! **The watch** (inotify, one watch per directory, each set before the directory is read, so
//! nothing changed after the read goes unseen): an event names the entry created, deleted,
//! renamed, written or whose metadata changed; afterwards those entries alone are `lstat`ed
//! and compared with the snapshot, and directories created during the task are walked whole.
//! Whenever the events cannot tell the whole story the tree is walked again instead, comparing
//! every file, so the answer is the same either way: the event queue overflowed, a watched
//! directory was deleted or moved (its files' fate needs the walk), an ignore file or `.git`
//! was touched (the rules may have changed), a directory could not be watched (the system's
//! `fs.inotify` limits, more than [`MAX_WATCHES`] directories) or no inotify instance was left.
//! Three changes raise no event in the file's directory and are covered otherwise: a write
//! through a hard link elsewhere (files with more than one link are `lstat`ed again every
//! time), a new name given to a file (which changes its link count and ctime: the other names
//! of a file that has several are looked at again) and a write through a shared memory mapping
//! (`CLOSE_WRITE` marks a file opened for writing once it is closed). What stays unseen is a write through a mapping that a process opened before the
//! task started and still holds — a process outside the task, whose change the task did not
//! make — and a change on a network filesystem made by another machine (inotify sees only
//! this kernel's changes; working directories are local).
//!
//! The walk skips `.git` and whatever the ignore files exclude — `.gitignore` and `.ignore` in
//! the tree (also outside a git repository), `.git/info/exclude` of a repository and, when the
//! working directory is inside a git repository, those of its ancestors up to the repository's
//! top (nothing above the working directory otherwise, nor the user's global excludes: the
//! answer must not depend on the host). It does not follow symlinks: a symlink is recorded by
//! its target, so retargeting it is a modification, and a linked directory is never walked
//! (nothing outside the root is read).
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
//! - Renames are a deletion plus a creation. Directories themselves are not reported. A file
//!   that a task's edit of an ignore file hides is not reported deleted (it is still there);
//!   one it reveals is reported created (the snapshot never saw it).
//!
//! There is no cap on the number of files: every file of the tree is compared, so the answer
//! is exact at any size. Memory is about 150 bytes per file (35,000 files ≈ 5 MB) plus the
//! kernel's ~1 kB per watched directory while the task runs.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
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
    /// Hard links (compared too: linking or unlinking changes the ctime anyway).
    nlink: u64,
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
            nlink: meta.nlink(),
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
#[derive(Debug, Default)]
pub struct Snapshot {
    root: PathBuf,
    /// Path -> (index for the after-walk's "seen" flags, state).
    files: HashMap<String, (usize, FileState)>,
    /// Files with more than one hard link: a write through a link outside the tree raises no
    /// event in it, so these are looked at again whatever the watch says.
    linked: Vec<String>,
    /// The watch on the tree's directories, when every one could be watched.
    watch: Option<Watch>,
}

impl Snapshot {
    /// Walks `workdir`, hashing the racily clean files and watching every directory (see the
    /// module doc). Blocking; callers use `spawn_blocking`.
    pub fn take(workdir: &Path) -> std::io::Result<Snapshot> {
        let started = SystemTime::now();
        let racy_since = started
            .checked_sub(RACY_WINDOW)
            .unwrap_or(UNIX_EPOCH)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        walk(workdir, Some(racy_since), true)
    }

    /// The files created, modified or deleted in the working directory since `self` was taken,
    /// sorted by path. Looks only at the paths the watch saw change when it can (see the
    /// module doc), else walks the tree again (comparing as it goes: no second snapshot is
    /// built); hashes only files that were racily clean and whose metadata did not change.
    /// May be called more than once. Blocking; callers use `spawn_blocking`.
    pub fn changes_now(&self) -> std::io::Result<Vec<FileChange>> {
        if let Some(watch) = &self.watch {
            match watch.changes(self) {
                Ok(Some(changes)) => return Ok(changes),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "the workspace watch failed; walking"),
            }
        }
        self.changes_by_walk()
    }

    /// [`Snapshot::changes_now`] by a walk of the whole tree.
    fn changes_by_walk(&self) -> std::io::Result<Vec<FileChange>> {
        let seen: Vec<AtomicBool> = (0..self.files.len())
            .map(|_| AtomicBool::new(false))
            .collect();
        let out = run_walk(
            &self.root,
            root_job(&self.root),
            Mode::Diff {
                before: self,
                seen: &seen,
            },
            None,
        )?;
        let mut changes = out.changes;
        for (path, (index, was)) in &self.files {
            if seen[*index].load(Ordering::Relaxed) {
                continue;
            }
            // Not met by the walk: deleted — or still there but ignored now (the task edited
            // an ignore file), which is no change of the file's own.
            changes.extend(recheck(&self.root, path, was));
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// Whether the walk used the watch (tests).
    #[cfg(test)]
    fn watched(&self) -> bool {
        self.watch.is_some()
    }

    /// The files created, modified or deleted between `self` and `after` (a snapshot of the
    /// same root), sorted by path. May hash racily clean files (see the module doc).
    pub fn changes(&self, after: &Snapshot) -> Vec<FileChange> {
        let mut changes = Vec::new();
        for (path, (_, before)) in &self.files {
            let change = match after.files.get(path) {
                None => Change::Deleted,
                Some((_, now)) if modified(&self.root.join(path), before, now) => Change::Modified,
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

    /// Number of files and symlinks recorded.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when the working directory held no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Directories watched at most per snapshot. Watches come from the user's
/// `fs.inotify.max_user_watches` (8,192 on old kernels, more with more memory), shared with the
/// manifests watcher and every other running task; a larger tree is walked again instead.
const MAX_WATCHES: usize = 16_384;

/// What the after-walk may skip reading is known from these events of the directories: an
/// entry created, deleted, renamed in or out, written (`MODIFY`, and `CLOSE_WRITE` for a
/// write through a shared mapping, which raises no `MODIFY`), or its metadata changed
/// (`ATTRIB`: mode, times, links); and the directory itself deleted or moved.
fn watch_mask() -> inotify::WatchMask {
    use inotify::WatchMask as W;
    W::CREATE
        | W::DELETE
        | W::MOVED_FROM
        | W::MOVED_TO
        | W::MODIFY
        | W::CLOSE_WRITE
        | W::ATTRIB
        | W::DELETE_SELF
        | W::MOVE_SELF
        | W::ONLYDIR
        | W::DONT_FOLLOW
        | W::EXCL_UNLINK
}

/// A watched directory.
#[derive(Debug)]
struct WatchedDir {
    /// Relative to the root, `/`-separated; empty for the root.
    rel: String,
    /// The ignore rules in force for its entries.
    rules: Option<Arc<Rules>>,
}

/// An inotify watch on every directory of a snapshot, set as the walk read them: the
/// after-walk then looks only at the entries named by events (see the module doc).
struct Watch {
    /// Watch descriptor -> directory.
    dirs: HashMap<i32, WatchedDir>,
    state: Mutex<WatchState>,
}

/// What the events read so far say (kept: `changes_now` may be called again).
struct WatchState {
    inotify: inotify::Inotify,
    /// Entries (files or symlinks) to look at again, with the rules of their directory.
    dirty: HashMap<String, Option<Arc<Rules>>>,
    /// Directories created or moved into the tree (unwatched: walked whole).
    new_dirs: HashMap<String, Option<Arc<Rules>>>,
    /// Set when the events cannot say what changed: the tree is walked again.
    lost: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("dirs", &self.dirs.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("patterns", &self.matcher.num_ignores())
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// A new inotify instance and a handle to add watches; `None` when the system refuses one
    /// (`fs.inotify.max_user_instances`: the tree is then walked again).
    fn init() -> Option<(inotify::Watches, inotify::Inotify)> {
        match inotify::Inotify::init() {
            Ok(inotify) => Some((inotify.watches(), inotify)),
            Err(e) => {
                tracing::debug!(error = %e, "cannot watch the working directory; it will be walked again");
                None
            }
        }
    }

    /// The watch of a walk's directories, unless one could not be watched.
    fn new(
        inotify: inotify::Inotify,
        dirs: Vec<(i32, WatchedDir)>,
        unwatched: bool,
    ) -> Option<Watch> {
        if unwatched {
            return None; // dropping `inotify` removes its watches
        }
        let count = dirs.len();
        let dirs: HashMap<i32, WatchedDir> = dirs.into_iter().collect();
        if dirs.len() != count {
            // One directory reached by two paths (a bind mount in the tree): one watch, so
            // its events would name one path only.
            return None;
        }
        Some(Watch {
            dirs,
            state: Mutex::new(WatchState {
                inotify,
                dirty: HashMap::new(),
                new_dirs: HashMap::new(),
                lost: false,
            }),
        })
    }

    /// The changes since `before` from the events; `None` when they cannot tell (an event
    /// queue overflow, a watched directory deleted or moved, an ignore file or `.git` touched):
    /// the caller walks the tree.
    fn changes(&self, before: &Snapshot) -> std::io::Result<Option<Vec<FileChange>>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.read_events(&mut state)?;
        if state.lost {
            return Ok(None);
        }
        let mut changes = Vec::new();
        // Inodes that have more than one name now: a name added during the task (`link`)
        // changes the other names' link count and ctime without an event in their directory.
        let mut shared = std::collections::HashSet::new();
        let linked = before.linked.iter().map(|path| (path, None));
        let dirty = state
            .dirty
            .iter()
            .map(|(path, rules)| (path, rules.as_ref()));
        let mut looked = std::collections::HashSet::new();
        for (path, rules) in dirty.chain(linked) {
            looked.insert(path.as_str());
            let was = before.files.get(path.as_str()).map(|(_, state)| state);
            let full = before.root.join(path);
            let now = match std::fs::symlink_metadata(&full) {
                Ok(meta) if meta.is_dir() => None,
                Ok(meta) => {
                    if rules.is_some_and(|rules| rules.ignored(path, false)) {
                        continue;
                    }
                    if meta.nlink() > 1 && !meta.file_type().is_symlink() {
                        shared.insert((meta.dev(), meta.ino()));
                    }
                    now_state(&full, &meta)
                }
                Err(_) => None,
            };
            let change = match (was, now) {
                (None, None) => continue,
                (Some(_), None) => Change::Deleted,
                (None, Some(_)) => Change::Created,
                (Some(was), Some(now)) if modified(&full, was, &now) => Change::Modified,
                (Some(_), Some(_)) => continue,
            };
            changes.push(FileChange {
                path: path.clone(),
                change,
            });
        }
        if !shared.is_empty() {
            for (path, (_, was)) in &before.files {
                let FileState::File { stat, .. } = was else {
                    continue;
                };
                if looked.contains(path.as_str()) || !shared.contains(&(stat.dev, stat.ino)) {
                    continue;
                }
                changes.extend(recheck(&before.root, path, was));
            }
        }
        // New directories: every file in them is new (a directory in the snapshot that was
        // deleted or moved away made the events unusable, so none of these held files before).
        let jobs: Vec<Job> = state
            .new_dirs
            .iter()
            .filter(|(rel, _)| !has_new_ancestor(rel, &state.new_dirs))
            .filter(|(rel, rules)| {
                before.root.join(rel).is_dir()
                    && !rules
                        .as_deref()
                        .is_some_and(|rules| rules.ignored(rel, true))
            })
            .map(|(rel, rules)| Job {
                rel: rel.clone(),
                rules: rules.clone(),
            })
            .collect();
        if !jobs.is_empty() {
            let found = run_walk(&before.root, jobs, Mode::Record { racy_since: None }, None)?;
            changes.extend(found.entries.into_iter().map(|(path, _)| FileChange {
                path,
                change: Change::Created,
            }));
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        changes.dedup_by(|a, b| a.path == b.path);
        Ok(Some(changes))
    }

    /// Reads the pending events into `state`.
    fn read_events(&self, state: &mut WatchState) -> std::io::Result<()> {
        use inotify::EventMask as E;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let WatchState {
                inotify,
                dirty,
                new_dirs,
                lost,
            } = &mut *state;
            let events = match inotify.read_events(&mut buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            for event in events {
                if event.mask.intersects(
                    E::Q_OVERFLOW | E::IGNORED | E::DELETE_SELF | E::MOVE_SELF | E::UNMOUNT,
                ) {
                    *lost = true;
                    continue;
                }
                let Some(dir) = self.dirs.get(&event.wd.get_watch_descriptor_id()) else {
                    *lost = true;
                    continue;
                };
                // An event of the directory itself (its metadata): directories are not
                // reported.
                let Some(name) = event.name else { continue };
                if name == ".git" || name == ".gitignore" || name == ".ignore" {
                    // The ignore rules may have changed.
                    *lost = true;
                    continue;
                }
                let name = name.to_string_lossy();
                let rel = if dir.rel.is_empty() {
                    name.into_owned()
                } else {
                    format!("{}/{name}", dir.rel)
                };
                if event.mask.contains(E::ISDIR) {
                    if event.mask.intersects(E::DELETE | E::MOVED_FROM) {
                        // Its files' fate would need the walk.
                        *lost = true;
                    } else if event.mask.intersects(E::CREATE | E::MOVED_TO) {
                        new_dirs.insert(rel, dir.rules.clone());
                    }
                    continue;
                }
                dirty.insert(rel, dir.rules.clone());
            }
        }
    }
}

/// Whether a proper ancestor of `rel` is among `dirs`.
fn has_new_ancestor(rel: &str, dirs: &HashMap<String, Option<Arc<Rules>>>) -> bool {
    rel.match_indices('/')
        .any(|(at, _)| dirs.contains_key(&rel[..at]))
}

/// The state of the file at `path` (an `lstat` of it in `meta`); `None` when it vanished.
fn now_state(path: &Path, meta: &std::fs::Metadata) -> Option<FileState> {
    if meta.file_type().is_symlink() {
        return std::fs::read_link(path).ok().map(FileState::Link);
    }
    Some(FileState::File {
        stat: Stat::of(meta),
        racy: None,
    })
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
    /// The directories watched, by watch descriptor.
    dirs: Vec<(i32, WatchedDir)>,
    /// Whether a directory could not be watched (or read).
    unwatched: bool,
}

/// Walks `root` recording every entry; with `watch`, watches every directory read (see
/// [`Watch`]), keeping the watch only if all could be watched.
fn walk(root: &Path, racy_since: Option<i128>, watch: bool) -> std::io::Result<Snapshot> {
    let inotify = if watch { Watch::init() } else { None };
    let mut found = run_walk(
        root,
        root_job(root),
        Mode::Record { racy_since },
        inotify.as_ref().map(|w| &w.0),
    )?;
    let dirs = std::mem::take(&mut found.dirs);
    let watch = inotify.and_then(|(_, inotify)| Watch::new(inotify, dirs, found.unwatched));
    let mut linked = Vec::new();
    let files = found
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, (path, state))| {
            if let FileState::File { stat, .. } = &state {
                if stat.nlink > 1 {
                    linked.push(path.clone());
                }
            }
            (path, (i, state))
        })
        .collect();
    Ok(Snapshot {
        root: root.to_path_buf(),
        files,
        linked,
        watch,
    })
}

/// The job of reading the root.
fn root_job(root: &Path) -> Vec<Job> {
    vec![Job {
        rel: String::new(),
        rules: ancestor_rules(root),
    }]
}

/// Walks the directories of `jobs` (under `root`) and all below in parallel, skipping `.git`,
/// ignored paths and directories themselves; adds each directory read to `watches` first.
///
/// A plain walker rather than the `ignore` crate's: each directory is read once
/// (`getdents64`), file types come from the directory entries, each file is stat'ed relative
/// to its directory's descriptor (`statx(dirfd, name)`: no path resolution from the root),
/// and the ignore rules are built only for directories that hold an ignore file (seen in
/// their entries: no failed `open` per directory).
fn run_walk(
    root: &Path,
    jobs: Vec<Job>,
    mode: Mode<'_>,
    watches: Option<&inotify::Watches>,
) -> std::io::Result<Found> {
    // Fail for a missing or unreadable working directory rather than report it empty.
    std::fs::read_dir(root)?;
    // Helper threads only when there may be more than one directory to read: a task's new
    // working directory is one empty directory, and starting a thread (and asking the cgroup
    // for the CPU count) per walk was a visible part of each task's cost. A directory's link
    // count is 2 plus its subdirectories on the filesystems that keep it (1 on btrfs).
    let lone = matches!(jobs.as_slice(), [job] if job.rel.is_empty())
        && std::fs::symlink_metadata(root).is_ok_and(|m| m.nlink() == 2);
    static PARALLELISM: OnceLock<usize> = OnceLock::new();
    let threads = if lone {
        1
    } else {
        *PARALLELISM.get_or_init(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(8)
        })
    };
    let walker = Walker {
        root,
        mode,
        queue: Mutex::new(Queue { jobs, busy: 0 }),
        wake: Condvar::new(),
        watches,
        unwatched: AtomicBool::new(false),
        watched: std::sync::atomic::AtomicUsize::new(0),
    };
    let all = Mutex::new(Found::default());
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| walker.work(&all));
        }
        walker.work(&all);
    });
    let mut found = all.into_inner().unwrap_or_else(|e| e.into_inner());
    found.unwatched = walker.unwatched.load(Ordering::Relaxed);
    Ok(found)
}

/// One directory to read.
struct Job {
    /// Relative to the root, `/`-separated; empty for the root.
    rel: String,
    /// The ignore rules in force in it.
    rules: Option<Arc<Rules>>,
}

/// The directories waiting to be read, and how many are being read (which may add more).
struct Queue {
    jobs: Vec<Job>,
    busy: usize,
}

struct Walker<'a> {
    root: &'a Path,
    mode: Mode<'a>,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Where to watch each directory before reading it.
    watches: Option<&'a inotify::Watches>,
    /// Set when a directory could not be watched.
    unwatched: AtomicBool,
    /// Directories watched so far (at most [`MAX_WATCHES`]).
    watched: std::sync::atomic::AtomicUsize,
}

impl Walker<'_> {
    /// One thread's loop: reads directories until none is left and none is being read.
    fn work(&self, all: &Mutex<Found>) {
        let mut found = Found::default();
        let mut children = Vec::new();
        let mut watches = self.watches.cloned();
        loop {
            let job = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(job) = queue.jobs.pop() {
                        queue.busy += 1;
                        break Some(job);
                    }
                    if queue.busy == 0 {
                        break None;
                    }
                    queue = self.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some(job) = job else {
                self.wake.notify_all();
                break;
            };
            self.read(job, &mut found, &mut children, watches.as_mut());
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.busy -= 1;
            let more = !children.is_empty();
            queue.jobs.append(&mut children);
            let done = queue.busy == 0 && queue.jobs.is_empty();
            drop(queue);
            if more || done {
                self.wake.notify_all();
            }
        }
        let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
        all.entries.append(&mut found.entries);
        all.changes.append(&mut found.changes);
        all.dirs.append(&mut found.dirs);
    }

    /// Reads one directory: records (or compares) its files and symlinks, queues its
    /// subdirectories in `children`.
    fn read(
        &self,
        job: Job,
        found: &mut Found,
        children: &mut Vec<Job>,
        watches: Option<&mut inotify::Watches>,
    ) {
        let dir = if job.rel.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(&job.rel)
        };
        // Watched before it is read: a change after the read raises an event.
        let watch = watches.and_then(|watches| self.watch(watches, &dir));
        let entries: Vec<std::fs::DirEntry> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.filter_map(Result::ok).collect(),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "skipping an unreadable directory");
                // Its files are not known: the watch cannot say what changed in it.
                self.unwatched.store(true, Ordering::Relaxed);
                return;
            }
        };
        let rules = Rules::of_dir(&dir, &job, &entries);
        if let Some(wd) = watch {
            found.dirs.push((
                wd,
                WatchedDir {
                    rel: job.rel.clone(),
                    rules: rules.clone(),
                },
            ));
        }
        let mut rel = job.rel;
        if !rel.is_empty() {
            rel.push('/');
        }
        let prefix = rel.len();
        for entry in entries {
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            rel.truncate(prefix);
            match name.to_str() {
                Some(name) => rel.push_str(name),
                None => rel.push_str(&name.to_string_lossy()),
            }
            let is_dir = file_type.is_dir();
            if rules
                .as_deref()
                .is_some_and(|rules| rules.ignored(&rel, is_dir))
            {
                continue;
            }
            if is_dir {
                children.push(Job {
                    rel: rel.clone(),
                    rules: rules.clone(),
                });
                continue;
            }
            // `statx` relative to the directory's descriptor, not following a symlink.
            let Ok(meta) = entry.metadata() else {
                continue; // vanished during the walk
            };
            match self.mode {
                Mode::Record { racy_since } => {
                    if let Some(state) = file_state(&entry, &meta, racy_since) {
                        found.entries.push((rel.clone(), state));
                    }
                }
                Mode::Diff { before, seen } => {
                    let Some(now) = file_state(&entry, &meta, None) else {
                        continue;
                    };
                    let change = match before.files.get(rel.as_str()) {
                        None => Change::Created,
                        Some((index, was)) => {
                            seen[*index].store(true, Ordering::Relaxed);
                            if !modified(&entry.path(), was, &now) {
                                continue;
                            }
                            Change::Modified
                        }
                    };
                    found.changes.push(FileChange {
                        path: rel.clone(),
                        change,
                    });
                }
            }
        }
    }
}

impl Walker<'_> {
    /// Watches `dir`; `None` (and the walk marked unwatched) when it cannot be.
    fn watch(&self, watches: &mut inotify::Watches, dir: &Path) -> Option<i32> {
        if self.unwatched.load(Ordering::Relaxed) {
            return None;
        }
        if self.watched.fetch_add(1, Ordering::Relaxed) >= MAX_WATCHES {
            tracing::debug!(
                max = MAX_WATCHES,
                "more directories than watches allowed; the tree will be walked again"
            );
            self.unwatched.store(true, Ordering::Relaxed);
            return None;
        }
        match watches.add(dir, watch_mask()) {
            Ok(wd) => Some(wd.get_watch_descriptor_id()),
            Err(e) => {
                // ENOSPC: the user's `fs.inotify.max_user_watches` is used up.
                tracing::debug!(dir = %dir.display(), error = %e, "cannot watch a directory");
                self.unwatched.store(true, Ordering::Relaxed);
                None
            }
        }
    }
}

/// The ignore rules of one directory — its `.git/info/exclude` (when it holds a `.git`
/// directory), `.gitignore` and `.ignore`, a later file's patterns taking precedence — chained
/// to its parent's; a deeper directory's rules take precedence over its parents'.
struct Rules {
    base: Base,
    matcher: Gitignore,
    parent: Option<Arc<Rules>>,
}

/// Where a [`Rules`]' directory is, for matching a path relative to the walk's root against
/// its patterns (which are relative to the directory holding them).
enum Base {
    /// In the tree: the length of its path relative to the root with a trailing `/` (0 for
    /// the root), the prefix to strip.
    Inside(usize),
    /// An ancestor of the root: the root's path relative to it, with a trailing `/`, the
    /// prefix to add.
    Above(String),
}

impl Rules {
    /// The rules in force in the directory of `job` (whose entries are `entries`): its own
    /// on top of its parent's, or its parent's when it holds no ignore file.
    fn of_dir(dir: &Path, job: &Job, entries: &[std::fs::DirEntry]) -> Option<Arc<Rules>> {
        let mut files = Vec::new();
        for entry in entries {
            let name = entry.file_name();
            if name == ".git" && entry.file_type().is_ok_and(|t| t.is_dir()) {
                files.insert(0, dir.join(".git/info/exclude"));
            } else if name == ".gitignore" || name == ".ignore" {
                files.push(entry.path());
            }
        }
        // `.ignore` after `.gitignore`: its patterns win.
        files.sort_by_key(|f| f.ends_with(".ignore"));
        let base = if job.rel.is_empty() {
            0
        } else {
            job.rel.len() + 1
        };
        Rules::chain(dir, Base::Inside(base), &files, job.rules.clone())
    }

    /// `parent` topped with the rules of `files` (in `dir`), if they hold any pattern.
    fn chain(
        dir: &Path,
        base: Base,
        files: &[PathBuf],
        parent: Option<Arc<Rules>>,
    ) -> Option<Arc<Rules>> {
        if files.is_empty() {
            return parent;
        }
        let mut builder = GitignoreBuilder::new(dir);
        for file in files {
            if let Some(e) = builder.add(file) {
                // A missing `.git/info/exclude` is normal; a bad pattern skips only itself.
                tracing::debug!(file = %file.display(), error = %e, "in an ignore file");
            }
        }
        match builder.build() {
            Ok(matcher) if !matcher.is_empty() => Some(Arc::new(Rules {
                base,
                matcher,
                parent,
            })),
            Ok(_) => parent,
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "unusable ignore rules");
                parent
            }
        }
    }

    /// Whether `rel` (relative to the walk's root) is ignored: the deepest rules that match
    /// decide (an ignore or a `!` whitelist).
    fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        let mut at = Some(self);
        while let Some(rules) = at {
            let matched = match &rules.base {
                Base::Inside(strip) => rules.matcher.matched(&rel[*strip..], is_dir),
                Base::Above(prefix) => rules.matcher.matched(format!("{prefix}{rel}"), is_dir),
            };
            match matched {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => at = rules.parent.as_deref(),
            }
        }
        false
    }
}

/// The ignore rules of the root's ancestors inside its git repository: when the root is in a
/// repository (an ancestor holds `.git`), the `.gitignore`, `.ignore` and (at the top)
/// `.git/info/exclude` files from the repository's top down to the root's parent, as git
/// applies them. Outside a repository, none: files above the working directory (say, in
/// `/tmp`) must not change what a task reports.
fn ancestor_rules(root: &Path) -> Option<Arc<Rules>> {
    let absolute = root.canonicalize().ok()?;
    let ancestors: Vec<&Path> = absolute.ancestors().skip(1).collect();
    let top = ancestors.iter().position(|dir| dir.join(".git").is_dir())?;
    let mut rules = None;
    for (i, dir) in ancestors[..=top].iter().enumerate().rev() {
        let mut files = Vec::new();
        if i == top {
            files.push(dir.join(".git/info/exclude"));
        }
        for name in [".gitignore", ".ignore"] {
            let file = dir.join(name);
            if file.is_file() {
                files.push(file);
            }
        }
        // The root's path below this ancestor, as a prefix of the paths matched.
        let Ok(below) = absolute.strip_prefix(dir) else {
            continue;
        };
        let prefix = format!("{}/", below.to_string_lossy());
        rules = Rules::chain(dir, Base::Above(prefix), &files, rules);
    }
    rules
}

/// `None` when the entry vanished during the walk.
fn file_state(
    entry: &std::fs::DirEntry,
    meta: &std::fs::Metadata,
    racy_since: Option<i128>,
) -> Option<FileState> {
    if meta.file_type().is_symlink() {
        return std::fs::read_link(entry.path()).ok().map(FileState::Link);
    }
    let stat = Stat::of(meta);
    let racy = racy_since
        .filter(|since| stat.mtime.max(stat.ctime) >= *since)
        .map(|_| hash_file(&entry.path()));
    Some(FileState::File { stat, racy })
}

/// Whether the file at `path` changed from `before` to `now` (see the module doc).
fn modified(path: &Path, before: &FileState, now: &FileState) -> bool {
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
                Some(digest) => hash_file(path) != *digest,
            }
        }
        _ => true,
    }
}

/// Looks again at a file the snapshot held: deleted, modified, or (None) unchanged.
fn recheck(root: &Path, path: &str, was: &FileState) -> Option<FileChange> {
    let full = root.join(path);
    let now = std::fs::symlink_metadata(&full)
        .ok()
        .filter(|meta| !meta.is_dir())
        .and_then(|meta| now_state(&full, &meta));
    let change = match now {
        None => Change::Deleted,
        Some(now) if modified(&full, was, &now) => Change::Modified,
        Some(_) => return None,
    };
    Some(FileChange {
        path: path.to_owned(),
        change,
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
        let after = walk(root, None, false).unwrap();
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

        assert!(before.watched(), "{} directories are watched", DIRS + 1);
        let by_walk = before.changes_by_walk().unwrap();
        assert_eq!(before.changes_now().unwrap(), by_walk, "watched == walked");
        assert_eq!(
            by_walk,
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

    /// Rules of nested ignore files, `!` re-inclusions, `.ignore`, the repository's
    /// `.git/info/exclude` and its `.gitignore` above the working directory all apply.
    #[test]
    fn nested_and_repository_ignore_rules_apply() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(repo.path().join(".git/info")).unwrap();
        std::fs::write(repo.path().join(".git/info/exclude"), "secret.txt\n").unwrap();
        std::fs::write(repo.path().join(".gitignore"), "*.log\n").unwrap();
        let root = repo.path().join("sub");
        std::fs::create_dir_all(root.join("deep")).unwrap();
        std::fs::write(root.join(".gitignore"), "!keep.log\n").unwrap();
        std::fs::write(root.join("deep/.gitignore"), "gen/\n").unwrap();
        std::fs::write(root.join("deep/.ignore"), "*.bak\n").unwrap();
        let before = Snapshot::take(&root).unwrap();

        for file in [
            "a.log",
            "keep.log",
            "secret.txt",
            "deep/secret.txt",
            "deep/y.log",
            "deep/gen/x",
            "deep/gen2/x",
            "deep/z.bak",
            "z.bak",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        assert_eq!(
            before.changes_now().unwrap(),
            vec![
                change("deep/gen2/x", Change::Created),
                change("keep.log", Change::Created),
                change("z.bak", Change::Created),
            ]
        );
        // Outside a repository, the ignore files above the working directory do not apply.
        std::fs::remove_dir_all(repo.path().join(".git")).unwrap();
        let before = Snapshot::take(&root).unwrap();
        std::fs::write(root.join("b.log"), "x").unwrap();
        assert_eq!(
            before.changes_now().unwrap(),
            vec![change("b.log", Change::Created)]
        );
    }

    /// The watched answer (`Watch::changes`) of `before`, which must be usable.
    fn watched_changes(before: &Snapshot) -> Vec<FileChange> {
        let watch = before.watch.as_ref().expect("the tree is watched");
        watch
            .changes(before)
            .unwrap()
            .expect("the events tell what changed")
    }

    /// Every kind of change the events can tell: the watched answer is the walked one.
    #[test]
    fn the_watch_answers_like_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::write(root.join(".gitignore"), "*.log\ntarget/\n").unwrap();
        for name in [
            "a.txt",
            "b.txt",
            "c.txt",
            "src/deep/d.txt",
            "src/e.txt",
            "f.txt",
            "h.txt",
        ] {
            std::fs::write(root.join(name), "1234").unwrap();
            age(&root.join(name), 3600);
        }
        // A file with a second hard link outside the tree.
        std::fs::hard_link(root.join("f.txt"), outside.path().join("f.txt")).unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        let before = Snapshot::take(root).unwrap();
        assert!(before.watched());
        assert!(watched_changes(&before).is_empty(), "nothing changed yet");

        std::fs::write(root.join("a.txt"), "longer").unwrap();
        // Same size, mtime set back.
        let mtime = std::fs::metadata(root.join("b.txt"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::write(root.join("b.txt"), "5678").unwrap();
        std::fs::File::options()
            .write(true)
            .open(root.join("b.txt"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::remove_file(root.join("c.txt")).unwrap();
        std::fs::rename(root.join("src/e.txt"), root.join("src/deep/e2.txt")).unwrap();
        std::fs::write(outside.path().join("f.txt"), "9999").unwrap();
        std::fs::remove_file(root.join("link")).unwrap();
        std::os::unix::fs::symlink("b.txt", root.join("link")).unwrap();
        std::fs::write(root.join("new.txt"), "n").unwrap();
        std::fs::write(root.join("src/build.log"), "ignored").unwrap();
        std::fs::create_dir_all(root.join("target/debug")).unwrap();
        std::fs::write(root.join("target/debug/out"), "ignored").unwrap();
        std::fs::create_dir_all(root.join("fresh/inner")).unwrap();
        std::fs::write(root.join("fresh/inner/x.rs"), "x").unwrap();
        std::fs::write(root.join("fresh/y.log"), "ignored").unwrap();
        // Created and deleted during the task: nothing to report.
        std::fs::write(root.join("tmp.txt"), "t").unwrap();
        std::fs::remove_file(root.join("tmp.txt")).unwrap();
        // A second name for a file (its link count and ctime change, with no event of its own).
        std::fs::hard_link(root.join("h.txt"), root.join("g.txt")).unwrap();
        // A file replaced by a directory.
        std::fs::remove_file(root.join("src/deep/d.txt")).unwrap();
        std::fs::create_dir(root.join("src/deep/d.txt")).unwrap();
        std::fs::write(root.join("src/deep/d.txt/z"), "z").unwrap();

        let expected = vec![
            change("a.txt", Change::Modified),
            change("b.txt", Change::Modified),
            change("c.txt", Change::Deleted),
            change("f.txt", Change::Modified),
            change("fresh/inner/x.rs", Change::Created),
            change("g.txt", Change::Created),
            change("h.txt", Change::Modified),
            change("link", Change::Modified),
            change("new.txt", Change::Created),
            change("src/deep/d.txt", Change::Deleted),
            change("src/deep/d.txt/z", Change::Created),
            change("src/deep/e2.txt", Change::Created),
            change("src/e.txt", Change::Deleted),
        ];
        assert_eq!(watched_changes(&before), expected);
        assert_eq!(before.changes_by_walk().unwrap(), expected);
        // Asked again, the same answer (the events read are kept).
        assert_eq!(before.changes_now().unwrap(), expected);
    }

    /// When the events cannot tell, the tree is walked again: the answer stays exact.
    /// The watch hands the answer to a full walk (it cannot tell from its events alone).
    fn assert_watch_cannot_tell(before: &Snapshot) {
        let watch = before.watch.as_ref().expect("a watch was set");
        assert!(watch.changes(before).unwrap().is_none());
    }

    #[test]
    fn the_walk_takes_over_when_the_events_cannot_tell() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("gone/sub")).unwrap();
        std::fs::create_dir_all(root.join("many")).unwrap();
        std::fs::write(root.join("gone/sub/a.txt"), "a").unwrap();
        std::fs::write(root.join("keep.txt"), "k").unwrap();
        std::fs::write(root.join("x.tmp"), "x").unwrap();

        // A watched directory deleted.
        let before = Snapshot::take(root).unwrap();
        std::fs::remove_dir_all(root.join("gone")).unwrap();
        assert_watch_cannot_tell(&before);
        assert_eq!(
            before.changes_now().unwrap(),
            vec![change("gone/sub/a.txt", Change::Deleted)]
        );

        // An ignore file written: `x.tmp` (there before, unchanged) is ignored now, which is
        // not a change of its own; `.gitignore` is new.
        let before = Snapshot::take(root).unwrap();
        std::fs::write(root.join(".gitignore"), "*.tmp\n").unwrap();
        assert_watch_cannot_tell(&before);
        assert_eq!(
            before.changes_now().unwrap(),
            vec![change(".gitignore", Change::Created)]
        );

        // The event queue overflowed: more events than the kernel keeps.
        let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(16_384);
        let before = Snapshot::take(root).unwrap();
        let n = max + 10;
        for i in 0..n {
            std::fs::File::create(root.join(format!("many/{i}"))).unwrap();
        }
        assert_watch_cannot_tell(&before);
        let changes = before.changes_now().unwrap();
        assert_eq!(changes.len(), n);
        assert!(changes
            .iter()
            .all(|c| c.change == Change::Created && c.path.starts_with("many/")));
    }

    /// A tree with more directories than one snapshot may watch is walked again.
    #[test]
    fn too_many_directories_are_walked_instead_of_watched() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for i in 0..=MAX_WATCHES {
            std::fs::create_dir(root.join(format!("{i}"))).unwrap();
        }
        let before = Snapshot::take(root).unwrap();
        assert!(!before.watched());
        std::fs::write(root.join("7/new.txt"), "n").unwrap();
        assert_eq!(
            before.changes_now().unwrap(),
            vec![change("7/new.txt", Change::Created)]
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
