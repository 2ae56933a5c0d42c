//! Loading manifests: a file's text into resources and diagnostics, a directory tree into a
//! [`ManifestSet`].
//!
//! Every error of every document is collected in one pass; nothing stops at the first one.

use std::collections::BTreeMap;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::kinds::{Kind, Metadata, Spec, API_VERSION};
use super::yaml::{self, SourceDoc};
use super::{schema, secret, Diagnostic, Digest, Origin, Resource};

/// What one manifest file declares.
#[derive(Debug, Clone)]
pub struct FileLoad {
    /// Digest of the file's bytes: an unchanged digest means nothing to do.
    pub digest: Digest,
    /// The resources in force from this file. `load` puts the valid documents here; the
    /// reconciler keeps the last good ones here while the file has errors.
    pub resources: Vec<Arc<Resource>>,
    /// Errors of the file's current content.
    pub diagnostics: Vec<Diagnostic>,
    /// Kind and name of the invalid documents that still say who they are: the reconciler
    /// never deletes these, so a typo cannot revoke a token or remove a skill.
    pub claimed: Vec<(Kind, Arc<str>)>,
    /// True when the file is not even YAML: then nobody can tell what it declares, and the
    /// reconciler holds every delete until it is fixed.
    pub unreadable: bool,
}

impl FileLoad {
    /// `rel` as a key of [`ManifestSet::files`]: the copy its resources' origins hold when it
    /// has any (one path per file in memory, not two).
    pub fn shared_path(&self, rel: &Path) -> Arc<Path> {
        self.resources
            .first()
            .map(|r| &r.origin.file)
            .filter(|f| ***f == *rel)
            .cloned()
            .unwrap_or_else(|| Arc::from(rel))
    }
}

