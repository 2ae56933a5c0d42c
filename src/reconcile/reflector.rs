//! The read cache of declared resources and their statuses, in the manner of kube-runtime's
//! `reflector::Store`: the reconciler writes each change as it makes it; API reads (skills,
//! webhooks, MCP servers, resources) take a short read lock and never wait for a reconcile.
//!
//! An entry holds the resource in force (`None` while a delete waits behind the prune guard)
//! and its status (`None` until its first pass). The reconciler is the only writer.
//!
//! At 100,000 resources this is one of the largest structures: the status is boxed (a B-tree
//! leaf holds eleven entries, about half of them empty after in-order inserts, so a large
//! inline value costs twice its size) and the name is one allocation shared by the key and
//! the status.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::status::ResourceStatus;
use crate::manifest::{Kind, Resource};

/// One declared resource as the API sees it.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub resource: Option<Arc<Resource>>,
    pub status: Option<Box<ResourceStatus>>,
}

/// A declared resource with its status, as a page or lookup returns it.
pub type Declared = (Arc<Resource>, Option<ResourceStatus>);

/// Declared resources by kind and name.
#[derive(Default)]
pub struct Reflector {
    entries: RwLock<BTreeMap<Kind, BTreeMap<Arc<str>, Entry>>>,
}

impl Reflector {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Kind, BTreeMap<Arc<str>, Entry>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Kind, BTreeMap<Arc<str>, Entry>>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The declared resources of `kind`, by name, from `offset`, at most `limit`, with the
    /// number declared.
    pub fn page(&self, kind: Kind, offset: usize, limit: usize) -> (Vec<Declared>, usize) {
        let entries = self.read();
        let Some(of_kind) = entries.get(&kind) else {
            return (Vec::new(), 0);
        };
        let declared = of_kind.values().filter(|e| e.resource.is_some());
        let total = declared.clone().count();
        let page = declared
            .skip(offset)
            .take(limit)
            .filter_map(|e| Some((e.resource.clone()?, e.status.as_deref().cloned())))
            .collect();
        (page, total)
    }

    /// The declared resource `kind`/`name` with its status.
    pub fn get(&self, kind: Kind, name: &str) -> Option<Declared> {
        let entries = self.read();
        let e = entries.get(&kind)?.get(name)?;
        Some((e.resource.clone()?, e.status.as_deref().cloned()))
    }

    /// The status of `kind`/`name`.
    pub fn status(&self, kind: Kind, name: &str) -> Option<ResourceStatus> {
        self.read()
            .get(&kind)?
            .get(name)?
            .status
            .as_deref()
            .cloned()
    }

    /// Every status, by kind and name.
    pub fn statuses(&self) -> Vec<ResourceStatus> {
        self.read()
            .values()
            .flat_map(|m| m.values())
            .filter_map(|e| e.status.as_deref().cloned())
            .collect()
    }

    /// Sets the resource in force for `kind`/`name` (`None`: no longer declared).
    pub(crate) fn set_resource(
        &self,
        kind: Kind,
        name: &Arc<str>,
        resource: Option<Arc<Resource>>,
    ) {
        let mut entries = self.write();
        let of_kind = entries.entry(kind).or_default();
        match of_kind.get_mut(&**name) {
            Some(e) => {
                e.resource = resource;
                if e.resource.is_none() && e.status.is_none() {
                    of_kind.remove(&**name);
                }
            }
            None if resource.is_some() => {
                of_kind.insert(
                    name.clone(),
                    Entry {
                        resource,
                        status: None,
                    },
                );
            }
            None => {}
        }
    }

    /// Changes the status of `kind`/`name` in place; returns what `change` returned. `change`
    /// is also given the entry's shared copy of the name.
    pub(crate) fn update_status<R>(
        &self,
        kind: Kind,
        name: &Arc<str>,
        change: impl FnOnce(&Arc<str>, &mut Option<Box<ResourceStatus>>) -> R,
    ) -> R {
        let mut entries = self.write();
        let of_kind = entries.entry(kind).or_default();
        if !of_kind.contains_key(&**name) {
            of_kind.insert(name.clone(), Entry::default());
        }
        let (shared, entry) = of_kind
            .range_mut::<str, _>((
                std::ops::Bound::Included(&**name),
                std::ops::Bound::Included(&**name),
            ))
            .next()
            .expect("inserted above");
        let out = change(shared, &mut entry.status);
        if entry.resource.is_none() && entry.status.is_none() {
            of_kind.remove(&**name);
        }
        out
    }
}
