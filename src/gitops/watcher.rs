//! The watcher: turns file-system events into reconcile triggers.
//!
//! Events are hints, never facts: a path in an event only means "this may have changed", and
//! the reconciler re-reads and hashes it. Bursts are debounced (an editor's save is several
//! events); an overflowed or failed watch asks for a full pass, and so does a timer, which also
//! repairs whatever an event could have missed.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::manifest::load::is_manifest_file;
use crate::reconcile::{Controller, Scope};

/// Timing of the watcher.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Quiet time after the last event before a burst is handed on.
    pub debounce: Duration,
    /// Interval of the full resync.
    pub resync: Duration,
}

/// Starts watching `root` and every directory below it. The task ends when `stop` is cancelled.
pub fn spawn(
    root: PathBuf,
    controller: Controller,
    timing: Timing,
    stop: CancellationToken,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })?;
    watch_tree(&mut watcher, &root, true)?;
    // Events name canonical paths on some platforms; compare against both forms.
    let canonical = root.canonicalize().unwrap_or_else(|_| root.clone());
    Ok(tokio::spawn(async move {
        // Dropped (and the OS watches removed) when the task ends.
        let mut watcher = watcher;
        let mut resync = tokio::time::interval(timing.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await; // the first tick is immediate; start-up already did a full pass
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => break,
                _ = resync.tick() => {
                    controller.trigger(Scope::Full);
                    continue;
                }
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
            };
            let mut batch = Batch::default();
            batch.add(&root, &canonical, first);
            // Debounce: wait for a quiet period, but never longer than 10 windows in total.
            let deadline = tokio::time::Instant::now() + timing.debounce * 10;
            loop {
                let quiet = tokio::time::Instant::now() + timing.debounce;
                match tokio::time::timeout_at(quiet.min(deadline), rx.recv()).await {
                    Ok(Some(event)) => batch.add(&root, &canonical, event),
                    Ok(None) | Err(_) => break,
                }
            }
            // New directories (or ones moved in) are watched before their pass scans them:
            // what is created in them from then on has its own events.
            let dirs: Vec<PathBuf> = if batch.full {
                vec![root.clone()]
            } else {
                batch.dirs.iter().map(|d| root.join(d)).collect()
            };
            if !dirs.is_empty() {
                // Listing directories and adding watches blocks: off the runtime's workers.
                let watching = tokio::task::spawn_blocking(move || {
                    for dir in &dirs {
                        // A path in the batch that is not a directory (any more) has no watch.
                        if dir.is_dir() {
                            if let Err(e) = watch_tree(&mut watcher, dir, false) {
                                if !is_gone(&e) {
                                    tracing::warn!(dir = %dir.display(), "cannot watch a directory; its changes are seen at the next resync: {e}");
                                }
                            }
                        }
                    }
                    watcher
                });
                match watching.await {
                    Ok(w) => watcher = w,
                    Err(e) => {
                        tracing::error!("the file watcher stopped: {e}");
                        break;
                    }
                }
            }
            if let Some(scope) = batch.into_scope() {
                controller.trigger(scope);
            }
        }
    }))
}

/// Watches `dir` and every directory below it that the loader reads (hidden ones and linked
/// ones are not), each on its own: notify's recursive mode stats every file of the tree to
/// find the directories (~0.3 s on 100,000 files, on the way to listening), where the file
/// types of a directory listing are enough. A directory below `dir` that is gone by the time
/// it is watched is skipped. Any other failure (the inotify watch limit) is returned when
/// `strict` (start-up), else logged: that directory's changes are then seen by the resync.
fn watch_tree(watcher: &mut impl Watcher, dir: &Path, strict: bool) -> notify::Result<()> {
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.')
            || !entry.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let sub = entry.path();
        match watch_tree(watcher, &sub, strict) {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) if strict => return Err(e),
            Err(e) => tracing::warn!(
                dir = %sub.display(),
                "cannot watch a directory; its changes are seen at the next resync: {e}"
            ),
        }
    }
    Ok(())
}

fn is_gone(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::PathNotFound => true,
        notify::ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

#[derive(Default)]
struct Batch {
    full: bool,
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Batch {
    fn add(&mut self, root: &Path, canonical: &Path, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("file watcher error, doing a full resync: {e}");
                self.full = true;
                return;
            }
        };
        if event.need_rescan() {
            self.full = true;
            return;
        }
        // Opening and reading a file changes nothing, and the reconciler's own reads would
        // otherwise trigger it again forever. A close after writing is a real change.
        if matches!(
            event.kind,
            EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write)
        ) {
            return;
        }
        for path in event.paths {
            let Some(rel) = path
                .strip_prefix(root)
                .or_else(|_| path.strip_prefix(canonical))
                .ok()
                .map(Path::to_path_buf)
            else {
                continue;
            };
            if rel.as_os_str().is_empty() {
                // The root itself moved or vanished.
                self.full = true;
            } else if rel.components().any(is_hidden) {
                // .git, editor swap files, our own temp files.
            } else if is_manifest_file(&rel) {
                self.files.insert(rel);
            } else {
                // Possibly a directory created, moved or removed: look below it.
                self.dirs.insert(rel);
            }
        }
    }

    fn into_scope(self) -> Option<Scope> {
        if self.full {
            Some(Scope::Full)
        } else if self.files.is_empty() && self.dirs.is_empty() {
            None
        } else {
            Some(Scope::Paths {
                files: self.files,
                dirs: self.dirs,
            })
        }
    }
}

fn is_hidden(c: Component<'_>) -> bool {
    matches!(c, Component::Normal(name) if name.to_string_lossy().starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(paths: &[&str]) -> notify::Result<notify::Event> {
        let mut e = notify::Event::new(notify::EventKind::Any);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        Ok(e)
    }

    #[test]
    fn batches_manifest_files_and_dirs_and_skips_hidden_paths() {
        let mut b = Batch::default();
        let root = Path::new("/m");
        b.add(
            root,
            root,
            event(&[
                "/m/tokens/a.yaml",
                "/m/.git/index",
                "/m/.a.yaml.swp",
                "/m/skills",
                "/elsewhere/x.yaml",
            ]),
        );
        let Some(Scope::Paths { files, dirs }) = b.into_scope() else {
            panic!()
        };
        assert_eq!(files, BTreeSet::from([PathBuf::from("tokens/a.yaml")]));
        assert_eq!(dirs, BTreeSet::from([PathBuf::from("skills")]));
    }

    #[test]
    fn reads_are_not_changes_but_a_close_after_write_is() {
        let root = Path::new("/m");
        let event = |kind| Ok(notify::Event::new(kind).add_path(PathBuf::from("/m/a.yaml")));
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
        ] {
            let mut b = Batch::default();
            b.add(root, root, event(kind));
            assert_eq!(b.into_scope(), None, "{kind:?}");
        }
        let mut b = Batch::default();
        b.add(
            root,
            root,
            event(EventKind::Access(AccessKind::Close(AccessMode::Write))),
        );
        assert!(b.into_scope().is_some());
    }

    #[test]
    fn rescan_flags_and_errors_ask_for_a_full_pass() {
        let mut b = Batch::default();
        b.add(
            Path::new("/m"),
            Path::new("/m"),
            Err(notify::Error::generic("overflow")),
        );
        assert_eq!(b.into_scope(), Some(Scope::Full));
        let mut b = Batch::default();
        b.add(Path::new("/m"), Path::new("/m"), event(&["/m"]));
        assert_eq!(b.into_scope(), Some(Scope::Full));
    }
}
