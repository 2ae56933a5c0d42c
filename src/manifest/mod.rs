//! Manifests: the desired state users commit to git.
//!
//! Data flows `yaml` (text -> JSON values with positions) -> `schema` (JSON Schema per kind)
//! -> `kinds` (typed specs) -> `load` (files and directories into a [`ManifestSet`]) ->
//! `rules` (cross-resource rules) -> consumers (`claw validate`, the reconciler). `write` edits
//! one document of one file atomically (in place, by `edit`), for API write-backs and `claw token`.

pub mod diagnostic;
pub mod edit;
pub mod kinds;
pub mod load;
pub mod rules;
pub mod scaffold;
pub mod schema;
pub mod secret;
pub mod write;
pub mod yaml;

use std::path::Path;
use std::sync::Arc;

pub use diagnostic::Diagnostic;
pub use kinds::{Kind, Metadata, Spec, API_VERSION};
pub use load::{FileLoad, ManifestSet};

/// A SHA-256 digest (of a file's bytes or of a resource's canonical form).
pub type Digest = [u8; 32];

/// Where a resource's document lives, relative to the manifests root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// File path relative to the manifests root.
    pub file: Arc<Path>,
    /// 1-based line of the document's root node.
    pub line: usize,
    /// 1-based column of the document's root node.
    pub column: usize,
}

/// One declared resource: a valid document of a manifest file.
#[derive(Clone, Debug)]
pub struct Resource {
    pub kind: Kind,
    pub metadata: Metadata,
    pub spec: Spec,
    /// Digest of the typed, canonical form: formatting, key order and spelled-out defaults
    /// do not change it, so only a real change of meaning triggers a reconcile.
    pub digest: Digest,
    pub origin: Origin,
}

impl Resource {
    /// The resource's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `Kind/name`, the way messages name a resource.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind, self.metadata.name)
    }
}

/// Short printable form of a digest, as revisions are shown.
pub fn short_digest(digest: &Digest) -> String {
    format!("sha256:{}", hex::encode(&digest[..8]))
}
