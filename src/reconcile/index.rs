//! The desired state, kept incrementally: which file declares each kind and name, which one
//! takes part, and what the cross-resource rules say about it.
//!
//! Changing one file touches only the names that file declares (before and after), so the
//! reconciler's cost for one edited file does not grow with the number of resources declared
//! elsewhere. The rules themselves are [`crate::manifest::rules::admit_one`], the same that
//! `claw validate` applies to a whole tree.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::manifest::rules::{self, CONFIG_NAME};
use crate::manifest::write::Declarations;
use crate::manifest::{Diagnostic, Digest, FileLoad, Kind, ManifestSet, Resource};

/// A resource's identity: its kind and name (the name shared with the resource's own copy).
pub type Key = (Kind, Arc<str>);

/// The hashing of maps and sets keyed by [`Key`]: foldhash, several times faster than the
/// standard SipHash on short names (a first pass on 100,000 resources hashes every key a dozen
/// times, and SipHash was 3 % of its CPU). The keys come from reviewed manifests, and the seed
/// is still random per process.
pub type KeyHasher = foldhash::fast::RandomState;
/// A map keyed by [`Key`].
pub type KeyMap<V> = HashMap<Key, V, KeyHasher>;
/// A set of [`Key`]s.
pub type KeySet = HashSet<Key, KeyHasher>;

/// Who declares one name.
struct Owners {
    /// Files declaring it with a valid document, in path order (a file declaring a name twice
    /// is listed once; the rules see both documents). Shared with the resources' origins.
    files: Vec<Arc<Path>>,
    /// The declaration the rules admitted, if any: kept here so that looking up what takes
    /// part costs one hash lookup, not a walk of the files (a path comparison per level).
    winner: Option<Arc<Resource>>,
}

/// Names declared by the manifests and the rules' verdict on each.
#[derive(Default)]
pub struct Index {
    owners: KeyMap<Owners>,
    /// How many names are admitted.
    admitted: usize,
    /// Rule errors (duplicates, a misnamed Config) by name.
    rule_errors: KeyMap<Vec<Diagnostic>>,
    /// Invalid documents that still say who they are, by name: never deleted.
    claims: KeyMap<usize>,
    /// Files that are not even YAML: every delete waits until they are fixed.
    unreadable: BTreeSet<PathBuf>,
    /// Files with errors of their own.
    invalid: BTreeSet<PathBuf>,
    /// Order-independent sum of every file's (path, digest) hash: the content revision.
    revision: [u64; 4],
}

impl Index {
    /// Takes a file's change (`old` -> `new`) into the index and returns the names it touched.
    pub fn update(
        &mut self,
        set: &ManifestSet,
        path: &Path,
        old: Option<&FileLoad>,
        new: Option<&FileLoad>,
    ) -> KeySet {
        let mut touched = KeySet::default();
        if let Some(old) = old {
            self.revision_term(path, old, false);
            for r in &old.resources {
                let key = (r.kind, r.metadata.name.clone());
                if let Some(owners) = self.owners.get_mut(&key) {
                    owners.files.retain(|f| **f != *path);
                }
                touched.insert(key);
            }
            for key in &old.claimed {
                if let Some(n) = self.claims.get_mut(key) {
                    *n -= 1;
                    if *n == 0 {
                        self.claims.remove(key);
                    }
                }
            }
        }
        self.unreadable.remove(path);
        self.invalid.remove(path);
        if let Some(new) = new {
            self.revision_term(path, new, true);
            for r in &new.resources {
                let key = (r.kind, r.metadata.name.clone());
                let owners = self.owners.entry(key.clone()).or_insert_with(|| Owners {
                    files: Vec::with_capacity(1),
                    winner: None,
                });
                if let Err(at) = owners.files.binary_search(&r.origin.file) {
                    owners.files.insert(at, r.origin.file.clone());
                }
                touched.insert(key);
            }
            for key in &new.claimed {
                *self.claims.entry(key.clone()).or_default() += 1;
            }
            if new.unreadable {
                self.unreadable.insert(path.to_path_buf());
            }
            if !new.diagnostics.is_empty() {
                self.invalid.insert(path.to_path_buf());
            }
        }
        for key in &touched {
            self.judge(set, key, path, new);
        }
        touched
    }

