//! Step one of a pass, *read*: which manifest files changed since the last pass. Only files
//! in scope are looked at; a file whose bytes hash as before is not parsed again.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use super::Scope;
use crate::manifest::load::{self, digest_bytes, FileLoad};
use crate::manifest::{Digest, ManifestSet};

/// Paths the pass must look at, with the digests we know for them.
pub fn known_digests(set: &ManifestSet, scope: &Scope) -> HashMap<PathBuf, Digest> {
    match scope {
        Scope::Full => set
            .files
            .iter()
            .map(|(p, f)| (p.to_path_buf(), f.digest))
            .collect(),
        Scope::Paths { files, dirs } => {
            let mut known = HashMap::new();
            for p in files {
                if let Some(f) = set.files.get(p.as_path()) {
                    known.insert(p.to_path_buf(), f.digest);
                }
            }
            for d in dirs {
                for (p, f) in set
                    .files
                    .range::<Path, _>((Bound::Included(d.as_path()), Bound::Unbounded))
                {
                    if !p.starts_with(d) {
                        break;
                    }
                    known.insert(p.to_path_buf(), f.digest);
                }
            }
            known
        }
    }
}

/// Files whose content changed: `Some` with the new parse, `None` for a file that is gone.
pub type Changes = Vec<(PathBuf, Option<FileLoad>)>;

/// Reads the files a pass must look at and returns those whose content changed: `Some` with
/// the new parse, `None` for a file that is gone.
pub fn read_changes(
    root: &Path,
    scope: &Scope,
    known: &HashMap<PathBuf, Digest>,
) -> io::Result<Changes> {
    let mut candidates: BTreeSet<PathBuf> = known.keys().cloned().collect();
    match scope {
        // Nothing known yet (start-up): the scan is the list, already sorted and unique.
        Scope::Full if candidates.is_empty() => match load::scan(root) {
            Ok(found) => return read_all(root, found, known),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        },
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
    read_all(root, candidates.into_iter().collect(), known)
}

/// Reads `candidates` (sorted) and returns those whose content changed, in their order.
fn read_all(
    root: &Path,
    candidates: Vec<PathBuf>,
    known: &HashMap<PathBuf, Digest>,
) -> io::Result<Changes> {
    // Start-up and resyncs read every file: spread them over the cores (in path order still).
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(candidates.len() / 256 + 1);
    if workers <= 1 {
        return read_some(root, &candidates, known);
    }
    let chunk = candidates.len().div_ceil(workers);
    let parts: Vec<io::Result<Changes>> = std::thread::scope(|scope| {
        let handles: Vec<_> = candidates
            .chunks(chunk)
            .map(|part| scope.spawn(move || read_some(root, part, known)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a manifest reader panicked")))
            })
            .collect()
    });
    let mut out = Vec::new();
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// Reads `candidates` and returns those whose content changed.
fn read_some(
    root: &Path,
    candidates: &[PathBuf],
    known: &HashMap<PathBuf, Digest>,
) -> io::Result<Changes> {
    let mut out = Vec::new();
    for rel in candidates {
        match load::read_file(root, rel) {
            Ok(Some(text)) => {
                if known.get(rel) != Some(&digest_bytes(text.as_bytes())) {
                    out.push((rel.clone(), Some(load::parse_file(rel, &text))));
                }
            }
            Ok(None) => {
                if known.contains_key(rel) {
                    out.push((rel.clone(), None));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let load = load::load_path(root, rel)?;
                if load.as_ref().map(|l| l.digest) != known.get(rel).copied() {
                    out.push((rel.clone(), load));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
