//! Who may call the API: the token format ([`token`]) and the [`TokenTable`] of tokens in force.
//!
//! The table is published by the Token reconcile handler and read lock-free on every request:
//! a lookup hashes the presented token and probes a map keyed by SHA-256 digests, so the server
//! never holds a token in memory longer than the request, and probing by digest leaks nothing
//! useful about stored tokens through timing.

pub mod issue;
pub mod token;

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use crate::manifest::kinds::TokenRateLimit;
use arc_swap::ArcSwap;

pub use crate::manifest::kinds::Scope;
pub use token::TokenHash;

/// One token the server accepts.
#[derive(Debug)]
pub struct TokenEntry {
    /// The Token resource's name (safe to log; the token itself never is).
    pub name: Arc<str>,
    /// What the token may do.
    pub scope: Scope,
    /// Unix seconds after which the token is refused.
    pub expires_at: Option<i64>,
    /// The token's own rate limit (`None`: the Config's applies).
    pub rate_limit: Option<TokenRateLimit>,
    hash: TokenHash,
    /// Unix seconds of the last authenticated request, 0 when never used.
    last_used: AtomicI64,
    last_used_dirty: AtomicBool,
}

impl TokenEntry {
    /// Records a successful authentication; persisted later in batches, off the request path.
    pub fn touch(&self, now: i64) {
        // Second resolution is all `token list` shows; skip the store when nothing changes.
        if self.last_used.swap(now, Ordering::Relaxed) != now {
            self.last_used_dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Unix seconds of the last use, if any.
    pub fn last_used(&self) -> Option<i64> {
        match self.last_used.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }
}

/// A token as the reconciler hands it to the table.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// Shared with the Token resource's copy of its name.
    pub name: Arc<str>,
    pub scope: Scope,
    pub hash: TokenHash,
    pub expires_at: Option<i64>,
    pub last_used: Option<i64>,
    /// The Token's `rate_limit`, if it has its own.
    pub rate_limit: Option<TokenRateLimit>,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token")]
    Invalid,
    #[error("token '{0}' has expired")]
    Expired(Arc<str>),
}

#[derive(Default, Clone)]
struct Tables {
    by_hash: HashMap<TokenHash, Arc<TokenEntry>>,
    /// The same entries found by name: a set of pointers, not a second map holding names and
    /// digests (at 70,000 tokens that map alone took 6 MB).
    by_name: HashSet<ByName>,
}

/// An entry that hashes and compares as its name.
#[derive(Clone)]
struct ByName(Arc<TokenEntry>);

impl Borrow<str> for ByName {
    fn borrow(&self) -> &str {
        &self.0.name
    }
}

impl Hash for ByName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that lookups by `&str` find it.
        self.0.name.as_ref().hash(state)
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ByName {}

/// The set of tokens in force, swapped atomically as a whole.
#[derive(Default)]
pub struct TokenTable {
    tables: ArcSwap<Tables>,
}

impl TokenTable {
    /// Checks a presented bearer token.
    pub fn authenticate(&self, presented: &str, now: i64) -> Result<Arc<TokenEntry>, AuthError> {
        if !token::is_well_formed(presented) {
            return Err(AuthError::Invalid);
        }
        let hash = token::hash(presented);
        let tables = self.tables.load();
        let entry = tables.by_hash.get(&hash).ok_or(AuthError::Invalid)?;
        if entry.expires_at.is_some_and(|at| now >= at) {
            return Err(AuthError::Expired(entry.name.clone()));
        }
        Ok(entry.clone())
    }

    /// Applies a batch of changes in one swap; `last_used` survives a spec change of the same name.
    pub fn apply(&self, upserts: Vec<TokenRecord>, removes: &[String]) {
        if upserts.is_empty() && removes.is_empty() {
            return;
        }
        let mut next = Tables::clone(&self.tables.load());
        // At start-up every token at once: one allocation per map, not a rehash per doubling.
        next.by_name.reserve(upserts.len());
        next.by_hash.reserve(upserts.len());
        for name in removes {
            if let Some(old) = next.by_name.take(name.as_str()) {
                next.by_hash.remove(&old.0.hash);
            }
        }
        for record in upserts {
            let mut last_used = record.last_used.unwrap_or(0);
            if let Some(old) = next.by_name.take(&*record.name) {
                next.by_hash.remove(&old.0.hash);
                last_used = last_used.max(old.0.last_used.load(Ordering::Relaxed));
            }
            let entry = Arc::new(TokenEntry {
                name: record.name,
                scope: record.scope,
                expires_at: record.expires_at,
                rate_limit: record.rate_limit,
                hash: record.hash,
                last_used: AtomicI64::new(last_used),
                last_used_dirty: AtomicBool::new(false),
            });
            next.by_name.insert(ByName(entry.clone()));
            next.by_hash.insert(record.hash, entry);
        }
        self.tables.store(Arc::new(next));
    }

    /// Whether a token with this digest is in force (used to refuse duplicate digests).
    pub fn holder_of(&self, hash: &TokenHash) -> Option<Arc<str>> {
        self.tables.load().by_hash.get(hash).map(|e| e.name.clone())
    }

    /// Number of tokens in force.
    pub fn len(&self) -> usize {
        self.tables.load().by_hash.len()
    }

    /// True when no token is in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Last-use times changed since the previous call, for persisting.
    pub fn take_dirty_last_used(&self) -> Vec<(Arc<str>, i64)> {
        let tables = self.tables.load();
        tables
            .by_hash
            .values()
            .filter(|e| e.last_used_dirty.swap(false, Ordering::Relaxed))
            .map(|e| (e.name.clone(), e.last_used.load(Ordering::Relaxed)))
            .collect()
    }
}

impl TokenEntry {
    /// The digest this entry is keyed by.
    pub fn hash(&self) -> &TokenHash {
        &self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, token: &str, scope: Scope, expires_at: Option<i64>) -> TokenRecord {
        TokenRecord {
            name: name.into(),
            scope,
            hash: token::hash(token),
            expires_at,
            last_used: None,
            rate_limit: None,
        }
    }

    #[test]
    fn authenticates_known_refuses_unknown_expired_and_removed() {
        let table = TokenTable::default();
        let (a, b) = (token::generate(), token::generate());
        table.apply(
            vec![
                record("a", &a, Scope::Read, None),
                record("b", &b, Scope::Full, Some(100)),
            ],
            &[],
        );
        assert_eq!(table.authenticate(&a, 50).unwrap().name.as_ref(), "a");
        assert!(table.authenticate(&b, 50).is_ok());
        assert_eq!(
            table.authenticate(&b, 100).unwrap_err(),
            AuthError::Expired("b".into())
        );
        assert_eq!(
            table.authenticate(&token::generate(), 0).unwrap_err(),
            AuthError::Invalid
        );
        table.apply(vec![], &["a".to_string()]);
        assert_eq!(table.authenticate(&a, 50).unwrap_err(), AuthError::Invalid);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn last_used_survives_a_scope_change_and_is_reported_once() {
        let table = TokenTable::default();
        let a = token::generate();
        table.apply(vec![record("a", &a, Scope::Read, None)], &[]);
        table.authenticate(&a, 0).unwrap().touch(1234);
        table.apply(vec![record("a", &a, Scope::Full, None)], &[]);
        let entry = table.authenticate(&a, 0).unwrap();
        assert_eq!(entry.scope, Scope::Full);
        assert_eq!(entry.last_used(), Some(1234));
        entry.touch(1300);
        assert_eq!(table.take_dirty_last_used(), vec![("a".into(), 1300)]);
        assert!(table.take_dirty_last_used().is_empty());
    }
}