    /// Applies the rules to one name again. `path` and `file` are the file being taken in
    /// (already in `set`): its declarations are read from it without a lookup.
    fn judge(&mut self, set: &ManifestSet, key: &Key, path: &Path, file: Option<&FileLoad>) {
        let errors = match self.owners.get_mut(key) {
            None => Vec::new(),
            Some(owners) if owners.files.is_empty() => {
                self.admitted -= usize::from(owners.winner.is_some());
                self.owners.remove(key);
                Vec::new()
            }
            Some(owners) => {
                let declared: Vec<&Arc<Resource>> = owners
                    .files
                    .iter()
                    .filter_map(|p| match file {
                        Some(f) if **p == *path => Some(f),
                        _ => set.files.get(p.as_ref()),
                    })
                    .flat_map(|f| f.resources.iter())
                    .filter(|r| r.kind == key.0 && r.name() == &*key.1)
                    .collect();
                let (winner, errors) = rules::admit_one(declared.iter().map(|r| &***r));
                let winner = winner.and_then(|w| {
                    declared
                        .iter()
                        .find(|r| std::ptr::eq(&****r, w))
                        .map(|r| (*r).clone())
                });
                match (owners.winner.is_some(), winner.is_some()) {
                    (false, true) => self.admitted += 1,
                    (true, false) => self.admitted -= 1,
                    _ => {}
                }
                owners.winner = winner;
                errors
            }
        };
        if errors.is_empty() {
            self.rule_errors.remove(key);
        } else {
            self.rule_errors.insert(key.clone(), errors);
        }
    }

    fn revision_term(&mut self, path: &Path, file: &FileLoad, add: bool) {
        let mut h = Sha256::new();
        h.update(path.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(file.digest);
        let d: Digest = h.finalize().into();
        for (i, part) in self.revision.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&d[i * 8..i * 8 + 8]);
            let w = u64::from_le_bytes(word);
            *part = if add {
                part.wrapping_add(w)
            } else {
                part.wrapping_sub(w)
            };
        }
    }

    /// The resource that takes part for `key`, if any.
    pub fn desired(&self, key: &Key) -> Option<&Arc<Resource>> {
        self.owners.get(key)?.winner.as_ref()
    }

    /// Every valid declaration of `kind`/`name`, in file order (path, then document).
    pub fn declaring<'a>(&self, set: &'a ManifestSet, kind: Kind, name: &str) -> Vec<&'a Resource> {
        let Some(owners) = self.owners.get(&(kind, Arc::from(name))) else {
            return Vec::new();
        };
        owners
            .files
            .iter()
            .filter_map(|p| set.files.get(p.as_ref()))
            .flat_map(|f| f.resources.iter().map(|r| &**r))
            .filter(|r| r.kind == kind && r.name() == name)
            .collect()
    }

    /// Every name that takes part.
    pub fn admitted(&self) -> impl Iterator<Item = &Key> {
        self.owners
            .iter()
            .filter(|(_, o)| o.winner.is_some())
            .map(|(k, _)| k)
    }

    /// How many names take part.
    pub fn len(&self) -> usize {
        self.admitted
    }

    /// True when nothing takes part.
    pub fn is_empty(&self) -> bool {
        self.admitted == 0
    }

    /// True when an invalid document still claims `key`.
    pub fn claimed(&self, key: &Key) -> bool {
        self.claims.contains_key(key)
    }

    /// The first file that is not YAML at all, if any.
    pub fn unreadable(&self) -> Option<&PathBuf> {
        self.unreadable.iter().next()
    }

    /// Files with errors of their own, in path order.
    pub fn invalid_files(&self) -> impl Iterator<Item = &PathBuf> {
        self.invalid.iter()
    }

    /// The rules' errors, in no particular order.
    pub fn rule_errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.rule_errors.values().flatten()
    }

    /// True when the one Config takes part.
    pub fn has_config(&self) -> bool {
        self.owners
            .get(&(Kind::Config, Arc::from(CONFIG_NAME)))
            .is_some_and(|o| o.winner.is_some())
    }

    /// The content revision (used when the manifests are not a git working copy).
    pub fn revision(&self) -> Digest {
        let mut out = [0u8; 32];
        for (i, part) in self.revision.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&part.to_le_bytes());
        }
        Sha256::digest(out).into()
    }
}

