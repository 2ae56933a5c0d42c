//! Secrets kept in the database (PostgreSQL deployments): a webhook `secret` given to the API
//! is stored in the `secrets` table encrypted with XChaCha20-Poly1305 under the key every
//! replica is given (`CLAW_SECRET_KEY`, 32 bytes base64, or `--secret-key-file`), so any
//! replica can sign with it and the database alone does not reveal it. Each row records which
//! key sealed it (the first 8 bytes of the key's SHA-256, hex), so a replica with another key
//! can say which secrets it cannot open. On SQLite secrets stay files in the data dir
//! (`manifest::secret`).

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Why a secret key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error("{source_name}: the secret key must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`); got {got}")]
    Invalid { source_name: String, got: String },
    #[error("secret key file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a database URL is set but no secret key: give every replica the same key in CLAW_SECRET_KEY (32 bytes, base64; e.g. `openssl rand -base64 32`) or --secret-key-file, so that webhook secrets can be kept in the shared database encrypted")]
    Missing,
}

/// The key that seals secrets kept in the database.
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    /// A key from its base64 text (`source_name` names where it came from, for errors).
    pub fn from_base64(text: &str, source_name: &str) -> Result<SecretKey, SecretKeyError> {
        let invalid = |got: String| SecretKeyError::Invalid {
            source_name: source_name.to_owned(),
            got,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| invalid("text that is not base64".into()))?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| invalid(format!("{} bytes", bytes.len())))?;
        Ok(Self::from_bytes(&key))
    }

    /// A key from a file holding its base64 text.
    pub fn from_file(path: &std::path::Path) -> Result<SecretKey, SecretKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretKeyError::File {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_base64(&text, &format!("secret key file {}", path.display()))
    }

    fn from_bytes(key: &[u8; 32]) -> SecretKey {
        use sha2::Digest as _;
        let id = hex::encode(&sha2::Sha256::digest(key)[..8]);
        SecretKey {
            cipher: XChaCha20Poly1305::new(key.into()),
            id,
        }
    }

    /// Which key this is (first 8 bytes of its SHA-256, hex): stored with each sealed secret.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `value` for the row named `name` (the name is authenticated with it, so a sealed
    /// value cannot be moved to another row): (nonce, ciphertext), both base64.
    pub fn seal(&self, name: &str, value: &str) -> (String, String) {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                chacha20poly1305::aead::Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .unwrap_or_default();
        let b64 = base64::engine::general_purpose::STANDARD;
        (b64.encode(nonce_bytes), b64.encode(sealed))
    }

    /// Opens what [`SecretKey::seal`] sealed; `None` when this key cannot (another key, or
    /// the row was tampered with).
    pub fn open(&self, name: &str, nonce: &str, sealed: &str) -> Option<String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce: [u8; 24] = b64.decode(nonce).ok()?.as_slice().try_into().ok()?;
        let sealed = b64.decode(sealed).ok()?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                chacha20poly1305::aead::Payload {
                    msg: &sealed,
                    aad: name.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}
