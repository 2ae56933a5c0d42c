//! Resolving secret references (`{fromEnv}`, `{fromFile}`, `{ref}`) to their values.
//!
//! Values are resolved when needed and never logged, stored in manifests or returned by the API.
//! `{ref: NAME}` names a file under `<data>/secrets/`, written with mode 0600 by the server.

use std::path::{Path, PathBuf};

use super::kinds::SecretRef;

/// Why a secret reference could not be resolved. Messages name the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("secret file {path} cannot be read: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stored secret \"{0}\" does not exist")]
    MissingRef(String),
    #[error("stored secret name \"{0}\" is not a valid name")]
    BadRef(String),
}

/// Where relative `fromFile` paths and stored secrets are found.
#[derive(Debug, Clone)]
pub struct SecretContext {
    /// Directory relative `fromFile` paths are resolved against (the manifests root).
    pub base_dir: PathBuf,
    /// The server's data dir (holds `secrets/`).
    pub data_dir: PathBuf,
}

impl SecretContext {
    /// Resolves a reference to its value, trimming one trailing newline from files.
    pub fn resolve(&self, secret: &SecretRef) -> Result<String, SecretError> {
        match secret {
            SecretRef::FromEnv(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))
            }
            SecretRef::FromFile(path) => {
                let path = self.base_dir.join(path);
                read_trimmed(&path).map_err(|source| SecretError::File { path, source })
            }
            SecretRef::Ref(name) => {
                let path = stored_secret_path(&self.data_dir, name)
                    .ok_or_else(|| SecretError::BadRef(name.clone()))?;
                read_trimmed(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => SecretError::MissingRef(name.clone()),
                    _ => SecretError::File { path, source: e },
                })
            }
        }
    }
}

/// Prefix of the stored secrets the API creates for webhooks.
pub const WEBHOOK_SECRET_PREFIX: &str = "webhook-";

/// A fresh stored-secret name for webhook `webhook`: `webhook-<name>-<8 hex>`, or, when that
/// would pass the 63 characters a `{ref}` may have, `webhook-<16 hex of the name's
/// SHA-256>-<8 hex>`. New per write, so a refused write never loses the secret in force.
pub fn new_webhook_secret_name(webhook: &str) -> String {
    let nonce = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let long = format!("{WEBHOOK_SECRET_PREFIX}{webhook}-{nonce}");
    if long.len() <= 63 {
        return long;
    }
    format!("{WEBHOOK_SECRET_PREFIX}{}-{nonce}", owner_digest(webhook))
}

fn owner_digest(webhook: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(webhook.as_bytes())[..8])
}

/// Whether the stored secret `name` is one the API created for webhook `webhook` (so that
/// webhook, and only it, may refer to it).
pub fn webhook_owns(webhook: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(WEBHOOK_SECRET_PREFIX) else {
        return false;
    };
    let Some((owner, nonce)) = rest.rsplit_once('-') else {
        return false;
    };
    nonce.len() == 8
        && nonce.bytes().all(|b| b.is_ascii_hexdigit())
        && (owner == webhook || owner == owner_digest(webhook))
}

/// Path of a stored secret; `None` for names that could leave the secrets directory.
pub fn stored_secret_path(data_dir: &Path, name: &str) -> Option<PathBuf> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| data_dir.join("secrets").join(name))
}

/// Stores a secret under `<data>/secrets/<name>` (mode 0600, written atomically), for
/// `{ref: NAME}` references.
pub fn store_secret(data_dir: &Path, name: &str, value: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = stored_secret_path(data_dir, name).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid secret name \"{name}\""),
        )
    })?;
    let dir = data_dir.join("secrets");
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(value.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the temp files an interrupted [`store_secret`] left in `<data>/secrets`; returns
/// how many.
pub fn clean_temp_files(data_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join("secrets")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.ends_with(".tmp")
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Removes a stored secret; a missing one is fine.
pub fn remove_secret(data_dir: &Path, name: &str) -> std::io::Result<()> {
    match stored_secret_path(data_dir, name).map(std::fs::remove_file) {
        Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn read_trimmed(path: &Path) -> std::io::Result<String> {
    let mut s = std::fs::read_to_string(path)?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_secret_names_fit_a_ref_and_name_their_owner() {
        for name in ["a", &"b".repeat(46), &"c".repeat(47), &"d".repeat(63)] {
            let secret = new_webhook_secret_name(name);
            assert!(secret.len() <= 63, "{secret}");
            assert!(webhook_owns(name, &secret), "{name} owns {secret}");
            assert!(!webhook_owns("other", &secret));
            assert!(stored_secret_path(Path::new("/d"), &secret).is_some());
        }
        assert!(!webhook_owns("a", "webhook-a-b-12345678"));
        assert!(webhook_owns("a-b", "webhook-a-b-12345678"));
    }

    #[test]
    fn stored_secrets_are_private_files_resolved_by_ref() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        store_secret(dir.path(), "webhook-a", "s3cret").unwrap();
        let mode = std::fs::metadata(dir.path().join("secrets/webhook-a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let ctx = SecretContext {
            base_dir: dir.path().into(),
            data_dir: dir.path().into(),
        };
        assert_eq!(
            ctx.resolve(&SecretRef::Ref("webhook-a".into())).unwrap(),
            "s3cret"
        );
        assert!(store_secret(dir.path(), "../escape", "x").is_err());
        remove_secret(dir.path(), "webhook-a").unwrap();
        remove_secret(dir.path(), "webhook-a").unwrap();
        assert!(ctx.resolve(&SecretRef::Ref("webhook-a".into())).is_err());
    }

    #[test]
    fn resolves_files_relative_to_the_base_and_refuses_escaping_refs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key.txt"), "s3cret\n").unwrap();
        let ctx = SecretContext {
            base_dir: dir.path().into(),
            data_dir: dir.path().into(),
        };
        assert_eq!(
            ctx.resolve(&SecretRef::FromFile("key.txt".into())).unwrap(),
            "s3cret"
        );
        assert!(matches!(
            ctx.resolve(&SecretRef::Ref("../key.txt".into())),
            Err(SecretError::BadRef(_))
        ));
        assert!(matches!(
            ctx.resolve(&SecretRef::Ref("nope".into())),
            Err(SecretError::MissingRef(_))
        ));
        let err = ctx
            .resolve(&SecretRef::FromEnv("CLAW_TEST_SURELY_UNSET_VAR".into()))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable CLAW_TEST_SURELY_UNSET_VAR is not set"
        );
    }
}
