//! The reconcile loop: owns the desired state, plans, applies through the kind handlers,
//! records status, and publishes the summary.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::handler::{ApplyError, Handler, Outcome};
use super::plan::{self, Action, Guards, Hold, Step};
use super::status::{KindCount, ResourceStatus, Summary};
use super::{handlers, Controller, Request, Scope, WriteContext};
use crate::events;
use crate::git;
use crate::live::{ActiveConfig, Live};
use crate::manifest::kinds::GitConfig;
use crate::manifest::load::{self, digest_bytes, FileLoad};
use crate::manifest::rules::{Desired, CONFIG_NAME};
use crate::manifest::write::{self, Edit, WriteError};
use crate::manifest::{short_digest, Diagnostic, Digest, Kind, ManifestSet, Resource, Spec};
use crate::store::outbox;
use crate::store::resources::{self, Applied};
use crate::store::{self as db, Store, StoreError};

/// What one reconcile pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub revision: String,
    /// Files whose content changed (or appeared, or vanished) in this pass.
    pub changed_files: usize,
    pub applied: Vec<Step>,
    pub failed: Vec<FailedStep>,
    /// Deletes held back by the prune guard.
    pub held: usize,
    /// Problems in force after the pass.
    pub errors: usize,
    pub duration_ms: u64,
    /// Resources whose drift a full pass repaired (kind, name, reason).
    pub repaired: Vec<Repaired>,
}

/// A resource a resync repaired.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    pub kind: Kind,
    pub name: String,
    pub reason: String,
    pub message: String,
}

/// A step that did not succeed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedStep {
    #[serde(flatten)]
    pub step: Step,
    pub reason: String,
    pub message: String,
}

/// The result of a write-back.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The file written, relative to the manifests root.
    pub path: PathBuf,
    /// Digest of the edited resource after the write (`None` when it was deleted).
    pub digest: Option<Digest>,
    pub report: Report,
}

/// Options of the loop.
#[derive(Debug, Clone)]
pub struct Options {
    pub root: PathBuf,
    /// Allow the first pass to delete everything that vanished (`serve --confirm-prune`).
    pub confirm_prune: bool,
    /// Pull mode: write-backs are committed in this clone and pushed.
    pub checkout: Option<crate::pull::Checkout>,
}

struct Reconciler {
    root: PathBuf,
    checkout: Option<crate::pull::Checkout>,
    set: ManifestSet,
    actual: HashMap<(Kind, String), Applied>,
    statuses: HashMap<(Kind, String), ResourceStatus>,
    handlers: Vec<Arc<dyn Handler>>,
    store: Store,
    live: Arc<Live>,
    prune_confirmed: bool,
    initialised: bool,
    /// Problems already logged, so a resync does not repeat them every time.
    logged: HashSet<String>,
    last_run: Option<(OffsetDateTime, Duration)>,
    /// Git could not be run; said once in the log, then revisions are content digests.
    git_warned: bool,
}

/// Loads actual state from the store into `live` (so tokens work before the first pass), and
/// starts the loop. It runs until `stop` is cancelled.
pub async fn start(
    options: Options,
    store: Store,
    live: Arc<Live>,
    stop: CancellationToken,
) -> Result<(Controller, tokio::task::JoinHandle<()>), StoreError> {
    let actual = resources::load_all(&store).await?;
    live.tokens
        .apply(db::tokens::load_records(&store).await?, &[]);
    if let (Some(applied), Some(text)) = (
        actual.get(&(Kind::Config, CONFIG_NAME.to_owned())),
        resources::spec_of(&store, Kind::Config, CONFIG_NAME).await?,
    ) {
        if let Ok(Spec::Config(spec)) = serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|_| ())
            .and_then(|v| Spec::from_value(Kind::Config, &v).map_err(|_| ()))
        {
            live.config.store(Arc::new(ActiveConfig {
                spec: *spec,
                digest: Some(applied.digest),
            }));
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut r = Reconciler {
        root: options.root,
        checkout: options.checkout,
        set: ManifestSet::default(),
        actual,
        statuses: HashMap::new(),
        handlers: handlers::all(&live),
        store,
        live,
        prune_confirmed: options.confirm_prune,
        initialised: false,
        logged: HashSet::new(),
        last_run: None,
        git_warned: false,
    };
    let task = tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                request = rx.recv() => match request {
                    Some(request) => request,
                    None => break,
                },
            };
            r.handle(request).await;
        }
    });
    Ok((Controller { tx }, task))
}

