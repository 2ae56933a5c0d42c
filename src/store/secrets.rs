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

use super::{Store, StoreError};

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

/// Why a stored secret cannot be opened: the message names the secret and the keys, never a
/// value.
fn unopenable(name: &str, sealed_with: &str, key: &SecretKey) -> String {
    if sealed_with == key.id() {
        format!("stored secret \"{name}\" cannot be opened with this replica's key (the row is damaged); set the webhook's secret again")
    } else {
        format!(
            "stored secret \"{name}\" was sealed with key {sealed_with}, but this replica's key is {}: give every replica the same CLAW_SECRET_KEY / --secret-key-file",
            key.id()
        )
    }
}

/// Seals `value` under the store's key and keeps it as `name` (replacing one of that name).
pub async fn put(store: &Store, name: &str, value: &str) -> Result<(), StoreError> {
    let key = store.secret_key().ok_or(SecretKeyError::Missing)?;
    let (nonce, sealed) = key.seal(name, value);
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    with_pool!(store, pool => {
        sqlx::query(
            "INSERT INTO secrets (name, key_id, nonce, sealed, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET key_id = $2, nonce = $3, sealed = $4, updated_at = $5",
        )
        .bind(name)
        .bind(key.id())
        .bind(&nonce)
        .bind(&sealed)
        .bind(&now)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Forgets the secret `name`; a missing one is fine.
pub async fn remove(store: &Store, name: &str) -> Result<(), StoreError> {
    with_pool!(store, pool => {
        sqlx::query("DELETE FROM secrets WHERE name = $1")
            .bind(name)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The secret `name`, opened with `key`, read in a transaction: `None` when there is no such
/// row; inside, its value or why it cannot be opened.
pub async fn open_one(
    tx: &mut super::Tx,
    key: Option<&SecretKey>,
    name: &str,
) -> Result<Option<Result<String, String>>, StoreError> {
    let row: Option<(String, String, String)> = with_tx!(tx, conn => {
        sqlx::query_as("SELECT key_id, nonce, sealed FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(conn)
            .await?
    });
    Ok(row.map(|(key_id, nonce, sealed)| open_row(key, name, &key_id, &nonce, &sealed)))
}

fn open_row(
    key: Option<&SecretKey>,
    name: &str,
    key_id: &str,
    nonce: &str,
    sealed: &str,
) -> Result<String, String> {
    match key {
        None => Err(format!(
            "stored secret \"{name}\" is kept in the database, and this replica has no key (CLAW_SECRET_KEY / --secret-key-file)"
        )),
        Some(key) => key
            .open(name, nonce, sealed)
            .ok_or_else(|| unopenable(name, key_id, key)),
    }
}

/// Every stored secret, opened with the store's key: its value, or why it cannot be opened.
pub async fn open_all(store: &Store) -> Result<Vec<(String, Result<String, String>)>, StoreError> {
    let rows: Vec<(String, String, String, String)> = with_pool!(store, pool => {
        sqlx::query_as("SELECT name, key_id, nonce, sealed FROM secrets ORDER BY name")
            .fetch_all(pool)
            .await?
    });
    let key = store.secret_key();
    Ok(rows
        .into_iter()
        .map(|(name, key_id, nonce, sealed)| {
            let value = open_row(key, &name, &key_id, &nonce, &sealed);
            (name, value)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_sql;

    fn key(byte: u8) -> SecretKey {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode([byte; 32]);
        SecretKey::from_base64(&text, "test").unwrap()
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64_and_seal_per_name() {
        let e = SecretKey::from_base64("c2hvcnQ=", "CLAW_SECRET_KEY").unwrap_err();
        assert!(
            e.to_string().contains("CLAW_SECRET_KEY") && e.to_string().contains("5 bytes"),
            "{e}"
        );
        assert!(SecretKey::from_base64("not base64!", "x").is_err());
        let k = key(1);
        let (nonce, sealed) = k.seal("a", "hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(k.open("a", &nonce, &sealed).as_deref(), Some("hunter2"));
        // Bound to its name, and to its key.
        assert_eq!(k.open("b", &nonce, &sealed), None);
        assert_eq!(key(2).open("a", &nonce, &sealed), None);
        assert_ne!(k.id(), key(2).id());
    }

    #[tokio::test]
    async fn secrets_round_trip_and_another_key_names_what_it_cannot_open() {
        for (_guard, mut store) in test_sql::stores().await {
            assert!(put(&store, "s", "v").await.is_err(), "no key, no secret");
            store.set_secret_key(Some(key(1)));
            put(&store, "webhook-a-0000000a", "first").await.unwrap();
            put(&store, "webhook-a-0000000a", "second").await.unwrap();
            put(&store, "webhook-b-0000000b", "other").await.unwrap();
            let stored = test_sql::text(
                &store,
                "SELECT sealed FROM secrets WHERE name = 'webhook-b-0000000b'",
            )
            .await;
            assert!(!stored.contains("other"));
            let all = open_all(&store).await.unwrap();
            assert_eq!(
                all,
                [
                    ("webhook-a-0000000a".to_owned(), Ok("second".to_owned())),
                    ("webhook-b-0000000b".to_owned(), Ok("other".to_owned())),
                ]
            );
            store.set_secret_key(Some(key(2)));
            let all = open_all(&store).await.unwrap();
            let e = all[0].1.as_ref().unwrap_err();
            assert!(
                e.contains("webhook-a-0000000a")
                    && e.contains(key(1).id())
                    && e.contains(key(2).id()),
                "{e}"
            );
            remove(&store, "webhook-a-0000000a").await.unwrap();
            assert_eq!(open_all(&store).await.unwrap().len(), 1);
        }
    }
}
