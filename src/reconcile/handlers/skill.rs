//! The Skill handler: installs each Skill into `<data>/skills/<name>` and removes it when its
//! manifest goes away (see [`crate::skills`]).
//!
//! A failure makes that one skill not Ready with the reason (the reconciler raises
//! `system.error` for it) and leaves the other skills and the installed version alone. An
//! unchanged manifest reuses the install when the resolved archive digest is the same and the
//! files are intact. Full passes verify installed files and reinstall on drift (`DriftRepaired`),
//! and reinstall skills of the default registry when the Config names another (`RegistryChanged`).
//! `skill.installed` / `skill.removed` are written to the outbox in the reconcile transaction.
//!
//! `SKILL.md` must name the skill as the Skill resource does; a mismatch is refused
//! (`InvalidSkill`), so the directory name, the resource and the skill agree.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::config::ConfigHandler;
use crate::events::{self, EventType};
use crate::live::Live;
use crate::manifest::kinds::SkillSpec;
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::handler::{ApplyError, Handler, Outcome};
use crate::skills::install::{Installer, Record};
use crate::skills::registry::{self, Registry};
use crate::skills::source::{self, Context};
use crate::skills::SkillError;
use crate::store::outbox;

/// Converges installed skills.
pub struct SkillHandler {
    live: Arc<Live>,
    config: Arc<ConfigHandler>,
    installer: Installer,
    /// Events were written in this pass: wake the webhook worker after commit.
    notify: AtomicBool,
}

impl From<SkillError> for ApplyError {
    fn from(e: SkillError) -> Self {
        ApplyError::new(e.reason(), e.to_string())
    }
}

impl SkillHandler {
    /// A handler installing under `live.data`, reading the registry from `config`.
    pub fn new(live: Arc<Live>, config: Arc<ConfigHandler>) -> Self {
        let installer = Installer::new(&live.data);
        installer.clean_leftovers();
        SkillHandler {
            live,
            config,
            installer,
            notify: AtomicBool::new(false),
        }
    }

    /// Resolves, fetches and installs; returns the record and whether anything was installed
    /// (`false`: the same archive was installed and intact). `force` skips the reuse check.
    async fn install(
        &self,
        r: &Resource,
        spec: &SkillSpec,
        force: bool,
    ) -> Result<(Record, bool), SkillError> {
        let name = r.name();
        let config = self.config.current();
        // Built per install from the Config in force, so its egress policy applies.
        let http = registry::http_client(&config);
        let ctx = Context::new(
            &self.live.manifests,
            &r.origin.file,
            config.skills.registry.clone(),
            http.clone(),
        );
        let plan = source::resolve(name, spec, &ctx).await?;
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
        let fetched = source::fetch(name, &spec.version, &plan, &staging.path, &http).await?;
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
        let installer = self.installer.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || installer.uninstall(&name))
            .await
            .map_err(|e| SkillError::Invalid(format!("the uninstall worker failed: {e}")))?
    }

    async fn event(
        &self,
        tx: &mut SqliteConnection,
        kind: EventType,
        name: &str,
        version: &str,
    ) -> Result<(), ApplyError> {
        outbox::insert(tx, &events::skill(kind, name, version)).await?;
        self.notify.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Installs (reusing an intact install of the same archive) and writes `skill.installed`
    /// when the installed version or content changed.
    async fn install_and_announce(
        &self,
        tx: &mut SqliteConnection,
        r: &Resource,
        spec: &SkillSpec,
    ) -> Result<Record, ApplyError> {
        let before = self.installer.installed(r.name()).map(|i| i.record);
        let (record, changed) = self.install(r, spec, false).await?;
        if changed
            && before.is_none_or(|b| b.digest != record.digest || b.version != record.version)
        {
            self.event(tx, EventType::SkillInstalled, r.name(), &record.version)
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

    async fn disable(&self, tx: &mut SqliteConnection, name: &str) -> Result<Outcome, ApplyError> {
        if let Some(old) = self.uninstall(name).await? {
            self.event(tx, EventType::SkillRemoved, name, &old.version)
                .await?;
        }
        Ok(disabled())
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

#[async_trait]
impl Handler for SkillHandler {
    fn kind(&self) -> Kind {
        Kind::Skill
    }

    async fn apply(&self, tx: &mut SqliteConnection, r: &Resource) -> Result<Outcome, ApplyError> {
        let spec = spec_of(r)?;
        if !spec.enabled {
            return self.disable(tx, r.name()).await;
        }
        let record = self.install_and_announce(tx, r, spec).await?;
        Ok(Outcome::applied(installed_message(&record)))
    }

    async fn resync(
        &self,
        tx: &mut SqliteConnection,
        r: &Resource,
    ) -> Result<Option<Outcome>, ApplyError> {
        let spec = spec_of(r)?;
        if !spec.enabled {
            let present = self.installer.root().join(r.name()).exists();
            return Ok(if present {
                Some(self.disable(tx, r.name()).await?)
            } else {
                None
            });
        }
        let Some(drift) = self.verify(r.name()).await? else {
            if self.registry_changed(r.name(), spec) {
                let record = self.install_and_announce(tx, r, spec).await?;
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
        let (record, _) = self.install(r, spec, true).await?;
        Ok(Some(Outcome {
            reason: "DriftRepaired",
            message: format!("{drift}; restored: {}", installed_message(&record)),
        }))
    }

    async fn delete(&self, tx: &mut SqliteConnection, name: &str) -> Result<(), ApplyError> {
        if let Some(old) = self.uninstall(name).await? {
            self.event(tx, EventType::SkillRemoved, name, &old.version)
                .await?;
        }
        Ok(())
    }

    fn publish(&self) {
        if self.notify.swap(false, Ordering::Relaxed) {
            self.live.outbox.notify_one();
        }
    }

    fn discard(&self) {
        self.notify.store(false, Ordering::Relaxed);
    }
}
