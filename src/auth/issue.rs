//! Issuing and revoking tokens by editing Token manifests (what `claw token` and `claw init`
//! do). The token is generated here, its SHA-256 written, and the token returned to be shown
//! once; it is never written anywhere.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{token, Scope};
use crate::manifest::write::{self, Edit, WriteError};
use crate::manifest::{Kind, ManifestSet};

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub scope: Scope,
    pub expires_at: Option<OffsetDateTime>,
    pub description: Option<&'a str>,
    /// The token's own rate limit (`None`: the Config's applies).
    pub rate_limit: Option<crate::manifest::kinds::TokenRateLimit>,
}

/// A created token: show `token` once.
#[derive(Debug)]
pub struct Issued {
    pub token: String,
    /// The manifest written, relative to the root.
    pub path: PathBuf,
}

/// Writes the Token manifest of a new token under `root` and returns the token.
pub fn create(root: &Path, new: &NewToken<'_>) -> Result<Issued, WriteError> {
    let set = ManifestSet::load(root).map_err(|source| WriteError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let token = token::generate();
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc());
    let mut spec = json!({
        "scope": new.scope.as_str(),
        "sha256": token::hash_hex(&token),
        "createdAt": now.format(&Rfc3339).unwrap_or_default(),
    });
    if let Some(at) = new.expires_at {
        spec["expiresAt"] = Value::String(at.format(&Rfc3339).unwrap_or_default());
    }
    if let Some(d) = new.description {
        spec["description"] = Value::String(d.to_owned());
    }
    if let Some(limit) = &new.rate_limit {
        spec["rate_limit"] = serde_json::to_value(limit).unwrap_or(Value::Null);
    }
    let edit = Edit::Create {
        kind: Kind::Token,
        name: new.name.to_owned(),
        spec,
        labels: Default::default(),
    };
    let prepared = write::prepare(root, &set, &edit, None)?;
    write::commit(root, &prepared)?;
    Ok(Issued {
        token,
        path: prepared.path,
    })
}

/// Removes the Token manifest named `name`; returns the file it was in.
pub fn revoke(root: &Path, name: &str) -> Result<PathBuf, WriteError> {
    let set = ManifestSet::load(root).map_err(|source| WriteError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let edit = Edit::Delete {
        kind: Kind::Token,
        name: name.to_owned(),
    };
    let prepared = write::prepare(root, &set, &edit, None)?;
    write::commit(root, &prepared)?;
    Ok(prepared.path)
}
