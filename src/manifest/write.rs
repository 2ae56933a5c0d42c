//! Editing manifests: one document of one file per write, checked before anything touches the
//! disk, then written with temp file + fsync + rename so no reader ever sees a partial file.
//!
//! A merge patch is the smallest text edit of its document ([`super::edit`]): a changed field
//! changes its line, an added field adds its lines, everything else (comments, alignment,
//! quoting, flow or block style, other documents) stays byte for byte. Callers serialise
//! writes: the reconciler is the one writer for a running server, `claw token` for the CLI.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::kinds::{Kind, API_VERSION};
use super::load::{self, FileLoad};
use super::rules;
use super::{edit, yaml};
use super::{Diagnostic, Digest, ManifestSet, Resource};

/// A change to one declarative resource.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Add a resource; refused if one of that kind and name exists.
    Create {
        kind: Kind,
        name: String,
        spec: Value,
        labels: Map<String, Value>,
    },
    /// Apply an RFC 7396 JSON merge patch to the resource's `spec` as written in its file.
    MergePatch {
        kind: Kind,
        name: String,
        patch: Value,
    },
    /// Remove the resource's document (and the file, if nothing else is left in it).
    Delete { kind: Kind, name: String },
}

impl Edit {
    /// The resource the edit is about.
    pub fn target(&self) -> (Kind, &str) {
        match self {
            Edit::Create { kind, name, .. }
            | Edit::MergePatch { kind, name, .. }
            | Edit::Delete { kind, name } => (*kind, name),
        }
    }
}

/// Why a write was refused. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}/{1} not found")]
    NotFound(Kind, String),
    #[error("{0}/{1} already exists in {2}")]
    AlreadyExists(Kind, String, PathBuf),
    #[error("{0}/{1} has changed since it was read (ETag mismatch)")]
    PreconditionFailed(Kind, String),
    #[error("{0}/{1} changed on disk while it was being edited; retry")]
    Moved(Kind, String),
    #[error("the change would make the manifests invalid")]
    Invalid(Vec<Diagnostic>),
    /// `git.auto_commit` is on and the commit failed; the file was restored.
    #[error("the write-back could not be committed, so nothing was changed: {0}")]
    Commit(#[source] crate::gitops::git::GitError),
    /// Pull mode: the write-back could not be pushed; the checkout was reset.
    #[error("the write-back could not be pushed to the remote, so nothing was changed: {0}")]
    Push(#[source] crate::gitops::git::GitError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A checked write, ready to commit.
#[derive(Debug)]
pub struct PreparedWrite {
    /// File relative to the manifests root.
    pub path: PathBuf,
    /// New content; `None` removes the file.
    pub text: Option<String>,
    /// The new content, parsed (what the reconciler will see).
    pub load: Option<FileLoad>,
}

/// Where a new resource of this kind goes: `<kind-plural>/<name>.yaml`.
pub fn default_path(kind: Kind, name: &str) -> PathBuf {
    PathBuf::from(kind.plural()).join(format!("{name}.yaml"))
}

/// A whole document for a new resource.
pub fn new_document(kind: Kind, name: &str, labels: &Map<String, Value>, spec: Value) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(name.into()));
    if !labels.is_empty() {
        metadata.insert("labels".into(), Value::Object(labels.clone()));
    }
    json!({ "apiVersion": API_VERSION, "kind": kind.as_str(), "metadata": metadata, "spec": spec })
}

/// What a write needs to know of the declared resources outside the file it edits. The
/// reconciler answers from its index (a lookup per name, so a write costs what its file
/// costs); a [`ManifestSet`] answers by scanning (the CLI, which loads the tree anyway).
pub trait Declarations {
    /// The resource an edit of `kind`/`name` is about: the first declaration, in file order.
    fn find(&self, kind: Kind, name: &str) -> Option<&Resource>;
    /// Every valid declaration of `kind`/`name`, in file order (path, then document).
    fn declaring(&self, kind: Kind, name: &str) -> Vec<&Resource>;
}

impl Declarations for ManifestSet {
    fn find(&self, kind: Kind, name: &str) -> Option<&Resource> {
        ManifestSet::find(self, kind, name)
    }

    fn declaring(&self, kind: Kind, name: &str) -> Vec<&Resource> {
        self.resources()
            .filter(|r| r.kind == kind && r.name() == name)
            .collect()
    }
}