impl Reconciler {
    async fn handle(&mut self, request: Request) {
        match request {
            Request::Reconcile { scope, reply } => {
                let report = self.reconcile(scope).await;
                if let Some(reply) = reply {
                    let _ = reply.send(report);
                }
            }
            Request::Write {
                edit,
                expected,
                context,
                reply,
            } => {
                let _ = reply.send(self.write(edit, expected, context).await);
            }
            Request::ConfirmPrune { reply } => {
                self.prune_confirmed = true;
                let report = self.reconcile(Scope::Full).await;
                let _ = reply.send(report);
            }
            Request::Resources { kind, reply } => {
                let desired = Desired::of(&self.set, false);
                let mut found: Vec<_> = desired
                    .resources
                    .values()
                    .filter(|r| r.kind == kind)
                    .map(|r| {
                        let status = self.statuses.get(&(kind, r.name().to_owned())).cloned();
                        (Resource::clone(r), status)
                    })
                    .collect();
                found.sort_by(|a, b| a.0.name().cmp(b.0.name()));
                let _ = reply.send(found);
            }
            Request::Statuses { reply } => {
                let mut all: Vec<_> = self.statuses.values().cloned().collect();
                all.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
                let _ = reply.send(all);
            }
        }
    }

    async fn write(
        &mut self,
        edit: Edit,
        expected: Option<Digest>,
        context: WriteContext,
    ) -> Result<WriteOutcome, WriteError> {
        // Bring the file in question up to date first, so the edit applies to what is on disk.
        let (kind, name) = edit.target();
        let (kind, name) = (kind, name.to_owned());
        if let Some(r) = self.set.find(kind, &name) {
            let file = r.origin.file.to_path_buf();
            self.reconcile(Scope::file(file)).await;
        }
        let prepared = write::prepare(&self.root, &self.set, &edit, expected.as_ref())?;
        let root = self.root.clone();
        let git = self.live.config.load().spec.git.clone();
        let checkout = self.checkout.clone();
        let prepared = tokio::task::spawn_blocking(move || match checkout {
            Some(checkout) => write_and_push(&root, prepared, git, &context, &checkout),
            None => write_and_commit(&root, prepared, git, &context),
        })
        .await
        .map_err(|e| WriteError::Io {
            path: PathBuf::new(),
            source: io::Error::other(e),
        })??;
        // A rebased push brought others' commits along: look at everything then.
        let scope = match self.checkout {
            Some(_) => Scope::Full,
            None => Scope::file(prepared.path.clone()),
        };
        let report = self.reconcile(scope).await;
        Ok(WriteOutcome {
            digest: self.set.find(kind, &name).map(|r| r.digest),
            path: prepared.path,
            report,
        })
    }

    /// Paths the pass must look at, with the digests we know for them.
    fn known_digests(&self, scope: &Scope) -> HashMap<PathBuf, Digest> {
        match scope {
            Scope::Full => self
                .set
                .files
                .iter()
                .map(|(p, f)| (p.clone(), f.digest))
                .collect(),
            Scope::Paths { files, dirs } => {
                let mut known = HashMap::new();
                for p in files {
                    if let Some(f) = self.set.files.get(p) {
                        known.insert(p.clone(), f.digest);
                    }
                }
                for d in dirs {
                    for (p, f) in self.set.files.range(d.clone()..) {
                        if !p.starts_with(d) {
                            break;
                        }
                        known.insert(p.clone(), f.digest);
                    }
                }
                known
            }
        }
    }

    async fn reconcile(&mut self, scope: Scope) -> Report {
        let started = Instant::now();
        self.live
            .reconcile_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let full = scope == Scope::Full;
        let known = self.known_digests(&scope);
        let root = self.root.clone();
        let read = tokio::task::spawn_blocking(move || read_changes(&root, &scope, &known)).await;
        let changes = match read {
            Ok(Ok(changes)) => changes,
            Ok(Err(e)) => return self.read_failed(format!("cannot read the manifests: {e}")),
            Err(e) => return self.read_failed(format!("manifest reader failed: {e}")),
        };
        if changes.is_empty() && self.initialised && !full {
            return Report {
                revision: self.live.summary.load().revision.clone(),
                ..Report::default()
            };
        }
        let mut changed = Vec::with_capacity(changes.len());
        for (path, load) in changes {
            self.merge(&path, load);
            changed.push(path);
        }
        let mut report = self.converge(full, &changed).await;
        report.changed_files = changed.len();
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.last_run = Some((OffsetDateTime::now_utc(), started.elapsed()));
        self.live.metrics.reconciled(started.elapsed());
        self.publish_summary(&report);
        self.live.passes.send_modify(|n| *n += 1);
        report
    }

