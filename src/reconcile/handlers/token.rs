//! The Token handler: keeps the `tokens` table and the in-memory [`TokenTable`] equal to the
//! Token manifests, so a token created or revoked on disk takes effect without a restart.
//!
//! [`TokenTable`]: crate::auth::TokenTable

use std::sync::{Arc, Mutex};

use crate::store::Tx;
use async_trait::async_trait;

use crate::auth::{TokenHash, TokenRecord};
use crate::live::Live;
use crate::manifest::kinds::TokenSpec;
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::handler::{ApplyError, Handler, Outcome};
use crate::store::{self, StoreError};

#[derive(Default)]
struct Staged {
    upserts: Vec<TokenRecord>,
    removes: Vec<String>,
}

/// Converges tokens.
pub struct TokenHandler {
    live: Arc<Live>,
    staged: Mutex<Staged>,
}

impl TokenHandler {
    /// A handler publishing into `live`.
    pub fn new(live: Arc<Live>) -> Self {
        TokenHandler {
            live,
            staged: Mutex::new(Staged::default()),
        }
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, Staged> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Handler for TokenHandler {
    fn kind(&self) -> Kind {
        Kind::Token
    }

    async fn apply_many(
        &self,
        tx: &mut Tx,
        resources: &[&Resource],
    ) -> Vec<Result<Outcome, ApplyError>> {
        // Rows go in in digest order. Names come sorted, so otherwise the `sha256` index is
        // the one written at random, and at 70,000 tokens (5.5 MB) it outgrows SQLite's page
        // cache: every insert read its page back from the WAL and spilled it again (that was
        // half of a 100,000-resource start-up's SQLite time). The name index, in random order
        // instead, is a quarter of that size and stays cached.
        let mut keyed: Vec<(&str, usize)> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| match &r.spec {
                Spec::Token(spec) => (spec.sha256.as_str(), i),
                _ => ("", i),
            })
            .collect();
        // By index among equal digests: of two tokens with one digest, the first by name is
        // applied, as before.
        keyed.sort_unstable();
        let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
        let mut out: Vec<Option<Result<Outcome, ApplyError>>> = std::iter::repeat_with(|| None)
            .take(resources.len())
            .collect();
        for chunk in order.chunks(500) {
            let rows: Vec<(&str, &TokenSpec)> = chunk
                .iter()
                .filter_map(|&i| match &resources[i].spec {
                    Spec::Token(spec) if hash_of(spec).is_ok() => Some((resources[i].name(), spec)),
                    _ => None,
                })
                .collect();
            let batched =
                rows.len() == chunk.len() && store::tokens::upsert_many(tx, &rows).await.is_ok();
            for &i in chunk {
                out[i] = Some(if batched {
                    self.record(resources[i])
                } else {
                    // Something in the chunk is wrong (a duplicate digest): one by one, so
                    // that only the culprit fails.
                    self.apply(tx, resources[i]).await
                });
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ApplyError::new("Skipped", "not applied"))))
            .collect()
    }

    async fn apply(&self, tx: &mut Tx, r: &Resource) -> Result<Outcome, ApplyError> {
        let Spec::Token(spec) = &r.spec else {
            return Err(ApplyError::new("WrongKind", "not a Token"));
        };
        hash_of(spec)?;
        match store::tokens::upsert(tx, r.name(), spec).await {
            Ok(()) => {}
            Err(StoreError::Query(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                return Err(ApplyError::new(
                    "DuplicateDigest",
                    "another Token has the same sha256; each token must be generated separately (claw token create)",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.record(r)
    }

    async fn delete(&self, tx: &mut Tx, name: &str) -> Result<(), ApplyError> {
        store::tokens::delete(tx, name).await?;
        self.staged().removes.push(name.to_owned());
        Ok(())
    }

    fn publish(&self) {
        let staged = std::mem::take(&mut *self.staged());
        self.live.tokens.apply(staged.upserts, &staged.removes);
    }

    fn discard(&self) {
        *self.staged() = Staged::default();
    }
}

fn hash_of(spec: &TokenSpec) -> Result<TokenHash, ApplyError> {
    let mut hash: TokenHash = [0; 32];
    hex::decode_to_slice(&spec.sha256, &mut hash)
        .map_err(|_| ApplyError::new("InvalidDigest", "sha256 is not 64 hex digits"))?;
    Ok(hash)
}

impl TokenHandler {
    /// Stages a token whose row is written, for the table in force after commit.
    fn record(&self, r: &Resource) -> Result<Outcome, ApplyError> {
        let Spec::Token(spec) = &r.spec else {
            return Err(ApplyError::new("WrongKind", "not a Token"));
        };
        let hash = hash_of(spec)?;
        let expires_at = spec.expires_at.map(|t| t.unix_timestamp());
        self.staged().upserts.push(TokenRecord {
            name: r.metadata.name.clone(),
            scope: spec.scope,
            hash,
            expires_at,
            last_used: None,
            rate_limit: spec.rate_limit.clone(),
        });
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Ok(match expires_at {
            Some(at) if at <= now => Outcome {
                reason: "Expired",
                message: "token has expired; requests with it are refused".into(),
            },
            _ => Outcome::applied(format!("token accepted with scope {}", spec.scope.as_str())),
        })
    }
}
