//! The reconcile loop: owns the desired state, runs passes, takes write-backs, and takes the
//! results of slow work back from the scheduler. Each request is fast; nothing here waits on
//! the network or a process (see [`super::handler`] for where slow work goes).

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::apply::{self, StepResult};
use super::handler::{Handler, Job};
use super::index::{Index, Key, KeyHasher, KeyMap, KeySet, View};
use super::plan::{self, Action, Decision, Hold, Step};
use super::read;
use super::record::{self, Book, SummaryParts};
use super::revision::GitView;
use super::scheduler::{Done, Ended};
use super::status::Messages;
use super::work::{Finished, Purpose, Work};
use super::{handlers, Controller, Request, Scope, WriteContext};
use crate::gitops::{pull::Checkout, writeback};
use crate::live::{ActiveConfig, Live};
use crate::manifest::load::FileLoad;
use crate::manifest::rules::{self, CONFIG_NAME};
use crate::manifest::write::{self, Edit, WriteError};
use crate::manifest::{short_digest, Digest, Kind, ManifestSet, Spec};
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
    pub checkout: Option<Checkout>,
}

struct Reconciler {
    root: PathBuf,
    checkout: Option<Checkout>,
    set: ManifestSet,
    index: Index,
    actual: KeyMap<Applied>,
    handlers: Vec<Arc<dyn Handler>>,
    store: Store,
    live: Arc<Live>,
    book: Book,
    /// Status messages, one copy per distinct text.
    messages: Messages,
    work: Work,
    /// Resources whose fast apply failed: planned again on every pass until they succeed.
    failed: KeySet,
    /// Deletes the prune guard holds back.
    held: BTreeSet<Key>,
    hold: Option<Hold>,
    prune_confirmed: bool,
    initialised: bool,
    revision: String,
    last_duration_ms: u64,
    git: GitView,
    /// This replica leads and has written the shared rows since it took the lead.
    rows_taken: bool,
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
        actual.get(&(Kind::Config, Arc::from(CONFIG_NAME))),
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
    let (work, mut done) = Work::new(tx.clone());
    let mut r = Reconciler {
        root: options.root,
        checkout: options.checkout,
        set: ManifestSet::default(),
        index: Index::default(),
        actual,
        handlers: handlers::all(&live, &store),
        store: store.clone(),
        live: live.clone(),
        book: Book::default(),
        messages: Messages::default(),
        work,
        failed: KeySet::default(),
        held: BTreeSet::new(),
        hold: None,
        prune_confirmed: options.confirm_prune,
        initialised: false,
        revision: String::new(),
        last_duration_ms: 0,
        git: GitView::default(),
        rows_taken: false,
    };
    let mut leadership = r.live.cluster.leadership();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Ok(()) = leadership.changed() => {
                    let leads = *leadership.borrow_and_update();
                    if !leads {
                        r.rows_taken = false;
                    } else if !r.rows_taken {
                        r.take_over().await;
                    }
                }
                request = rx.recv() => match request {
                    Some(request) => r.handle(request).await,
                    None => break,
                },
                Some(first) = done.recv() => {
                    // Take every result that is ready, then publish once.
                    let mut batch = vec![first];
                    while let Ok(more) = done.try_recv() {
                        batch.push(more);
                    }
                    r.finished(batch).await;
                }
            }
        }
        r.work.cancel_all();
    });
    Ok((Controller { tx, store, live }, task))
}