    fn read_failed(&mut self, message: String) -> Report {
        tracing::error!(manifests = %self.root.display(), "{message}");
        let mut summary = Summary::clone(&self.live.summary.load());
        summary
            .errors
            .retain(|d| !d.file.as_os_str().is_empty() || !d.message.starts_with("cannot read"));
        summary.errors.push(Diagnostic::global(message));
        publish(&self.live, summary);
        Report {
            errors: 1,
            ..Report::default()
        }
    }

    /// Takes a file's new content into the desired state; an invalid file keeps its last good
    /// resources in force.
    fn merge(&mut self, path: &Path, load: Option<FileLoad>) {
        match load {
            None => {
                self.set.files.remove(path);
            }
            Some(mut load) => {
                if !load.diagnostics.is_empty() {
                    load.resources = self
                        .set
                        .files
                        .get(path)
                        .map(|old| old.resources.clone())
                        .unwrap_or_default();
                    // Invalid documents that still name themselves must not be pruned either.
                    for r in &load.resources {
                        load.claimed.push((r.kind, r.name().to_owned()));
                    }
                }
                self.set.files.insert(path.to_path_buf(), load);
            }
        }
    }

    fn handler(&self, kind: Kind) -> &Arc<dyn Handler> {
        // `handlers::all` covers every kind.
        self.handlers
            .iter()
            .find(|h| h.kind() == kind)
            .unwrap_or(&self.handlers[0])
    }

