//! The Skill handler: installs each Skill into `<data>/skills/<name>` and removes it when its
//! manifest goes away (see [`crate::skills`]).
//!
//! Everything that touches the network or the disk is slow work ([`Handler::work`]): `apply`
//! only answers `Progressing`, and the scheduler then resolves, downloads and installs outside
//! any transaction, so a stalled archive host holds up nothing but this skill. A job that is
//! cancelled (the manifest changed meanwhile) stops before it swaps anything into place.
//! A failure makes that one skill not Ready with the reason (the reconciler raises
//! `system.error` for it and retries with backoff) and leaves the other skills and the
//! installed version alone. An unchanged manifest reuses the install when the resolved archive
//! digest is the same and the files are intact. Full passes verify installed files and
//! reinstall on drift (`DriftRepaired`), and reinstall skills of the default registry when the
//! Config names another (`RegistryChanged`). `skill.installed` / `skill.removed` are written
//! to the outbox in a short transaction of their own once the files are in place.
//!
//! `SKILL.md` must name the skill as the Skill resource does; a mismatch is refused
//! (`InvalidSkill`), so the directory name, the resource and the skill agree.

use std::sync::Arc;

use crate::store::Tx;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::config::ConfigHandler;
use crate::events::{self, EventType};
use crate::live::Live;
use crate::manifest::kinds::SkillSpec;
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::handler::{ApplyError, Handler, Job, Outcome, WorkResult};
use crate::reconcile::scheduler::JobFuture;
use crate::skills::install::{Installer, Record};
use crate::skills::registry::{self, Registry};
use crate::skills::source::{self, Context};
use crate::skills::SkillError;
use crate::store::{outbox, Store};

/// Converges installed skills.
pub struct SkillHandler {
    live: Arc<Live>,
    config: Arc<ConfigHandler>,
    installer: Installer,
    store: Store,
    /// The HTTP client and the egress policy it was built for; rebuilt when the Config's
    /// policy changes (building one loads the TLS roots, too slow to do per install).
    http: std::sync::Mutex<Option<(Arc<crate::egress::NetworkPolicy>, crate::egress::Client)>>,
}

impl From<SkillError> for ApplyError {
    fn from(e: SkillError) -> Self {
        ApplyError::new(e.reason(), e.to_string())
    }
}

impl SkillHandler {
    /// A handler installing under `live.data`, reading the registry from `config`.
    pub fn new(live: Arc<Live>, config: Arc<ConfigHandler>, store: Store) -> Self {
        let installer = Installer::new(&live.data);
        installer.clean_leftovers();
        SkillHandler {
            live,
            config,
            installer,
            store,
            http: std::sync::Mutex::new(None),
        }
    }

    /// Resolves, fetches and installs; returns the record and whether anything was installed
    /// (`false`: the same archive was installed and intact). `force` skips the reuse check.
    async fn install(
        &self,
        r: &Resource,
        spec: &SkillSpec,
        force: bool,
        cancel: &CancellationToken,
    ) -> Result<(Record, bool), SkillError> {
        let name = r.name();
        let config = self.config.current();
        // Under the egress policy of the Config in force.
        let http = {
            let policy = crate::egress::policy_of(&config);
            let mut cached = self.http.lock().unwrap_or_else(|e| e.into_inner());
            match &*cached {
                Some((p, client)) if *p == policy => client.clone(),
                _ => {
                    let client = registry::http_client(&config);
                    *cached = Some((policy, client.clone()));
                    client
                }
            }
        };
        let ctx = Context::new(
            &self.live.manifests,
            &r.origin.file,
            config.skills.registry.clone(),
            http.clone(),
        );
        let plan = tokio::select! {
            plan = source::resolve(name, spec, &ctx) => plan?,
            _ = cancel.cancelled() => return Err(cancelled()),
        };
        if !force {
            if let Some(installed) = self.installer.installed(name) {
                let same = installed.record.source == plan.describe()
                    && plan.archive_sha256().is_some()
                    && installed.record.archive_sha256.as_deref() == plan.archive_sha256();
                if same && self.verify(name).await?.is_none() {
                    return Ok((installed.record, false));
                }
            }
        }
        let staging = self.installer.staging()?;
        let fetched = tokio::select! {
            fetched = source::fetch(name, &spec.version, &plan, &staging.path, &http) => fetched?,
            _ = cancel.cancelled() => return Err(cancelled()),
        };
        // A newer spec is waiting: never swap this one into place.
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        let record = Record {
            name: name.to_owned(),
            version: fetched.version.clone(),
            source: plan.describe(),
            archive_sha256: plan.archive_sha256().map(str::to_owned),
            commit: fetched.commit.clone(),
            digest: String::new(),
            files: Default::default(),
            installed_at: String::new(),
        };
        let installer = self.installer.clone();
        let name = name.to_owned();
        let record = tokio::task::spawn_blocking(move || {
            let record = installer.install(&name, &fetched.root, record);
            drop(staging);
            record
        })
        .await
        .map_err(|e| SkillError::Invalid(format!("the install worker failed: {e}")))??;
        Ok((record, true))
    }

