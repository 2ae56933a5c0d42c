//! Per-resource status (Ready, reason, message, applied revision, time) and the summary the
//! API shows.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use crate::manifest::{Diagnostic, Kind};

/// The condition of one declared resource, in the manner of a Kubernetes `Ready` condition.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceStatus {
    pub kind: Kind,
    /// Shared with the reflector's key (see [`super::reflector`]).
    pub name: Arc<str>,
    pub file: Arc<Path>,
    pub line: usize,
    pub ready: bool,
    /// CamelCase machine-readable cause, e.g. `Applied`, `InvalidManifest`, `ApplyFailed`.
    pub reason: &'static str,
    pub message: Arc<str>,
    /// The manifests revision at which the current spec was applied.
    pub applied_revision: Option<Arc<str>>,
    #[serde(with = "time::serde::rfc3339")]
    pub last_transition_time: OffsetDateTime,
    /// Reason and message of the last successful apply, restored when an invalid edit of an
    /// unchanged resource is fixed.
    #[serde(skip)]
    pub applied_outcome: Option<(&'static str, Arc<str>)>,
}

impl ResourceStatus {
    /// Sets the condition, moving the transition time only when readiness or reason change.
    pub fn set(
        &mut self,
        ready: bool,
        reason: &'static str,
        message: impl Into<Arc<str>>,
        now: OffsetDateTime,
    ) {
        if self.ready != ready || self.reason != reason {
            self.last_transition_time = now;
        }
        self.ready = ready;
        self.reason = reason;
        self.message = message.into();
    }
}

/// Status messages shared between resources: 100,000 Tokens of one scope hold one "token
/// accepted with scope read", not a copy each. Bounded: forgotten (not freed from statuses
/// that hold them) when [`Messages::MAX`] distinct ones have been seen.
#[derive(Default)]
pub struct Messages(HashSet<Arc<str>>);

impl Messages {
    const MAX: usize = 256;

    /// The shared copy of `message`.
    pub fn intern(&mut self, message: String) -> Arc<str> {
        if let Some(m) = self.0.get(message.as_str()) {
            return m.clone();
        }
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        let m: Arc<str> = message.into();
        self.0.insert(m.clone());
        m
    }
}

/// Counts of one kind's resources.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct KindCount {
    pub total: usize,
    pub ready: usize,
}

/// What `GET /api/v1/status` reports about reconciliation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// True once the first full reconcile has finished.
    pub initialised: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_run_at: Option<OffsetDateTime>,
    pub last_duration_ms: u64,
    /// Revision of the manifests last reconciled.
    pub revision: String,
    /// Number of manifest files.
    pub files: usize,
    pub resources: std::collections::BTreeMap<Kind, KindCount>,
    /// Deletes held back by the prune guard (0 when none).
    pub prune_blocked: usize,
    /// Every current problem: invalid files, rule violations, failed applies, held prunes.
    pub errors: Vec<Diagnostic>,
    /// The `reconciler` section of `GET /status`, rendered once per pass (see [`Summary::render`])
    /// so the endpoint serialises nothing per request.
    #[serde(skip)]
    pub rendered: String,
}

/// Errors listed in full in the status; the rest are counted (`errors_total`).
const MAX_ERRORS: usize = 100;

impl Summary {
    /// True when nothing is wrong.
    pub fn healthy(&self) -> bool {
        self.errors.is_empty() && self.prune_blocked == 0
    }

    /// Renders the status section into `rendered`.
    pub fn render(&mut self) {
        let errors: Vec<serde_json::Value> = self
            .errors
            .iter()
            .take(MAX_ERRORS)
            .map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["text"] = d.to_string().into();
                v
            })
            .collect();
        self.rendered = serde_json::json!({
            "initialised": self.initialised,
            "last_run_at": self.last_run_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "last_duration_ms": self.last_duration_ms,
            "revision": self.revision,
            "files": self.files,
            "resources": self.resources,
            "prune_blocked": self.prune_blocked,
            "errors_total": self.errors.len(),
            "errors": errors,
        })
        .to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_messages_share_one_copy_and_the_set_stays_bounded() {
        let mut messages = Messages::default();
        let a = messages.intern("token accepted with scope read".to_owned());
        let b = messages.intern("token accepted with scope read".to_owned());
        assert!(Arc::ptr_eq(&a, &b));
        let c = messages.intern("token accepted with scope admin".to_owned());
        assert!(!Arc::ptr_eq(&a, &c));
        for i in 0..1000 {
            messages.intern(format!("installed v{i}"));
        }
        assert!(messages.0.len() <= Messages::MAX);
        assert_eq!(&*messages.intern("x".to_owned()), "x");
    }
}
