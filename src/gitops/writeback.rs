//! Write-backs on disk and in git: the file is written atomically; with `git.auto_commit`
//! (or always, in pull mode) it is committed, and in pull mode pushed. A write that cannot be
//! committed or pushed leaves the working copy as it was. Blocking: run on a blocking thread.

use std::io;
use std::path::Path;

use super::git;
use super::pull::Checkout;
use crate::manifest::kinds::GitConfig;
use crate::manifest::write::{self, WriteError};
use crate::reconcile::WriteContext;

/// Pull mode: writes a prepared edit, commits it (whatever `git.auto_commit` says) and pushes
/// it, rebasing onto what others pushed meanwhile. When the push cannot be made the checkout
/// is reset to where it was, so nothing changes locally.
pub fn write_and_push(
    root: &Path,
    prepared: write::PreparedWrite,
    git_config: GitConfig,
    context: &WriteContext,
    checkout: &Checkout,
) -> Result<write::PreparedWrite, WriteError> {
    let _held = checkout.lock();
    let before = git::head(root).map_err(WriteError::Commit)?;
    let committer = git_config.author();
    let git_config = GitConfig {
        auto_commit: true,
        ..git_config
    };
    let prepared = write_and_commit(root, prepared, git_config, context)?;
    let pushed = git::push(
        root,
        &checkout.branch,
        super::pull::PUSH_ATTEMPTS,
        &committer,
    );
    if let Err(e) = pushed {
        if let Err(r) = git::reset_hard(root, &before) {
            tracing::error!("cannot reset the checkout after a failed push: {r}");
        }
        return Err(WriteError::Push(e));
    }
    Ok(prepared)
}

/// Writes a prepared edit and, with `git.auto_commit` in a git working copy, commits exactly
/// that file. A failed commit puts the file's previous content back, so nothing changes.
pub fn write_and_commit(
    root: &Path,
    prepared: write::PreparedWrite,
    git_config: GitConfig,
    context: &WriteContext,
) -> Result<write::PreparedWrite, WriteError> {
    let commit = git_config.auto_commit
        && match git::is_work_tree(root) {
            Ok(inside) => inside,
            Err(e) => {
                tracing::warn!("{e}; the write-back is not committed");
                false
            }
        };
    let full = root.join(&prepared.path);
    let io_err = |source| WriteError::Io {
        path: prepared.path.clone(),
        source,
    };
    let previous = if commit {
        match std::fs::read(&full) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(e)),
        }
    } else {
        None
    };
    write::commit(root, &prepared)?;
    if commit {
        let author = git_config.author();
        let message = context.commit_message();
        if let Err(e) = git::commit(
            root,
            std::slice::from_ref(&prepared.path),
            &message,
            &author,
        ) {
            let restored = match &previous {
                Some(bytes) => write::atomic_write(&full, bytes),
                None => std::fs::remove_file(&full),
            };
            if let Err(r) = restored {
                tracing::error!(file = %prepared.path.display(), "cannot restore after a failed commit: {r}");
            }
            return Err(WriteError::Commit(e));
        }
    }
    Ok(prepared)
}