/// True for the file names the loader reads: `*.yaml` / `*.yml`, not hidden (editor swap and
/// our own temp files start with a dot).
pub fn is_manifest_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Digest of a file's bytes.
pub fn digest_bytes(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// Parses and validates one file's text. `rel` is the path relative to the manifests root.
pub fn parse_file(rel: &Path, text: &str) -> FileLoad {
    // Node positions only serve to name the line of an error: a file is parsed without them,
    // and again with them only when one of its documents has errors. (A YAML syntax error
    // carries its own position.)
    let load = parse_file_with(rel, text, yaml::parse_documents_unpositioned);
    if load.diagnostics.is_empty() || load.unreadable {
        return load;
    }
    parse_file_with(rel, text, yaml::parse_documents)
}

fn parse_file_with(
    rel: &Path,
    text: &str,
    parse: fn(&str) -> Result<Vec<SourceDoc>, yaml::YamlError>,
) -> FileLoad {
    let digest = digest_bytes(text.as_bytes());
    let file: Arc<Path> = Arc::from(rel);
    let mut out = FileLoad {
        digest,
        resources: Vec::new(),
        diagnostics: Vec::new(),
        claimed: Vec::new(),
        unreadable: false,
    };
    let docs = match parse(text) {
        Ok(docs) => docs,
        Err(e) => {
            out.unreadable = true;
            out.diagnostics.push(Diagnostic {
                file: rel.to_path_buf(),
                line: e.position.line,
                column: e.position.column,
                kind: None,
                name: None,
                pointer: String::new(),
                message: format!("invalid YAML: {}", e.message),
            });
            return out;
        }
    };
    // Exact capacity: a Vec grows to four elements at its first push, and most files hold one.
    out.resources.reserve_exact(docs.len());
    for doc in docs {
        match parse_document(&file, &doc) {
            Ok(resource) => out.resources.push(Arc::new(resource)),
            Err(mut diags) => {
                let kind = doc.value.get("kind").and_then(Value::as_str);
                let name = doc.value.pointer("/metadata/name").and_then(Value::as_str);
                if let (Some(Ok(kind)), Some(name)) = (kind.map(str::parse::<Kind>), name) {
                    out.claimed.push((kind, Arc::from(name)));
                }
                out.diagnostics.append(&mut diags);
            }
        }
    }
    out.resources.shrink_to_fit();
    out
}

/// Turns one parsed document into a resource, or the list of everything wrong with it.
pub fn parse_document(file: &Arc<Path>, doc: &SourceDoc) -> Result<Resource, Vec<Diagnostic>> {
    let value = &doc.value;
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let kind_text = value.get("kind").and_then(Value::as_str);
    let kind = kind_text.and_then(|k| k.parse::<Kind>().ok());
    let diag = |pointer: &str, message: String| {
        let pos = doc.position(pointer);
        Diagnostic {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            kind,
            name: name.clone(),
            pointer: pointer.to_owned(),
            message,
        }
    };

    if !value.is_object() {
        return Err(vec![diag(
            "",
            "a manifest must be a mapping with apiVersion, kind, metadata and spec".into(),
        )]);
    }
    let mut errors = Vec::new();
    match value.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        Some(other) => errors.push(diag(
            "/apiVersion",
            format!("unsupported apiVersion \"{other}\": expected \"{API_VERSION}\""),
        )),
        None => errors.push(diag(
            "",
            format!("missing required field \"apiVersion\" (expected \"{API_VERSION}\")"),
        )),
    }
    let Some(kind) = kind else {
        let valid = Kind::ALL.map(|k| k.as_str()).join(", ");
        errors.push(match kind_text {
            Some(k) => diag(
                "/kind",
                format!("unknown kind \"{k}\": expected one of {valid}"),
            ),
            None => diag("", format!("missing required field \"kind\" ({valid})")),
        });
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }

    for v in schema::validate(kind, value) {
        errors.push(diag(&v.pointer, v.message));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if kind == Kind::Schedule {
        // What the schema cannot say: the cron expression parses, the zone exists.
        if let Some(spec) = value.get("spec") {
            for (pointer, message) in crate::schedules::timing::check(spec) {
                errors.push(diag(pointer, message));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
    }
    // `{ref: NAME}` secrets the API stored for a webhook are that webhook's alone (SPEC §5a):
    // anything else naming one could send it elsewhere (e.g. as a model API key).
    if let (Some(spec), Some(name)) = (value.get("spec"), name.as_deref()) {
        let mut refs = Vec::new();
        stored_refs(spec, "/spec".to_owned(), &mut refs);
        for (pointer, secret) in refs {
            let owned = kind == Kind::Webhook && secret::webhook_owns(name, secret);
            if secret.starts_with(secret::WEBHOOK_SECRET_PREFIX) && !owned {
                errors.push(diag(
                    &pointer,
                    format!("the stored secret \"{secret}\" belongs to another resource (a webhook); a {{ref}} secret may only be used by the resource it was stored for: use fromEnv or fromFile, or give this resource its own secret"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
    }

    let metadata: Metadata = match value
        .get("metadata")
        .map(|m| serde_json::from_value(m.clone()))
    {
        Some(Ok(m)) => m,
        _ => return Err(vec![diag("/metadata", type_mismatch(kind, "metadata"))]),
    };
    let empty = Value::Object(Default::default());
    let spec = match Spec::from_value(kind, value.get("spec").unwrap_or(&empty)) {
        Ok(s) => s,
        Err(_) => return Err(vec![diag("/spec", type_mismatch(kind, "spec"))]),
    };
    let digest = resource_digest(kind, &metadata, &spec);
    Ok(Resource {
        kind,
        metadata,
        spec,
        digest,
        origin: Origin {
            file: file.clone(),
            line: doc.start.line,
            column: doc.start.column,
        },
    })
}

/// Every `{ref: NAME}` secret reference in `v` (an object whose only key is `ref`).
fn stored_refs<'a>(v: &'a Value, pointer: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(map) => {
            if let (1, Some(Value::String(name))) = (map.len(), map.get("ref")) {
                out.push((pointer, name));
                return;
            }
            for (k, child) in map {
                stored_refs(child, format!("{pointer}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                stored_refs(child, format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

// The schema accepted the document, so this is our bug (schema and types disagree); the
// serde message is not shown because it can quote the value, which may be a pasted secret.
fn type_mismatch(kind: Kind, field: &str) -> String {
    format!("{field} passed the {kind} schema but not the {kind} type; please report this")
}

/// Digest of a resource's meaning: kind, metadata and typed spec in canonical order.
pub fn resource_digest(kind: Kind, metadata: &Metadata, spec: &Spec) -> Digest {
    let mut h = Sha256::new();
    h.update(kind.as_str());
    h.update([0]);
    h.update(serde_json::to_vec(metadata).unwrap_or_default());
    h.update([0]);
    h.update(serde_json::to_vec(spec).unwrap_or_default());
    h.finalize().into()
}

/// Every manifest file below `root`, relative to it, sorted; hidden files and directories are
/// skipped, and so are symlinked directories (they can form cycles).
pub fn scan(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let _: ControlFlow<()> = scan_into(root, Path::new(""), &mut |p| {
        out.push(p);
        ControlFlow::Continue(())
    })?;
    out.sort_unstable_by(|a, b| path_order(a, b));
    Ok(out)
}

/// True when some manifest file below `root` (relative to it) satisfies `pred`; stops at the
/// first, in directory order (nothing is sorted).
pub fn any_file(root: &Path, mut pred: impl FnMut(&Path) -> bool) -> io::Result<bool> {
    let mut found = false;
    let _: ControlFlow<()> = scan_into(root, Path::new(""), &mut |p| {
        found = pred(&p);
        if found {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(found)
}

/// The order of `Path`'s `Ord` for the relative paths [`scan`] finds (plain names joined by
/// single slashes): component by component is byte by byte with the separator lowest. The
/// same answer as comparing `Components`, without parsing them (sorting 100,000 paths that way
/// was a tenth of a second of start-up).
fn path_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    let key = |c: &u8| if *c == b'/' { 0 } else { *c };
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    a.iter().map(key).cmp(b.iter().map(key))
}

/// Walks the manifest files below `root.join(rel)`, in directory order, until `visit` breaks.
fn scan_into(
    root: &Path,
    rel: &Path,
    visit: &mut impl FnMut(PathBuf) -> ControlFlow<()>,
) -> io::Result<ControlFlow<()>> {
    let dir = root.join(rel);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        // A directory removed while we walk is simply gone.
        Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.as_os_str().is_empty() => {
            return Ok(ControlFlow::Continue(()))
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let child = rel.join(&name);
        let file_type = entry.file_type()?;
        let flow = if file_type.is_dir() {
            scan_into(root, &child, visit)?
        } else if is_manifest_file(&child)
            && (file_type.is_file() || std::fs::metadata(root.join(&child))?.is_file())
        {
            visit(child)
        } else {
            ControlFlow::Continue(())
        };
        if flow.is_break() {
            return Ok(flow);
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Reads one manifest file; `None` when it does not exist (any more). The text comes back with
/// a UTF-8 BOM removed and CR-only line ends turned into LF ([`yaml::normalize_text`]), so a
/// write-back of such a file writes it in that form.
pub fn read_file(root: &Path, rel: &Path) -> io::Result<Option<String>> {
    match std::fs::read(root.join(rel)) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(|t| Some(yaml::normalize_text(t)))
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not UTF-8 text", rel.display()),
                )
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads and parses one file; `None` when it does not exist (any more). A file that is not
/// UTF-8 is reported as an unreadable manifest rather than failing the whole load.
pub fn load_path(root: &Path, rel: &Path) -> io::Result<Option<FileLoad>> {
    match read_file(root, rel) {
        Ok(Some(text)) => Ok(Some(parse_file(rel, &text))),
        Ok(None) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            let bytes = std::fs::read(root.join(rel))?;
            let mut load = parse_file(rel, "");
            load.digest = digest_bytes(&bytes);
            load.unreadable = true;
            load.diagnostics.push(Diagnostic {
                file: rel.to_path_buf(),
                line: 1,
                column: 1,
                kind: None,
                name: None,
                pointer: String::new(),
                message: "file is not UTF-8 text".into(),
            });
            Ok(Some(load))
        }
        Err(e) => Err(e),
    }
}

/// The manifests of a directory: every file with what it declares.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    /// Files by path relative to the root, in path order (which decides duplicate winners).
    /// The key is the path its resources' origins share ([`FileLoad::shared_path`]).
    pub files: BTreeMap<Arc<Path>, FileLoad>,
}

impl ManifestSet {
    /// Loads every manifest below `root`.
    pub fn load(root: &Path) -> io::Result<ManifestSet> {
        let mut set = ManifestSet::default();
        for rel in scan(root)? {
            set.load_file(root, &rel)?;
        }
        Ok(set)
    }

    /// Loads (or reloads) one file; a file that no longer exists is dropped from the set.
    pub fn load_file(&mut self, root: &Path, rel: &Path) -> io::Result<()> {
        match load_path(root, rel)? {
            Some(load) => self.files.insert(load.shared_path(rel), load),
            None => self.files.remove(rel),
        };
        Ok(())
    }

    /// Every resource in force, in file order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.files
            .values()
            .flat_map(|f| f.resources.iter().map(|r| &**r))
    }

    /// The first resource of this kind and name, in file order.
    pub fn find(&self, kind: Kind, name: &str) -> Option<&Resource> {
        self.resources()
            .find(|r| r.kind == kind && r.name() == name)
    }

    /// Errors of the files themselves (not the cross-resource rules).
    pub fn file_diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.files.values().flat_map(|f| f.diagnostics.iter())
    }

    /// Digest over every file's path and content: the manifests' revision when not in git.
    pub fn revision(&self) -> Digest {
        let mut h = Sha256::new();
        for (path, file) in &self.files {
            h.update(path.to_string_lossy().as_bytes());
            h.update([0]);
            h.update(file.digest);
        }
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn path_order_is_the_order_of_path_components() {
        let names = [
            "a.yaml",
            "a-b/x.yaml",
            "a/x.yaml",
            "a/b/c.yaml",
            "a.b/x.yaml",
            "a b/x.yaml",
            "ab.yaml",
            "a/b.yaml",
            "a/b-c.yaml",
            "a/b/a.yaml",
            "A/x.yaml",
            "a!/x.yaml",
            "a/.x.yaml",
            "é/x.yaml",
        ];
        for a in names {
            for b in names {
                let (a, b) = (Path::new(a), Path::new(b));
                assert_eq!(
                    path_order(a, b),
                    a.cmp(b),
                    "{} vs {}",
                    a.display(),
                    b.display()
                );
            }
        }
    }
    use super::*;

    const TOKEN: &str = "apiVersion: openclaw.dev/v1
kind: Token
metadata:
  name: ci
spec:
  scope: execute
  sha256: 0a0000000000000000000000000000000000000000000000000000000000000b
";

    #[test]
    fn a_valid_document_becomes_a_resource_with_its_origin() {
        let load = parse_file(Path::new("tokens/ci.yaml"), TOKEN);
        assert!(load.diagnostics.is_empty(), "{:?}", load.diagnostics);
        let r = &load.resources[0];
        assert_eq!((r.kind, r.name()), (Kind::Token, "ci"));
        assert_eq!(&*r.origin.file, Path::new("tokens/ci.yaml"));
        assert_eq!(r.origin.line, 1);
    }

    #[test]
    fn origins_without_positions_are_those_with_them() {
        // Loading parses without node positions: a document's line must not depend on that.
        let text = format!("# leading comment\n\n{TOKEN}---\n# between\n{TOKEN}");
        let text = text.replacen("name: ci", "name: other", 1);
        let load = parse_file(Path::new("t.yaml"), &text);
        let lines: Vec<usize> = load.resources.iter().map(|r| r.origin.line).collect();
        let positioned: Vec<usize> = yaml::parse_documents(&text)
            .unwrap()
            .iter()
            .map(|d| d.start.line)
            .collect();
        assert_eq!(lines, positioned);
        assert_eq!(lines, [3, 12]);
    }

    #[test]
    fn every_error_of_every_document_is_reported_with_its_position() {
        let text = format!(
            "{}---\napiVersion: openclaw.dev/v1\nkind: Token\nmetadata:\n  name: bad\nspec:\n  scope: admin\n  sha256: xyz\n---\nkind: Gizmo\n",
            TOKEN
        );
        let load = parse_file(Path::new("t.yaml"), &text);
        assert_eq!(load.resources.len(), 1);
        let found: Vec<_> = load
            .diagnostics
            .iter()
            .map(|d| (d.line, d.pointer.as_str(), d.name.as_deref()))
            .collect();
        assert!(
            found.contains(&(14, "/spec/scope", Some("bad"))),
            "{found:?}"
        );
        assert!(
            found.contains(&(15, "/spec/sha256", Some("bad"))),
            "{found:?}"
        );
        assert!(
            load.diagnostics
                .iter()
                .any(|d| d.line == 17 && d.message.contains("unknown kind \"Gizmo\"")),
            "{:?}",
            load.diagnostics
        );
    }

    #[test]
    fn yaml_syntax_errors_name_the_line() {
        let load = parse_file(Path::new("x.yaml"), "kind: Token\nmetadata: [unclosed\n");
        assert_eq!(load.diagnostics.len(), 1);
        assert!(load.diagnostics[0].line >= 2);
        assert!(load.diagnostics[0].message.starts_with("invalid YAML"));
    }

    #[test]
    fn digest_ignores_formatting_and_spelled_out_defaults() {
        let a = parse_file(
            Path::new("a.yaml"),
            "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata: {name: default}\nspec: {}\n",
        );
        let b = parse_file(
            Path::new("b.yaml"),
            "# comment\napiVersion: openclaw.dev/v1\nkind: Config\nmetadata:\n  name: default\nspec:\n  git: {auto_commit: false}\n",
        );
        assert_eq!(a.resources[0].digest, b.resources[0].digest);
    }

    #[test]
    fn scan_skips_hidden_and_non_yaml_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/.git")).unwrap();
        std::fs::write(dir.path().join("a/one.yaml"), "").unwrap();
        std::fs::write(dir.path().join("two.yml"), "").unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "").unwrap();
        std::fs::write(dir.path().join("a/.git/x.yaml"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        assert_eq!(
            scan(dir.path()).unwrap(),
            vec![PathBuf::from("a/one.yaml"), PathBuf::from("two.yml")]
        );
    }
}