/// Computes and checks the new content of the file an edit touches. `expected` is the digest
/// the caller last saw (If-Match); the write is refused if the resource no longer has it.
pub fn prepare(
    root: &Path,
    set: &impl Declarations,
    edit: &Edit,
    expected: Option<&Digest>,
) -> Result<PreparedWrite, WriteError> {
    let (kind, name) = edit.target();
    let current = set.find(kind, name);
    if let (Some(expected), Some(current)) = (expected, current) {
        if &current.digest != expected {
            return Err(WriteError::PreconditionFailed(kind, name.to_owned()));
        }
    }
    let path = match (edit, current) {
        (Edit::Create { .. }, Some(r)) => {
            return Err(WriteError::AlreadyExists(
                kind,
                name.to_owned(),
                r.origin.file.to_path_buf(),
            ))
        }
        (Edit::Create { .. }, None) => default_path(kind, name),
        (_, Some(r)) => r.origin.file.to_path_buf(),
        (_, None) => return Err(WriteError::NotFound(kind, name.to_owned())),
    };
    let io_err = |source| WriteError::Io {
        path: path.clone(),
        source,
    };
    let old_text = load::read_file(root, &path)
        .map_err(io_err)?
        .unwrap_or_default();
    let docs = yaml::parse_documents(&old_text).map_err(|e| {
        WriteError::Invalid(vec![Diagnostic {
            file: path.clone(),
            line: e.position.line,
            column: e.position.column,
            kind: Some(kind),
            name: Some(name.to_owned()),
            pointer: String::new(),
            message: format!("invalid YAML: {}", e.message),
        }])
    })?;
    let target = docs.iter().find(|d| {
        d.value.get("kind").and_then(Value::as_str) == Some(kind.as_str())
            && d.value.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
    });

    let new_text = match edit {
        Edit::Create { spec, labels, .. } => {
            let body = render(&new_document(kind, name, labels, spec.clone()), None)?;
            Some(yaml::append_document(&old_text, &body))
        }
        Edit::MergePatch { patch, .. } => {
            let doc = target.ok_or_else(|| WriteError::Moved(kind, name.to_owned()))?;
            let mut value = doc.value.clone();
            let spec = value
                .as_object_mut()
                .map(|o| o.entry("spec").or_insert_with(|| Value::Object(Map::new())));
            if let Some(spec) = spec {
                merge_patch(spec, patch);
            }
            // The smallest text edit (SPEC §5a); unchanged text when the value is unchanged.
            let text = edit::edit_document(&old_text, doc, &value).map_err(|e| WriteError::Io {
                path: path.clone(),
                source: io::Error::other(e.to_string()),
            })?;
            Some(text)
        }
        Edit::Delete { .. } => {
            let doc = target.ok_or_else(|| WriteError::Moved(kind, name.to_owned()))?;
            let rest = yaml::remove_document(&old_text, doc);
            match yaml::parse_documents(&rest) {
                Ok(docs) if docs.is_empty() => None,
                _ => Some(rest),
            }
        }
    };

    let new_load = new_text.as_deref().map(|t| load::parse_file(&path, t));
    if let Some(l) = &new_load {
        if !l.diagnostics.is_empty() {
            return Err(WriteError::Invalid(l.diagnostics.clone()));
        }
    }
    // Cross-resource rules, on the set as it would be; only problems in this file count, so an
    // unrelated broken file elsewhere does not block every write.
    if let Some(l) = &new_load {
        let problems = rule_problems(set, &path, l);
        if !problems.is_empty() {
            return Err(WriteError::Invalid(problems));
        }
    }
    Ok(PreparedWrite {
        path,
        text: new_text,
        load: new_load,
    })
}

/// The cross-resource rules' errors in the file at `path` if its content became `new`: each
/// name it declares judged with that name's declarations elsewhere, in file order (the same
/// verdicts as [`rules::Desired::of`] on the whole tree, restricted to this file).
fn rule_problems(set: &impl Declarations, path: &Path, new: &FileLoad) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &new.resources {
        if !seen.insert((r.kind, r.name())) {
            continue;
        }
        let others = set.declaring(r.kind, r.name());
        let (before, after): (Vec<&Resource>, Vec<&Resource>) = others
            .into_iter()
            .filter(|o| &*o.origin.file != path)
            .partition(|o| &*o.origin.file < path);
        let mine = new
            .resources
            .iter()
            .map(|m| &**m)
            .filter(|m| m.kind == r.kind && m.name() == r.name());
        let (_, errors) = rules::admit_one(before.into_iter().chain(mine).chain(after));
        problems.extend(errors.into_iter().filter(|d| d.file == path));
    }
    problems.sort_by_key(|d| (d.line, d.column));
    problems
}

fn render(value: &Value, previous: Option<(&str, &yaml::SourceDoc)>) -> Result<String, WriteError> {
    yaml::render_document(value, previous).map_err(|e| WriteError::Io {
        path: PathBuf::new(),
        source: io::Error::other(e.to_string()),
    })
}

