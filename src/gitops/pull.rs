//! Pull mode (`serve --git-url`), the way Flux and Argo CD work: the manifests dir is a clone
//! under the data dir; a puller fetches and fast-forwards it on an interval and when
//! `POST /api/v1/hooks/git` fires, then asks for a full reconcile. Write-backs commit and push
//! from the write-back path (see `gitops::writeback`), under the same [`Checkout`]
//! lock, so a fetch never runs in the middle of a write's commit, push and rollback.
//!
//! Credentials come from the user's git configuration (credential helpers, ssh agent): a URL
//! carrying one is refused, so no secret is ever a visible argument.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::gitops::git::{self, GitError};
use crate::live::Live;
use crate::reconcile::{Controller, Scope};

/// Push attempts of one write-back (the first plus rebased retries).
pub const PUSH_ATTEMPTS: u32 = 3;

/// The `serve --git-*` flags.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The remote, as git understands it (`https://`, `ssh://`, `git@host:path`, `file://`).
    pub url: String,
    pub branch: String,
    /// How often to fetch.
    pub interval: Duration,
    /// The manifests dir inside the repository (`None`: its root).
    pub path: Option<PathBuf>,
    /// The secret `X-Hub-Signature-256` of the git hook is checked against.
    pub webhook_secret: Option<Vec<u8>>,
}

impl PullOptions {
    /// Pull `url` with the documented defaults (branch `main`, every minute).
    pub fn new(url: impl Into<String>) -> Self {
        PullOptions {
            url: url.into(),
            branch: "main".into(),
            interval: Duration::from_secs(60),
            path: None,
            webhook_secret: None,
        }
    }
}

/// Why pull mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "--git-url must not carry credentials (they would be visible in the process list); \
         configure a git credential helper or an ssh key instead"
    )]
    CredentialsInUrl,
    #[error("--git-url {url}: {why}")]
    Refused { url: String, why: String },
    #[error("--git-path {0} must be a relative path inside the repository")]
    BadPath(PathBuf),
    #[error("cannot clone {url}: {source}")]
    Clone {
        url: String,
        #[source]
        source: GitError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The clone and the lock that serialises every git call on it.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// The repository's root (`<data>/git/checkout`).
    pub root: PathBuf,
    /// The remote (`--git-url`).
    pub url: String,
    pub branch: String,
    lock: Arc<Mutex<()>>,
}

impl Checkout {
    /// Holds the checkout for a sequence of git calls.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches and fast-forwards (blocking); `committer` commits rebased local commits.
    pub fn sync(&self, committer: &git::Author) -> Result<(), GitError> {
        let _held = self.lock();
        git::fetch(&self.root, &self.branch)?;
        git::fast_forward(&self.root, &self.branch, committer)
    }
}

/// Checks the remote's host against the egress policy, as git is about to reach it: a literal
/// address directly, a name by resolving it (git resolves again on its own; a name whose
/// answer changes in between is not caught). Local paths and scp-like `host:path` URLs pass.
pub async fn check_remote(
    url: &str,
    policy: Arc<crate::egress::NetworkPolicy>,
) -> Result<(), PullError> {
    if git::url_has_credentials(url) {
        return Err(PullError::CredentialsInUrl);
    }
    let refused = |why: String| PullError::Refused {
        url: url.to_owned(),
        why,
    };
    let client = crate::egress::Client::new(policy, |b| b).map_err(refused)?;
    client.check_resolved(url).await.map_err(|e| refused(e.0))
}

/// Clones the remote under `data` unless a clone is there already (then it points it at `url`
/// and brings it up to date, or warns and goes on with what it has when the remote cannot be
/// reached), and returns it with the manifests dir inside it.
pub fn prepare(options: &PullOptions, data: &Path) -> Result<(Checkout, PathBuf), PullError> {
    if git::url_has_credentials(&options.url) {
        return Err(PullError::CredentialsInUrl);
    }
    if let Some(p) = &options.path {
        if p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(PullError::BadPath(p.clone()));
        }
    }
    let root = data.join("git").join("checkout");
    let existing = root.join(".git").exists();
    if !existing {
        let parent = data.join("git");
        std::fs::create_dir_all(&parent).map_err(|source| PullError::Io {
            path: parent,
            source,
        })?;
        git::clone(&options.url, &options.branch, &root).map_err(|source| PullError::Clone {
            url: options.url.clone(),
            source,
        })?;
    }
    let manifests = match &options.path {
        Some(p) => root.join(p),
        None => root.clone(),
    };
    let checkout = Checkout {
        root,
        url: options.url.clone(),
        branch: options.branch.clone(),
        lock: Arc::new(Mutex::new(())),
    };
    if existing {
        let synced = git::set_origin(&checkout.root, &options.url)
            .and_then(|()| checkout.sync(&crate::manifest::kinds::GitConfig::default().author()));
        if let Err(e) = synced {
            tracing::warn!(
                checkout = %checkout.root.display(),
                "cannot bring the existing clone up to date; reconciling what it has: {e}"
            );
        }
    }
    Ok((checkout, manifests))
}

/// What `POST /api/v1/hooks/git` reaches: the signature secret and the puller's doorbell.
pub struct Trigger {
    secret: Option<Vec<u8>>,
    notify: Notify,
}

impl Trigger {
    /// A trigger checking signatures against `secret` (`None`: only tokens are accepted).
    pub fn new(secret: Option<Vec<u8>>) -> Self {
        Trigger {
            secret,
            notify: Notify::new(),
        }
    }

    /// Whether a secret is configured.
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// Checks `X-Hub-Signature-256: sha256=<hex>` over the raw body, in constant time.
    pub fn verify(&self, header: &str, body: &[u8]) -> bool {
        let Some(secret) = &self.secret else {
            return false;
        };
        let Some(signature) = header
            .trim()
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    }

    /// Asks the puller for a fetch now (coalesced with one already pending).
    pub fn fire(&self) {
        self.notify.notify_one();
    }
}

/// Fetches on the interval and when `trigger` fires, then reconciles everything.
pub fn spawn(
    checkout: Checkout,
    interval: Duration,
    trigger: Arc<Trigger>,
    controller: Controller,
    live: Arc<Live>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await; // the first tick is immediate; start-up has just cloned
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {}
                _ = trigger.notify.notified() => {}
            }
            let c = checkout.clone();
            let committer = live.config.load().spec.git.author();
            let policy = crate::egress::policy_of(&live.config.load().spec);
            let failed = match check_remote(&checkout.url, policy).await {
                Err(e) => Some(e.to_string()),
                Ok(()) => match tokio::task::spawn_blocking(move || c.sync(&committer)).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(format!("the pull task failed: {e}")),
                },
            };
            // The pass below reports it among the status errors (and logs it once).
            live.pull_error.store(failed.map(Arc::new));
            if controller.reconcile_fast(Scope::Full).await.is_err() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_against_the_secret() {
        let trigger = Trigger::new(Some(b"It's a Secret to Everybody".to_vec()));
        // GitHub's documented example.
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(trigger.verify(good, b"Hello, World!"));
        assert!(!trigger.verify(good, b"Hello, World?"));
        assert!(!trigger.verify("sha256=00", b"Hello, World!"));
        assert!(!trigger.verify("sha1=abc", b"Hello, World!"));
        assert!(!Trigger::new(None).verify(good, b"Hello, World!"));
    }
}