/// The declarations a write-back checks against, looked up per name in the index.
pub struct View<'a> {
    pub set: &'a ManifestSet,
    pub index: &'a Index,
}

impl Declarations for View<'_> {
    fn find(&self, kind: Kind, name: &str) -> Option<&Resource> {
        self.index
            .declaring(self.set, kind, name)
            .into_iter()
            .next()
    }

    fn declaring(&self, kind: Kind, name: &str) -> Vec<&Resource> {
        self.index.declaring(self.set, kind, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::parse_file;

    fn token(name: &str) -> String {
        format!(
            "apiVersion: openclaw.dev/v1\nkind: Token\nmetadata: {{name: {name}}}\nspec: {{scope: read, sha256: {}}}\n",
            "ab".repeat(32)
        )
    }

    fn put(set: &mut ManifestSet, index: &mut Index, path: &str, text: Option<&str>) -> KeySet {
        let p = PathBuf::from(path);
        let new = text.map(|t| parse_file(&p, t));
        let old = match &new {
            Some(n) => set.files.insert(n.shared_path(&p), n.clone()),
            None => set.files.remove(p.as_path()),
        };
        index.update(set, &p, old.as_ref(), new.as_ref())
    }

    #[test]
    fn a_change_touches_only_the_names_of_that_file_and_duplicates_move_over() {
        let mut set = ManifestSet::default();
        let mut index = Index::default();
        put(&mut set, &mut index, "a.yaml", Some(&token("ci")));
        put(&mut set, &mut index, "b.yaml", Some(&token("other")));
        let touched = put(&mut set, &mut index, "c.yaml", Some(&token("ci")));
        assert_eq!(touched, KeySet::from_iter([(Kind::Token, Arc::from("ci"))]));
        assert_eq!(index.rule_errors().count(), 1);
        let key = (Kind::Token, Arc::from("ci"));
        assert_eq!(
            index.desired(&key).unwrap().origin.file.as_ref(),
            Path::new("a.yaml")
        );
        // The first declaration goes: the duplicate takes over, and its error goes too.
        put(&mut set, &mut index, "a.yaml", None);
        assert_eq!(
            index.desired(&key).unwrap().origin.file.as_ref(),
            Path::new("c.yaml")
        );
        assert_eq!(index.rule_errors().count(), 0);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn the_revision_depends_on_content_not_on_the_order_files_were_seen() {
        let (mut s1, mut i1) = (ManifestSet::default(), Index::default());
        let (mut s2, mut i2) = (ManifestSet::default(), Index::default());
        put(&mut s1, &mut i1, "a.yaml", Some(&token("a")));
        put(&mut s1, &mut i1, "b.yaml", Some(&token("b")));
        put(&mut s2, &mut i2, "b.yaml", Some(&token("b")));
        put(&mut s2, &mut i2, "a.yaml", Some(&token("x")));
        assert_ne!(i1.revision(), i2.revision());
        put(&mut s2, &mut i2, "a.yaml", Some(&token("a")));
        assert_eq!(i1.revision(), i2.revision());
    }
}