/// Writes (or removes) the file of a prepared write atomically.
pub fn commit(root: &Path, write: &PreparedWrite) -> Result<(), WriteError> {
    let full = root.join(&write.path);
    let result = match &write.text {
        Some(text) => atomic_write(&full, text.as_bytes()),
        None => match std::fs::remove_file(&full) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&full),
        },
    };
    result.map_err(|source| WriteError::Io {
        path: write.path.clone(),
        source,
    })
}

/// True for the temp files [`atomic_write`] creates (`.<file>.claw-<uuid>.tmp`).
fn is_our_temp_file(name: &str) -> bool {
    name.starts_with('.') && name.contains(".claw-") && name.ends_with(".tmp")
}

/// Removes temp files an interrupted [`atomic_write`] left below `root` (hidden directories
/// such as `.git` are not entered); returns how many. Run at start, before anyone writes.
pub fn clean_temp_files(root: &Path) -> usize {
    fn walk(dir: &Path, removed: &mut usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && !name.starts_with('.') {
                walk(&entry.path(), removed);
            } else if kind.is_file()
                && is_our_temp_file(&name)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                *removed += 1;
            }
        }
    }
    let mut removed = 0;
    walk(root, &mut removed);
    removed
}

/// Replaces `path` with `bytes` so that readers see the old or the new content, never a mix:
/// a hidden temp file in the same directory, fsync, rename over, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.claw-{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        // Keep the file's permissions when replacing it.
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// RFC 7396 JSON merge patch: objects merge recursively, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (key, value) in patch {
            if value.is_null() {
                t.remove(key);
            } else {
                merge_patch(t.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str) -> String {
        format!(
            "apiVersion: openclaw.dev/v1\nkind: Token\nmetadata: {{name: {name}}}\nspec: {{scope: read, sha256: {}}}\n",
            "ab".repeat(32)
        )
    }

    #[test]
    fn the_rules_judge_only_the_written_file_against_the_declarations_elsewhere() {
        let mut set = ManifestSet::default();
        let a = PathBuf::from("b.yaml");
        set.files.insert(
            std::sync::Arc::from(a.as_path()),
            load::parse_file(&a, &token("dup")),
        );
        // A later file declaring the same name is the duplicate: refused.
        let later = PathBuf::from("c.yaml");
        let new = load::parse_file(&later, &format!("{}---\n{}", token("dup"), token("ok")));
        let problems = rule_problems(&set, &later, &new);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].file.as_path(), problems[0].line),
            (later.as_path(), 1)
        );
        assert!(problems[0].message.contains("duplicate Token/dup"));
        // An earlier file takes the name over: the duplicate is then the other file's problem.
        let earlier = PathBuf::from("a.yaml");
        let new = load::parse_file(&earlier, &token("dup"));
        assert!(rule_problems(&set, &earlier, &new).is_empty());
        // The file itself, rewritten, is no duplicate of its old content.
        let new = load::parse_file(&a, &token("dup"));
        assert!(rule_problems(&set, &a, &new).is_empty());
        // Twice in one file: the second is the duplicate.
        let text = format!("{}---\n{}", token("x"), token("x"));
        let new = load::parse_file(&later, &text);
        let lines: Vec<usize> = rule_problems(&set, &later, &new)
            .iter()
            .map(|d| d.line)
            .collect();
        assert_eq!(lines, vec![6]);
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [1]});
        merge_patch(&mut doc, &json!({"a": {"b": 1}, "n": null}));
        assert_eq!(doc, json!({"a": {"b": 1}}));
    }

    #[test]
    fn a_merge_patch_is_the_smallest_edit() {
        use crate::manifest::edit::tests::numstat;
        let dir = tempfile::tempdir().unwrap();
        crate::manifest::scaffold::init(dir.path()).unwrap();
        let set = ManifestSet::load(dir.path()).unwrap();
        let before = std::fs::read_to_string(dir.path().join("configs/default.yaml")).unwrap();
        let write = |patch: Value| {
            let edit = Edit::MergePatch {
                kind: Kind::Config,
                name: "default".into(),
                patch,
            };
            prepare(dir.path(), &set, &edit, None)
                .unwrap()
                .text
                .unwrap()
        };
        let after = write(json!({"rate_limit": {"burst": 10}}));
        assert_eq!(numstat(&before, &after), (1, 1));
        assert_eq!(after, before.replace("    burst: 60\n", "    burst: 10\n"));
        let after = write(json!({"tasks": {"max_turns": 5}}));
        assert_eq!(numstat(&before, &after), (1, 0));
        let after = write(json!({"model": {"api_key": {"fromEnv": null, "fromFile": "/k"}}}));
        assert_eq!(
            after,
            before.replace("{fromEnv: ANTHROPIC_API_KEY}", "{fromFile: /k}")
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.yaml");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["x.yaml"]);
    }
}