    async fn verify(&self, name: &str) -> Result<Option<String>, SkillError> {
        let installer = self.installer.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || installer.verify(&name))
            .await
            .map_err(|e| SkillError::Invalid(format!("the verify worker failed: {e}")))?
    }

    async fn uninstall(&self, name: &str) -> Result<Option<Record>, SkillError> {
        if !self.installer.present(name) {
            // Nothing to remove (every disabled skill after its first pass): a stat here, not a
            // blocking-pool thread per skill (10,000 disabled skills grew the pool to ~70
            // threads, each with an allocator heap of its own).
            return self.installer.uninstall(name);
        }
        let installer = self.installer.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || installer.uninstall(&name))
            .await
            .map_err(|e| SkillError::Invalid(format!("the uninstall worker failed: {e}")))?
    }

    /// Writes a skill event in a transaction of its own and wakes the webhook worker. With
    /// replicas every one installs on its own disk, and the leader alone tells subscribers.
    async fn event(&self, kind: EventType, name: &str, version: &str) -> Result<(), ApplyError> {
        if !self.live.cluster.is_leader() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        outbox::insert(&mut tx, &events::skill(kind, name, version)).await?;
        tx.commit().await?;
        self.live.outbox.notify_one();
        Ok(())
    }

    /// Installs (reusing an intact install of the same archive) and writes `skill.installed`
    /// when the installed version or content changed.
    async fn install_and_announce(
        &self,
        r: &Resource,
        spec: &SkillSpec,
        cancel: &CancellationToken,
    ) -> Result<Record, ApplyError> {
        let before = self.installer.installed(r.name()).map(|i| i.record);
        let (record, changed) = self.install(r, spec, false, cancel).await?;
        if changed
            && before.is_none_or(|b| b.digest != record.digest || b.version != record.version)
        {
            self.event(EventType::SkillInstalled, r.name(), &record.version)
                .await?;
        }
        Ok(record)
    }

    /// Whether a skill from the default registry was installed from another registry than
    /// the Config names now (a Config change does not change the Skill's digest).
    fn registry_changed(&self, name: &str, spec: &SkillSpec) -> bool {
        if spec.source.is_some() {
            return false;
        }
        match (
            self.config.current().skills.registry,
            self.installer.installed(name),
        ) {
            (Some(registry), Some(installed)) => {
                let now = Registry::parse(&registry, &self.live.manifests).describe();
                !installed
                    .record
                    .source
                    .starts_with(&format!("registry {now} ("))
            }
            _ => false,
        }
    }

    async fn disable(&self, name: &str) -> Result<Outcome, ApplyError> {
        if let Some(old) = self.uninstall(name).await? {
            self.event(EventType::SkillRemoved, name, &old.version)
                .await?;
        }
        Ok(disabled())
    }

    /// The slow part of `apply`: install (or, when disabled, uninstall).
    async fn converge(&self, r: &Resource, cancel: &CancellationToken) -> WorkResult {
        let spec = spec_of(r)?;
        if !spec.enabled {
            return self.disable(r.name()).await.map(Some);
        }
        let record = self.install_and_announce(r, spec, cancel).await?;
        Ok(Some(Outcome::applied(installed_message(&record))))
    }

    /// The slow part of a full pass: verify the installed files and repair drift.
    async fn resync(&self, r: &Resource, cancel: &CancellationToken) -> WorkResult {
        let spec = spec_of(r)?;
        if !spec.enabled {
            let present = self.installer.root().join(r.name()).exists();
            return Ok(if present {
                Some(self.disable(r.name()).await?)
            } else {
                None
            });
        }
        let Some(drift) = self.verify(r.name()).await? else {
            if self.registry_changed(r.name(), spec) {
                let record = self.install_and_announce(r, spec, cancel).await?;
                return Ok(Some(Outcome {
                    reason: "RegistryChanged",
                    message: format!(
                        "the Config's skills.registry changed: {}",
                        installed_message(&record)
                    ),
                }));
            }
            return Ok(None);
        };
        tracing::warn!(skill = %r.name(), "installed skill drifted ({drift}); reinstalling");
        let (record, _) = self.install(r, spec, true, cancel).await?;
        Ok(Some(Outcome {
            reason: "DriftRepaired",
            message: format!("{drift}; restored: {}", installed_message(&record)),
        }))
    }
}

fn disabled() -> Outcome {
    Outcome {
        reason: "Disabled",
        message: "enabled: false in the manifest; the skill is not installed".into(),
    }
}

fn installed_message(record: &Record) -> String {
    let digest = record.digest.get(..19).unwrap_or(&record.digest);
    format!("installed {} ({digest}…)", record.version)
}

fn spec_of(r: &Resource) -> Result<&SkillSpec, ApplyError> {
    match &r.spec {
        Spec::Skill(spec) => Ok(spec),
        _ => Err(ApplyError::new("WrongKind", "not a Skill")),
    }
}

fn cancelled() -> SkillError {
    SkillError::Invalid("cancelled: the manifest changed while installing".into())
}

#[async_trait]
impl Handler for SkillHandler {
    fn kind(&self) -> Kind {
        Kind::Skill
    }

    async fn apply(&self, _tx: &mut Tx, r: &Resource) -> Result<Outcome, ApplyError> {
        let spec = spec_of(r)?;
        Ok(Outcome::progressing(if spec.enabled {
            format!("resolving and installing version {}", spec.version)
        } else {
            "disabled: removing the installed files".into()
        }))
    }

    async fn delete(&self, _tx: &mut Tx, _name: &str) -> Result<(), ApplyError> {
        // Removing the files is slow work (`Job::Delete`).
        Ok(())
    }

    fn has_work(&self) -> bool {
        true
    }

    fn work(self: Arc<Self>, job: Job, cancel: CancellationToken) -> Option<JobFuture<WorkResult>> {
        Some(Box::pin(async move {
            match job {
                Job::Apply(r) => self.converge(&r, &cancel).await,
                Job::Resync(r) => self.resync(&r, &cancel).await,
                Job::Delete(name) => {
                    if let Some(old) = self.uninstall(&name).await? {
                        self.event(EventType::SkillRemoved, &name, &old.version)
                            .await?;
                    }
                    Ok(None)
                }
            }
        }))
    }
}