impl Reconciler {
    /// This replica now leads: the shared rows become its to write. Whatever the previous
    /// leader left (it may have died before applying the latest revision, or none led) is
    /// compared with the desired state in a full pass, which writes every difference at once.
    async fn take_over(&mut self) {
        self.rows_taken = true;
        match resources::load_all(&self.store).await {
            Ok(rows) => self.actual = rows,
            Err(e) => {
                tracing::warn!("taking over the shared resource rows: cannot read them ({e}); every declared resource is written again");
                self.actual.clear();
            }
        }
        let (report, _) = self.reconcile(Scope::Full).await;
        tracing::info!(
            revision = %report.revision,
            written = report.applied.len(),
            "this replica leads: the resource rows are its to write"
        );
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Reconcile { scope, reply, wait } => {
                let (report, jobs) = self.reconcile(scope).await;
                if let Some(reply) = reply {
                    self.work.reply(report, jobs, wait, reply);
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
                let (report, jobs) = self.reconcile(Scope::Full).await;
                self.work.reply(report, jobs, true, reply);
            }
            Request::TakeOver { reply } => {
                if self.live.cluster.is_leader() && !self.rows_taken {
                    self.take_over().await;
                }
                let _ = reply.send(());
            }
            Request::Retry { key, generation } => self.retry(key, generation).await,
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
        let key = (kind, Arc::from(name));
        if let Some(r) = self.index.desired(&key) {
            let file = r.origin.file.to_path_buf();
            self.reconcile(Scope::file(file)).await;
        }
        let view = View {
            set: &self.set,
            index: &self.index,
        };
        let prepared = write::prepare(&self.root, &view, &edit, expected.as_ref())?;
        let root = self.root.clone();
        let git = self.live.config.load().spec.git.clone();
        let checkout = self.checkout.clone();
        let pushed = checkout.is_some();
        let prepared = tokio::task::spawn_blocking(move || match checkout {
            Some(checkout) => writeback::write_and_push(&root, prepared, git, &context, &checkout),
            None => writeback::write_and_commit(&root, prepared, git, &context),
        })
        .await
        .map_err(|e| WriteError::Io {
            path: PathBuf::new(),
            source: io::Error::other(e),
        })??;
        // A commit moved HEAD and may leave other tracked files dirty: ask git about the whole
        // root once (write-backs are rare; watcher passes ask only about their files).
        self.git.invalidate();
        if pushed {
            // Pull mode: the other replicas fetch the new revision now, not at their interval.
            let cluster = &self.live.cluster;
            cluster.publish(crate::cluster::Notice::Revision {
                from: cluster.id().to_owned(),
            });
        }
        // A rebased push brought others' commits along: look at everything then.
        let scope = match self.checkout {
            Some(_) => Scope::Full,
            None => Scope::file(prepared.path.clone()),
        };
        let (report, _) = self.reconcile(scope).await;
        Ok(WriteOutcome {
            digest: self.index.desired(&key).map(|r| r.digest),
            path: prepared.path,
            report,
        })
    }

    /// One pass: read, index, plan, apply, record, then hand slow work to the scheduler.
    /// Returns the report and the ids of the slow jobs it started.
    async fn reconcile(&mut self, scope: Scope) -> (Report, Vec<u64>) {
        let started = Instant::now();
        self.live
            .reconcile_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let full = scope == Scope::Full;
        let known = read::known_digests(&self.set, &scope);
        let root = self.root.clone();
        let changes =
            match tokio::task::spawn_blocking(move || read::read_changes(&root, &scope, &known))
                .await
            {
                Ok(Ok(changes)) => changes,
                Ok(Err(e)) => {
                    return (
                        self.read_failed(format!("cannot read the manifests: {e}")),
                        Vec::new(),
                    )
                }
                Err(e) => {
                    return (
                        self.read_failed(format!("manifest reader failed: {e}")),
                        Vec::new(),
                    )
                }
            };
        if changes.is_empty() && self.initialised && !full {
            let report = Report {
                revision: self.revision.clone(),
                ..Report::default()
            };
            return (report, Vec::new());
        }
        let changed_files = changes.len();
        let mut touched = KeySet::default();
        let mut paths = Vec::with_capacity(changes.len());
        if self.set.files.is_empty() {
            // Start-up: build the set in one go from the sorted changes (not one tree insert,
            // a dozen path comparisons, per file), then index every file.
            paths.extend(changes.iter().map(|(p, _)| p.clone()));
            self.set.files = changes
                .into_iter()
                .filter_map(|(path, load)| {
                    let load = first_load(load?);
                    Some((load.shared_path(&path), load))
                })
                .collect();
            for (path, load) in &self.set.files {
                touched.extend(self.index.update(&self.set, path, None, Some(load)));
            }
        } else {
            for (path, load) in changes {
                paths.push(path.clone());
                touched.extend(self.merge(path, load));
            }
        }
        self.revision = match self.git.revision(&self.root, full, paths).await {
            Some(revision) => revision,
            None => short_digest(&self.index.revision()),
        };
        let (mut report, jobs) = self.converge(full, touched).await;
        report.changed_files = changed_files;
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.last_duration_ms = report.duration_ms;
        self.live.metrics.reconciled(started.elapsed());
        report.errors = self.publish().await;
        if !report.applied.is_empty() || !report.failed.is_empty() {
            tracing::info!(
                revision = %report.revision,
                applied = report.applied.len(),
                failed = report.failed.len(),
                errors = report.errors,
                "reconciled"
            );
        }
        self.live.passes.send_modify(|n| *n += 1);
        (report, jobs)
    }

    fn read_failed(&mut self, message: String) -> Report {
        tracing::error!(manifests = %self.root.display(), "{message}");
        record::publish_read_error(&self.live, message);
        Report {
            errors: 1,
            ..Report::default()
        }
    }

    /// Takes a file's new content into the desired state and returns the names it touched;
    /// an invalid file keeps its last good resources in force.
    fn merge(&mut self, path: PathBuf, load: Option<FileLoad>) -> KeySet {
        let old = match load {
            None => self.set.files.remove(path.as_path()),
            Some(mut load) => {
                if !load.diagnostics.is_empty() {
                    load.resources = self
                        .set
                        .files
                        .get(path.as_path())
                        .map(|old| old.resources.clone())
                        .unwrap_or_default();
                    // Invalid documents that still name themselves must not be pruned either.
                    for r in &load.resources {
                        load.claimed.push((r.kind, r.metadata.name.clone()));
                    }
                }
                self.set.files.insert(load.shared_path(&path), load)
            }
        };
        let new = self.set.files.get(path.as_path());
        self.index.update(&self.set, &path, old.as_ref(), new)
    }

    /// Plans the touched names (every name on a full pass), applies, records, schedules.
    async fn converge(&mut self, full: bool, mut touched: KeySet) -> (Report, Vec<u64>) {
        let now = OffsetDateTime::now_utc();
        let revision: Arc<str> = Arc::from(self.revision.as_str());
        if full {
            touched.extend(self.index.admitted().cloned());
            touched.extend(self.actual.keys().cloned());
        }
        touched.extend(self.failed.iter().cloned());
        touched.extend(self.held.iter().cloned());

        let (steps, held) = self.plan(&touched);
        // Borrowed from `touched` (every step is of a touched name): a first pass on 100,000
        // resources would otherwise hold another copy of every name.
        let planned: HashSet<&Key, KeyHasher> = steps
            .iter()
            .filter_map(|s| touched.get(&(s.kind, s.name.clone())))
            .collect();
        let with_specs = steps
            .into_iter()
            .map(|step| {
                let key = (step.kind, step.name.clone());
                let desired = self.index.desired(&key).map(|r| &**r);
                (step, desired)
            })
            .collect();
        // With replicas only the leader writes the rows (see `apply`).
        let writes_rows = self.live.cluster.is_leader();
        let results = apply::apply(
            &self.store,
            &self.handlers,
            with_specs,
            &revision,
            now,
            writes_rows,
        )
        .await;
        let cluster = &self.live.cluster;
        if writes_rows && cluster.is_clustered() && results.iter().any(|r| r.result.is_ok()) {
            // A follower's write-back may wait for these rows (`Controller::write`).
            cluster.publish(crate::cluster::Notice::Applied {
                from: cluster.id().to_owned(),
            });
        }

        let mut report = Report {
            revision: self.revision.clone(),
            held: held.len(),
            ..Report::default()
        };
        let mut jobs = self.record_results(results, &revision, now, &mut report);
        self.record_unplanned(&touched, &planned, now);
        if full {
            jobs.extend(self.resync_unchanged(&touched, &planned));
        }
        self.record_held(held, now);
        self.initialised = true;
        (report, jobs)
    }

    /// Decides each touched name: the steps to apply (creates and updates with deletes first)
    /// and the deletes the prune guard holds back.
    fn plan(&mut self, touched: &KeySet) -> (Vec<Step>, Vec<Step>) {
        self.hold = match self.index.unreadable() {
            Some(path) => Some(Hold::Unreadable(path.clone())),
            None if self.index.is_empty() && !self.actual.is_empty() && !self.prune_confirmed => {
                Some(Hold::EverythingGone)
            }
            None => None,
        };
        let (mut steps, mut held) = (Vec::new(), Vec::new());
        for key in touched {
            let decision = plan::decide(
                key.0,
                &key.1,
                self.index.desired(key).map(|r| &**r),
                self.actual.get(key),
                self.index.claimed(key),
                self.hold.is_some(),
            );
            match decision {
                Decision::Do(step) => steps.push(step),
                Decision::Held(step) => held.push(step),
                Decision::Nothing => {}
            }
        }
        steps.sort_by(|a, b| (a.action, a.kind, &a.name).cmp(&(b.action, b.kind, &b.name)));
        held.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        (steps, held)
    }

    /// Records what each applied step came to, and hands slow work to the scheduler.
    fn record_results(
        &mut self,
        results: Vec<StepResult>,
        revision: &Arc<str>,
        now: OffsetDateTime,
        report: &mut Report,
    ) -> Vec<u64> {
        let mut jobs = Vec::new();
        for StepResult {
            step,
            result,
            applied,
        } in results
        {
            let key = (step.kind, step.name.clone());
            match (step.action, result) {
                (Action::Delete, Ok(_)) => {
                    self.actual.remove(&key);
                    self.failed.remove(&key);
                    self.work.settled(&key);
                    self.book.remove(&self.live.resources, &key);
                    self.live.resources.set_resource(key.0, &key.1, None);
                    tracing::info!(kind = %step.kind, name = %step.name, "deleted");
                    let job = Job::Delete(key.1.to_string());
                    jobs.extend(self.work.schedule(
                        &self.handlers,
                        &key,
                        job,
                        Purpose::Delete,
                        None,
                    ));
                    report.applied.push(step);
                }
                (_, Ok(outcome)) => {
                    self.failed.remove(&key);
                    self.work.settled(&key);
                    if let Some(applied) = applied {
                        self.actual.insert(key.clone(), applied);
                    }
                    let ready = outcome.ready();
                    let message = self.messages.intern(outcome.message);
                    self.set_status(&key, now, |s| {
                        s.applied_revision = Some(revision.clone());
                        if ready {
                            s.applied_outcome = Some((outcome.reason, message.clone()));
                        }
                        s.set(ready, outcome.reason, message, now);
                    });
                    if let (false, Some(r)) = (ready, self.index.desired(&key)) {
                        let (job, generation) = (Job::Apply(r.clone()), Some(r.digest));
                        jobs.extend(self.work.schedule(
                            &self.handlers,
                            &key,
                            job,
                            Purpose::Apply,
                            generation,
                        ));
                    }
                    tracing::debug!(kind = %step.kind, name = %step.name, action = ?step.action, "applied");
                    report.applied.push(step);
                }
                (_, Err(e)) => {
                    self.failed.insert(key.clone());
                    self.set_status(&key, now, |s| {
                        s.set(false, e.reason, e.message.clone(), now)
                    });
                    report.failed.push(FailedStep {
                        step,
                        reason: e.reason.to_owned(),
                        message: e.message,
                    });
                }
            }
        }
        jobs
    }

    /// Statuses of the touched names that needed no step: where they are declared now, and
    /// whether their file is valid (an invalid file keeps the last good version in force).
    fn record_unplanned(
        &mut self,
        touched: &KeySet,
        planned: &HashSet<&Key, KeyHasher>,
        now: OffsetDateTime,
    ) {
        for key in touched {
            let Some(r) = self.index.desired(key) else {
                self.live.resources.set_resource(key.0, &key.1, None);
                if !self.actual.contains_key(key) && !self.index.claimed(key) {
                    // Neither declared nor applied (e.g. a failed apply whose file is gone):
                    // nothing is left to report about it.
                    self.failed.remove(key);
                    self.work.settled(key);
                    self.book.remove(&self.live.resources, key);
                }
                continue;
            };
            self.live
                .resources
                .set_resource(r.kind, &r.metadata.name, Some(r.clone()));
            if planned.contains(key) {
                continue;
            }
            let invalid = self
                .set
                .files
                .get(r.origin.file.as_ref())
                .and_then(|f| f.diagnostics.first())
                .map(|d| format!("{d}; the last valid version stays in force"));
            let unchanged = self.actual.get(key).map(|a| a.revision.clone());
            let origin = (r.origin.file.clone(), r.origin.line);
            self.book.update(
                &self.live.resources,
                key,
                Some((&origin.0, origin.1)),
                now,
                |s| {
                    // Slow work in flight, or a failure: the work's next result decides.
                    let pending_work = !s.ready
                        && !matches!(s.reason, "InvalidManifest" | "PruneHeld" | "Pending");
                    if let Some(message) = invalid {
                        s.set(false, "InvalidManifest", message, now);
                    } else if pending_work {
                    } else if let Some((reason, message)) = s.applied_outcome.clone() {
                        s.set(true, reason, message, now);
                    } else if let Some(revision) = unchanged {
                        // Applied by an earlier server run and unchanged since.
                        s.applied_revision.get_or_insert(revision);
                        s.set(true, "Applied", "unchanged since the last run", now);
                    }
                },
            );
        }
    }

    /// Full passes: slow work to repair drift of every applied, unchanged resource (or to try
    /// failing work again). `touched` holds every admitted name on a full pass. Returns the
    /// jobs started.
    fn resync_unchanged(
        &mut self,
        touched: &KeySet,
        planned: &HashSet<&Key, KeyHasher>,
    ) -> Vec<u64> {
        let mut jobs = Vec::new();
        for key in touched {
            if planned.contains(key) || self.work.busy(key) {
                continue;
            }
            let Some(r) = self.index.desired(key) else {
                continue;
            };
            if self.actual.get(key).is_none_or(|a| a.digest != r.digest) {
                continue;
            }
            let (r, digest) = (r.clone(), r.digest);
            let (job, purpose) = if self.work.failing(key) {
                (Job::Apply(r), Purpose::Apply)
            } else {
                (Job::Resync(r), Purpose::Resync)
            };
            jobs.extend(
                self.work
                    .schedule(&self.handlers, key, job, purpose, Some(digest)),
            );
        }
        jobs
    }

    /// Marks the deletes the prune guard holds; a confirmation is good for one pass that had
    /// something to prune.
    fn record_held(&mut self, held: Vec<Step>, now: OffsetDateTime) {
        self.held = held.into_iter().map(|s| (s.kind, s.name)).collect();
        for key in &self.held {
            self.book.update(&self.live.resources, key, None, now, |s| {
                s.set(
                    false,
                    "PruneHeld",
                    "no longer declared, but the prune guard holds the delete",
                    now,
                )
            });
        }
        if self.hold.is_none() {
            self.prune_confirmed = false;
        }
    }

    /// Changes the status of `key`, where its document is declared now.
    fn set_status(
        &mut self,
        key: &Key,
        now: OffsetDateTime,
        change: impl FnOnce(&mut super::status::ResourceStatus),
    ) {
        let origin = self
            .index
            .desired(key)
            .map(|r| (r.origin.file.clone(), r.origin.line));
        let origin = origin.as_ref().map(|(f, l)| (f, *l));
        self.book
            .update(&self.live.resources, key, origin, now, change);
    }

    /// Takes the results of slow jobs into the statuses, then publishes once.
    async fn finished(&mut self, batch: Vec<Done<Key, Finished>>) {
        let now = OffsetDateTime::now_utc();
        for done in batch {
            let repaired = match done.ended {
                Ended::Finished((purpose, generation, ref result)) => {
                    self.take_result(&done.key, purpose, generation, result.clone(), now)
                }
                Ended::Cancelled | Ended::Superseded => None,
            };
            self.work.ended(&done, repaired);
        }
        let errors = self.publish().await;
        self.work.release(errors);
        self.live.passes.send_modify(|n| *n += 1);
    }

    /// Records one slow job's result in its resource's status; returns what it repaired.
    fn take_result(
        &mut self,
        key: &Key,
        purpose: Purpose,
        generation: Option<Digest>,
        result: super::handler::WorkResult,
        now: OffsetDateTime,
    ) -> Option<Repaired> {
        if purpose == Purpose::Delete {
            if let Err(e) = result {
                tracing::warn!(kind = %key.0, name = %key.1, "removing failed: {e}");
            }
            return None;
        }
        // Work for a spec that is no longer the one declared is never published.
        let current = self.index.desired(key).map(|r| r.digest);
        let generation = generation.filter(|g| current == Some(*g))?;
        if !self.actual.contains_key(key) {
            return None;
        }
        match (purpose, result) {
            (_, Ok(None)) => None,
            (Purpose::Apply, Ok(Some(outcome))) => {
                self.work.settled(key);
                let message = self.messages.intern(outcome.message);
                self.book.update(&self.live.resources, key, None, now, |s| {
                    s.applied_outcome = Some((outcome.reason, message.clone()));
                    s.set(true, outcome.reason, message, now);
                });
                None
            }
            (_, Ok(Some(outcome))) => {
                tracing::info!(kind = %key.0, name = %key.1, "{}: {}", outcome.reason, outcome.message);
                self.live
                    .metrics
                    .drift_repairs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let repaired = Repaired {
                    kind: key.0,
                    name: key.1.to_string(),
                    reason: outcome.reason.to_owned(),
                    message: outcome.message.clone(),
                };
                self.book.update(&self.live.resources, key, None, now, |s| {
                    s.set(true, outcome.reason, outcome.message, now)
                });
                Some(repaired)
            }
            (_, Err(e)) => {
                self.book.update(&self.live.resources, key, None, now, |s| {
                    s.set(false, e.reason, e.message.clone(), now)
                });
                if purpose == Purpose::Apply {
                    self.work.requeue(key.clone(), generation);
                }
                None
            }
        }
    }

    /// Failed slow work's backoff has passed: try it again if the spec is still the same.
    async fn retry(&mut self, key: Key, generation: Digest) {
        if !self.work.failing(&key) || self.work.busy(&key) {
            return;
        }
        let Some(r) = self.index.desired(&key).filter(|r| r.digest == generation) else {
            return;
        };
        let job = Job::Apply(r.clone());
        self.work
            .schedule(&self.handlers, &key, job, Purpose::Apply, Some(generation));
    }

    /// Every current problem: files, rules, statuses, the prune guard, pull mode.
    fn errors(&self) -> Vec<crate::manifest::Diagnostic> {
        let mut errors: Vec<_> = self
            .index
            .invalid_files()
            .filter_map(|p| self.set.files.get(p.as_path()))
            .flat_map(|f| f.diagnostics.iter().cloned())
            .collect();
        errors.extend(self.index.rule_errors().cloned());
        if !self.index.has_config() {
            errors.push(rules::missing_config());
        }
        errors.extend(self.book.status_errors().cloned());
        if let Some(hold) = &self.hold {
            if !self.held.is_empty() {
                errors.push(crate::manifest::Diagnostic::global(prune_message(
                    hold,
                    self.held.len(),
                )));
            }
        }
        if let Some(pull) = self.live.pull_error.load_full() {
            errors.push(crate::manifest::Diagnostic::global(format!(
                "pull mode: cannot update from the remote, reconciling the last fetched commit: {pull}"
            )));
        }
        errors
    }

    /// Reports problems that are new (events first, so a reader of the summary finds them
    /// written), then publishes the summary; returns the number of problems in force.
    async fn publish(&mut self) -> usize {
        let errors = self.errors();
        self.book
            .report_new(&self.root, &errors, &self.store, &self.live)
            .await;
        let count = errors.len();
        record::publish(
            &self.live,
            &self.book,
            SummaryParts {
                revision: self.revision.clone(),
                files: self.set.files.len(),
                prune_blocked: self.held.len(),
                errors,
                last_duration_ms: self.last_duration_ms,
            },
        );
        count
    }
}

/// A file's load taken in when nothing was known before: as [`Reconciler::merge`] with no
/// last good version (an invalid file declares nothing, but still claims its names).
fn first_load(mut load: FileLoad) -> FileLoad {
    if !load.diagnostics.is_empty() {
        load.resources.clear();
    }
    load
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