    async fn converge(&mut self, full: bool, changed: &[PathBuf]) -> Report {
        let now = OffsetDateTime::now_utc();
        let revision = match self.git_revision().await {
            Some(revision) => revision,
            None => short_digest(&self.set.revision()),
        };
        let shared_revision: Arc<str> = Arc::from(revision.as_str());
        let desired = Desired::of(&self.set, true);
        let mut guards = Guards {
            prune_confirmed: self.prune_confirmed,
            ..Guards::default()
        };
        for (path, file) in &self.set.files {
            guards
                .claimed
                .extend(file.claimed.iter().map(|(k, n)| (*k, n.as_str())));
            if file.unreadable && guards.hold.is_none() {
                guards.hold = Some(Hold::Unreadable(path.clone()));
            }
        }
        let plan = plan::plan(&desired.resources, &self.actual, guards);

        // Apply every step in one transaction; handlers stage runtime changes until commit.
        let mut results: Vec<(Step, Result<Outcome, ApplyError>, Option<Applied>)> = Vec::new();
        // Full passes also ask handlers to repair drift of resources that did not change.
        let mut resynced: Vec<((Kind, String), Result<Outcome, ApplyError>)> = Vec::new();
        match self.store.pool().begin().await {
            Err(e) => {
                for step in &plan.steps {
                    results.push((
                        step.clone(),
                        Err(ApplyError::new("StoreError", e.to_string())),
                        None,
                    ));
                }
            }
            Ok(mut tx) => {
                let applied_at = now.format(&Rfc3339).unwrap_or_default();
                let mut rows = Vec::new();
                for step in &plan.steps {
                    let handler = self.handler(step.kind).clone();
                    let (result, applied) = match step.action {
                        Action::Delete => {
                            let mut result = handler
                                .delete(&mut tx, &step.name)
                                .await
                                .map(|()| Outcome::applied("deleted"));
                            if result.is_ok() {
                                if let Err(e) =
                                    resources::delete(&mut tx, step.kind, &step.name).await
                                {
                                    result = Err(e.into());
                                }
                            }
                            (result, None)
                        }
                        Action::Create | Action::Update => {
                            let r = desired.resources[&(step.kind, step.name.as_str())];
                            let result = handler.apply(&mut tx, r).await;
                            let applied = Applied {
                                digest: r.digest,
                                revision: shared_revision.clone(),
                            };
                            if result.is_ok() {
                                rows.push(resources::Row {
                                    kind: step.kind,
                                    name: &step.name,
                                    digest: r.digest,
                                    spec: serde_json::to_string(&r.spec).unwrap_or_default(),
                                });
                            }
                            (result, Some(applied))
                        }
                    };
                    results.push((step.clone(), result, applied));
                }
                if full {
                    let planned: HashSet<(Kind, &str)> = plan
                        .steps
                        .iter()
                        .map(|s| (s.kind, s.name.as_str()))
                        .collect();
                    for (&(kind, name), r) in &desired.resources {
                        let key = (kind, name.to_owned());
                        if planned.contains(&(kind, name))
                            || self.actual.get(&key).is_none_or(|a| a.digest != r.digest)
                        {
                            continue;
                        }
                        match self.handler(kind).clone().resync(&mut tx, r).await {
                            Ok(None) => {}
                            Ok(Some(outcome)) => resynced.push((key, Ok(outcome))),
                            Err(e) => resynced.push((key, Err(e))),
                        }
                    }
                }
                // One multi-row statement per chunk: at start-up this is thousands of rows.
                let recorded = resources::upsert_many(&mut tx, &rows, &revision, &applied_at).await;
                drop(rows);
                let committed = match recorded {
                    Ok(()) => tx.commit().await.map_err(StoreError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = committed {
                    for h in &self.handlers {
                        h.discard();
                    }
                    for (_, result, _) in &mut results {
                        if result.is_ok() {
                            *result = Err(ApplyError::new("StoreError", e.to_string()));
                        }
                    }
                } else {
                    for h in &self.handlers {
                        h.publish();
                    }
                }
            }
        }

        // Statuses of resources whose files changed (all of them on a full pass).
        let changed: HashSet<&Path> = changed.iter().map(PathBuf::as_path).collect();
        for (path, file) in &self.set.files {
            if !full && !changed.contains(path.as_path()) {
                continue;
            }
            for r in &file.resources {
                let key = (r.kind, r.name());
                if !desired
                    .resources
                    .get(&key)
                    .is_some_and(|d| std::ptr::eq(*d, r))
                {
                    continue;
                }
                let status = self
                    .statuses
                    .entry((r.kind, r.name().to_owned()))
                    .or_insert_with(|| ResourceStatus {
                        kind: r.kind,
                        name: r.name().to_owned(),
                        file: r.origin.file.clone(),
                        line: r.origin.line,
                        ready: false,
                        reason: "Pending".into(),
                        message: String::new(),
                        applied_revision: None,
                        last_transition_time: now,
                        applied_outcome: None,
                    });
                status.file = r.origin.file.clone();
                status.line = r.origin.line;
                if let Some(d) = file.diagnostics.first() {
                    status.set(
                        false,
                        "InvalidManifest",
                        format!("{}; the last valid version stays in force", d),
                        now,
                    );
                } else if let Some((reason, message)) = status.applied_outcome.clone() {
                    status.set(true, reason, message, now);
                } else if let Some(applied) = self.actual.get(&(r.kind, r.name().to_owned())) {
                    // Applied by an earlier server run and unchanged since.
                    status
                        .applied_revision
                        .get_or_insert_with(|| applied.revision.clone());
                    status.set(true, "Applied", "unchanged since the last run".into(), now);
                }
            }
        }

        let mut report = Report {
            revision: revision.clone(),
            held: plan.held.len(),
            ..Report::default()
        };
        for (key, result) in resynced {
            if let Some(status) = self.statuses.get_mut(&key) {
                match result {
                    Ok(outcome) => {
                        tracing::info!(kind = %key.0, name = %key.1, "{}: {}", outcome.reason, outcome.message);
                        self.live
                            .metrics
                            .drift_repairs
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        report.repaired.push(Repaired {
                            kind: key.0,
                            name: key.1.clone(),
                            reason: outcome.reason.to_owned(),
                            message: outcome.message.clone(),
                        });
                        status.set(true, outcome.reason, outcome.message, now);
                    }
                    Err(e) => status.set(false, e.reason, e.message, now),
                }
            }
        }
        for (step, result, applied) in results {
            let key = (step.kind, step.name.clone());
            match (step.action, result) {
                (Action::Delete, Ok(_)) => {
                    self.actual.remove(&key);
                    self.statuses.remove(&key);
                    tracing::info!(kind = %step.kind, name = %step.name, "deleted");
                    report.applied.push(step);
                }
                (_, Ok(outcome)) => {
                    if let Some(applied) = applied {
                        self.actual.insert(key.clone(), applied);
                    }
                    if let Some(status) = self.statuses.get_mut(&key) {
                        status.applied_revision = Some(shared_revision.clone());
                        status.applied_outcome = Some((outcome.reason, outcome.message.clone()));
                        status.set(true, outcome.reason, outcome.message, now);
                    }
                    tracing::debug!(kind = %step.kind, name = %step.name, action = ?step.action, "applied");
                    report.applied.push(step);
                }
                (_, Err(e)) => {
                    if let Some(status) = self.statuses.get_mut(&key) {
                        status.set(false, e.reason, e.message.clone(), now);
                    }
                    report.failed.push(FailedStep {
                        step,
                        reason: e.reason.to_owned(),
                        message: e.message,
                    });
                }
            }
        }
        for step in &plan.held {
            if let Some(status) = self.statuses.get_mut(&(step.kind, step.name.clone())) {
                status.set(
                    false,
                    "PruneHeld",
                    "no longer declared, but the prune guard holds the delete".into(),
                    now,
                );
            }
        }

        // (issue 12) A resource that is no longer declared and was never applied (its apply
        // failed, e.g. DuplicateDigest) gets no delete step, so nothing above drops its status:
        // drop it here, or its error stays in `/status` for ever. Applied resources keep theirs
        // until their delete succeeds (or while the prune guard holds it).
        self.statuses.retain(|key, _| {
            desired.resources.contains_key(&(key.0, key.1.as_str()))
                || self.actual.contains_key(key)
        });
        let mut errors: Vec<Diagnostic> = self.set.file_diagnostics().cloned().collect();
        errors.extend(desired.diagnostics);
        for s in self.statuses.values() {
            if !s.ready && !matches!(s.reason.as_str(), "InvalidManifest" | "PruneHeld") {
                errors.push(Diagnostic {
                    file: s.file.to_path_buf(),
                    line: s.line,
                    column: 1,
                    kind: Some(s.kind),
                    name: Some(s.name.clone()),
                    pointer: String::new(),
                    message: format!("{}: {}", s.reason, s.message),
                });
            }
        }
        if let Some(hold) = &plan.hold {
            errors.push(Diagnostic::global(prune_message(hold, plan.held.len())));
        }
        if let Some(pull) = self.live.pull_error.load_full() {
            errors.push(Diagnostic::global(format!(
                "pull mode: cannot update from the remote, reconciling the last fetched commit: {pull}"
            )));
        }
        if plan.hold.is_none() {
            // A confirmation is good for one pass that had something to prune.
            self.prune_confirmed = false;
        }
        report.errors = errors.len();
        self.report_new_errors(&errors).await;
        let counts = self.counts();
        let summary = Summary {
            initialised: true,
            last_run_at: Some(now),
            last_duration_ms: 0,
            revision,
            files: self.set.files.len(),
            resources: counts,
            prune_blocked: plan.held.len(),
            errors,
            rendered: String::new(),
        };
        publish(&self.live, summary);
        self.initialised = true;
        if !report.applied.is_empty() || !report.failed.is_empty() {
            tracing::info!(
                revision = %report.revision,
                applied = report.applied.len(),
                failed = report.failed.len(),
                errors = report.errors,
                "reconciled"
            );
        }
        report
    }

    /// The git revision of the manifests, once per pass; `None` outside a git working copy
    /// (or without git), where the content digest is the revision.
    async fn git_revision(&mut self) -> Option<String> {
        let root = self.root.clone();
        match tokio::task::spawn_blocking(move || git::revision(&root)).await {
            Ok(Ok(revision)) => revision,
            Ok(Err(e)) => {
                if !self.git_warned {
                    self.git_warned = true;
                    tracing::warn!("{e}; manifest revisions are content digests");
                }
                None
            }
            Err(_) => None,
        }
    }

    fn counts(&self) -> std::collections::BTreeMap<Kind, KindCount> {
        let mut counts: std::collections::BTreeMap<Kind, KindCount> = Kind::ALL
            .iter()
            .map(|k| (*k, KindCount::default()))
            .collect();
        for s in self.statuses.values() {
            let c = counts.entry(s.kind).or_default();
            c.total += 1;
            c.ready += usize::from(s.ready);
        }
        counts
    }

    fn publish_summary(&mut self, report: &Report) {
        let mut summary = Summary::clone(&self.live.summary.load());
        summary.last_duration_ms = report.duration_ms;
        publish(&self.live, summary);
    }

    /// Logs problems not seen in the previous pass and raises a `system.error` event for each,
    /// so subscribers hear of a broken manifest or a held prune once, not on every resync.
    async fn report_new_errors(&mut self, errors: &[Diagnostic]) {
        let mut current = HashSet::with_capacity(errors.len());
        let mut fresh = Vec::new();
        for d in errors {
            let line = d.display_in(Path::new("")).to_string();
            if !self.logged.contains(&line) {
                tracing::warn!("{}", d.display_in(&self.root));
                fresh.push(events::system_error(
                    "manifests",
                    &line,
                    serde_json::to_value(d).unwrap_or_default(),
                ));
            }
            current.insert(line);
        }
        self.logged = current;
        if fresh.is_empty() {
            return;
        }
        let written = async {
            let mut tx = self.store.pool().begin().await?;
            for event in &fresh {
                outbox::insert(&mut tx, event).await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
        };
        match written.await {
            Ok(()) => self.live.outbox.notify_one(),
            Err(e) => tracing::error!("cannot record system.error events: {e}"),
        }
    }
}

/// Renders and publishes a summary.
fn publish(live: &Live, mut summary: Summary) {
    summary.render();
    live.summary.store(Arc::new(summary));
}

fn prune_message(hold: &Hold, n: usize) -> String {
    match hold {
        Hold::EverythingGone => format!(
            "prune guard: every manifest disappeared at once, so the {n} resource(s) they declared were NOT deleted; \
             restore the manifests, or confirm the deletion with `POST /api/v1/reconcile` {{\"confirm_prune\": true}} \
             or `claw serve --confirm-prune`"
        ),
        Hold::Unreadable(path) => format!(
            "prune guard: {} cannot be parsed, so {n} delete(s) wait until it is fixed",
            path.display()
        ),
    }
}

/// Pull mode: writes a prepared edit, commits it (whatever `git.auto_commit` says) and pushes
/// it, rebasing onto what others pushed meanwhile. When the push cannot be made the checkout
/// is reset to where it was, so nothing changes locally.
fn write_and_push(
    root: &Path,
    prepared: write::PreparedWrite,
    git_config: GitConfig,
    context: &WriteContext,
    checkout: &crate::pull::Checkout,
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
        crate::pull::PUSH_ATTEMPTS,
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
fn write_and_commit(
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

/// Reads the files a pass must look at and returns those whose content changed: `Some` with
/// the new parse, `None` for a file that is gone.
fn read_changes(
    root: &Path,
    scope: &Scope,
    known: &HashMap<PathBuf, Digest>,
) -> io::Result<Vec<(PathBuf, Option<FileLoad>)>> {
    let mut candidates: BTreeSet<PathBuf> = known.keys().cloned().collect();
    match scope {
        Scope::Full => match load::scan(root) {
            Ok(found) => candidates.extend(found),
            // A vanished root means every manifest is gone; the prune guard decides.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        },
        Scope::Paths { files, dirs } => {
            candidates.extend(files.iter().filter(|p| load::is_manifest_file(p)).cloned());
            for dir in dirs {
                if root.join(dir).is_dir() {
                    candidates.extend(
                        load::scan(&root.join(dir))?
                            .into_iter()
                            .map(|p| dir.join(p)),
                    );
                }
            }
        }
    }
    let mut out = Vec::new();
    for rel in candidates {
        match load::read_file(root, &rel) {
            Ok(Some(text)) => {
                if known.get(&rel) != Some(&digest_bytes(text.as_bytes())) {
                    out.push((rel.clone(), Some(load::parse_file(&rel, &text))));
                }
            }
            Ok(None) => {
                if known.contains_key(&rel) {
                    out.push((rel, None));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let load = load::load_path(root, &rel)?;
                if load.as_ref().map(|l| l.digest) != known.get(&rel).copied() {
                    out.push((rel, load));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
