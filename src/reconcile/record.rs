//! Step five of a pass, *record*: per-resource statuses into the [`Reflector`], and the
//! summary (`GET /api/v1/status`) with every current problem, kept incrementally so that
//! recording one change costs what the change costs.
//!
//! A `system.error` event is raised (and a warning logged) when a problem first appears, not
//! on every pass while it lasts.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

use super::handler::PROGRESSING;
use super::index::Key;
use super::reflector::Reflector;
use super::status::{KindCount, ResourceStatus, Summary};
use crate::events;
use crate::live::Live;
use crate::manifest::{Diagnostic, Kind};
use crate::store::{outbox, Store, StoreError};

/// Reasons that are not listed as errors of their own: the file's diagnostics, the prune
/// guard's message and slow work in progress say it already.
fn is_error(status: &ResourceStatus) -> bool {
    !status.ready && !matches!(status.reason, "InvalidManifest" | "PruneHeld" | PROGRESSING)
}

/// Statuses and what follows from them: counts per kind and the errors they raise.
#[derive(Default)]
pub struct Book {
    counts: BTreeMap<Kind, KindCount>,
    errors: BTreeMap<Key, Diagnostic>,
    /// Problems already reported, so a resync does not repeat them.
    reported: HashSet<String>,
}

impl Book {
    /// Changes (or creates) the status of `key` through `change`; `origin` is the document's
    /// file and line when known. Returns what `change` returned.
    pub fn update<R>(
        &mut self,
        reflector: &Reflector,
        key: &Key,
        origin: Option<(&Arc<Path>, usize)>,
        now: OffsetDateTime,
        change: impl FnOnce(&mut ResourceStatus) -> R,
    ) -> R {
        let (before, after, out) = reflector.update_status(key.0, &key.1, |name, slot| {
            let before = slot.as_ref().map(|s| s.ready);
            let status = slot.get_or_insert_with(|| {
                Box::new(ResourceStatus {
                    kind: key.0,
                    name: name.clone(),
                    file: origin
                        .map(|(f, _)| f.clone())
                        .unwrap_or_else(|| Arc::from(Path::new(""))),
                    line: origin.map_or(0, |(_, l)| l),
                    ready: false,
                    reason: "Pending",
                    message: Arc::from(""),
                    applied_revision: None,
                    last_transition_time: now,
                    applied_outcome: None,
                })
            });
            if let Some((file, line)) = origin {
                if status.file != *file {
                    status.file = file.clone();
                }
                status.line = line;
            }
            let out = change(status);
            let error = is_error(status).then(|| Diagnostic {
                file: status.file.to_path_buf(),
                line: status.line,
                column: 1,
                kind: Some(status.kind),
                name: Some(status.name.to_string()),
                pointer: String::new(),
                message: format!("{}: {}", status.reason, status.message),
            });
            (before, (status.ready, error), out)
        });
        let count = self.counts.entry(key.0).or_default();
        if let Some(was_ready) = before {
            count.total -= 1;
            count.ready -= usize::from(was_ready);
        }
        count.total += 1;
        count.ready += usize::from(after.0);
        match after.1 {
            Some(d) => {
                self.errors.insert(key.clone(), d);
            }
            None => {
                self.errors.remove(key);
            }
        }
        out
    }

    /// Forgets the status of `key` (the resource is deleted).
    pub fn remove(&mut self, reflector: &Reflector, key: &Key) {
        let before = reflector.update_status(key.0, &key.1, |_, slot| slot.take().map(|s| s.ready));
        if let Some(was_ready) = before {
            let count = self.counts.entry(key.0).or_default();
            count.total -= 1;
            count.ready -= usize::from(was_ready);
        }
        self.errors.remove(key);
    }

    /// Errors raised by statuses, by kind and name.
    pub fn status_errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.errors.values()
    }

    /// Resources and ready resources per kind (every kind listed).
    pub fn counts(&self) -> BTreeMap<Kind, KindCount> {
        let mut counts: BTreeMap<Kind, KindCount> = Kind::ALL
            .iter()
            .map(|k| (*k, KindCount::default()))
            .collect();
        for (k, c) in &self.counts {
            counts.insert(*k, c.clone());
        }
        counts
    }

    /// Logs problems not seen in the previous summary and raises a `system.error` event for
    /// each, so subscribers hear of a broken manifest or a held prune once, not on every resync.
    pub async fn report_new(
        &mut self,
        root: &Path,
        errors: &[Diagnostic],
        store: &Store,
        live: &Live,
    ) {
        let mut current = HashSet::with_capacity(errors.len());
        let mut fresh = Vec::new();
        for d in errors {
            let line = d.display_in(Path::new("")).to_string();
            if !self.reported.contains(&line) {
                tracing::warn!("{}", d.display_in(root));
                fresh.push(events::system_error(
                    "manifests",
                    &line,
                    serde_json::to_value(d).unwrap_or_default(),
                ));
            }
            current.insert(line);
        }
        self.reported = current;
        // Every replica reconciles the same revision: only the leader raises the events.
        if fresh.is_empty() || !live.cluster.is_leader() {
            return;
        }
        let written = async {
            let mut tx = store.begin().await?;
            for event in &fresh {
                outbox::insert(&mut tx, event).await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
        };
        match written.await {
            Ok(()) => live.outbox.notify_one(),
            Err(e) => tracing::error!("cannot record system.error events: {e}"),
        }
    }
}

/// What goes into a summary besides the book's own figures.
pub struct SummaryParts {
    pub revision: String,
    pub files: usize,
    pub prune_blocked: usize,
    pub errors: Vec<Diagnostic>,
    pub last_duration_ms: u64,
}

/// Renders and publishes a summary.
pub fn publish(live: &Live, book: &Book, parts: SummaryParts) {
    let mut summary = Summary {
        initialised: true,
        last_run_at: Some(OffsetDateTime::now_utc()),
        last_duration_ms: parts.last_duration_ms,
        revision: parts.revision,
        files: parts.files,
        resources: book.counts(),
        prune_blocked: parts.prune_blocked,
        errors: parts.errors,
        rendered: String::new(),
    };
    summary.render();
    live.summary.store(Arc::new(summary));
}

/// Publishes a summary that keeps the last one and adds one whole-set error (the manifests
/// could not be read at all).
pub fn publish_read_error(live: &Live, message: String) {
    let mut summary = Summary::clone(&live.summary.load());
    summary
        .errors
        .retain(|d| !d.file.as_os_str().is_empty() || !d.message.starts_with("cannot read"));
    summary.errors.push(Diagnostic::global(message));
    summary.render();
    live.summary.store(Arc::new(summary));
}
