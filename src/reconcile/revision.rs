//! The manifests' revision when they are a git working copy: the HEAD commit, `-dirty` when
//! a tracked file under the root has changes or an untracked manifest exists. A full pass asks
//! git about the whole root; other passes only about the files they read, so that a pass's
//! cost does not grow with the working copy (a whole `git status` stats every file).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::gitops::git;

/// What the loop knows of the manifests' git working copy, so that a pass asks git only about
/// the files it read (a whole `git status` of a large working copy costs what the copy holds).
#[derive(Default)]
pub struct GitView {
    /// Looked at in a full pass (start-up, resync): whether the root is in a working copy.
    known: bool,
    work_tree: bool,
    /// The root's place in the working copy (`git rev-parse --show-prefix`).
    prefix: String,
    oid: String,
    /// Dirty paths, relative to the top of the working copy.
    dirty: BTreeSet<String>,
    /// Git could not be run; said once in the log, then revisions are content digests.
    warned: bool,
}

impl GitView {
    /// Forgets what is known, so the next pass asks about the whole root (after a commit).
    pub fn invalidate(&mut self) {
        self.known = false;
    }

    /// The git revision of the manifests, once per pass; `None` outside a git working copy
    /// (or without git), where the content digest is the revision. A full pass asks about the
    /// whole root; other passes only about the files they read (`changed`).
    pub async fn revision(
        &mut self,
        root: &Path,
        full: bool,
        changed: Vec<PathBuf>,
    ) -> Option<String> {
        let whole = full || !self.known;
        if !whole && (!self.work_tree || changed.is_empty()) {
            return self.work_tree.then(|| self.string());
        }
        let root = root.to_path_buf();
        let asked = if whole { Vec::new() } else { changed.clone() };
        let found = tokio::task::spawn_blocking(move || {
            let status = git::status(&root, &asked)?;
            let prefix = match (&status, whole) {
                (Some(_), true) => Some(git::prefix(&root)?),
                _ => None,
            };
            Ok::<_, git::GitError>((status, prefix))
        })
        .await;
        let (status, prefix) = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                if !self.warned {
                    self.warned = true;
                    tracing::warn!("{e}; manifest revisions are content digests");
                }
                self.known = true;
                self.work_tree = false;
                return None;
            }
            Err(_) => return None,
        };
        self.known = true;
        let Some(status) = status else {
            self.work_tree = false;
            return None;
        };
        self.work_tree = true;
        if let Some(prefix) = prefix {
            self.prefix = prefix;
            self.dirty.clear();
        } else {
            for path in &changed {
                let repo_path = format!("{}{}", self.prefix, path.to_string_lossy());
                self.dirty.remove(&repo_path);
            }
        }
        self.oid = status.oid;
        self.dirty.extend(status.dirty);
        Some(self.string())
    }

    fn string(&self) -> String {
        if self.dirty.is_empty() {
            self.oid.clone()
        } else {
            format!("{}{}", self.oid, git::DIRTY)
        }
    }
}
