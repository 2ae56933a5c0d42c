//! GitOps plumbing around the reconciler: the manifests as a git working copy.
//!
//! - [`git`]: every call of the `git` binary (revision, commit, clone, fetch, push).
//! - [`watcher`]: notify events on the manifests dir into "these paths may have changed".
//! - [`pull`]: pull mode, a clone of a remote kept up to date and pushed to.
//! - [`writeback`]: an API write-back on disk, committed (and pushed) as the Config says.
//!
//! The reconciler calls into this module (revisions, write-backs); this module calls the
//! reconciler only through its [`Controller`](crate::reconcile::Controller) handle.

pub mod git;
pub mod pull;
pub mod watcher;
pub mod writeback;
