//! Per-token rate limiting (GCRA via `governor`), configured live from the Config's
//! `rate_limit`: the limiter is rebuilt the first time a request sees new settings, so a
//! change applies to the very next request. A Token with its own `rate_limit` is counted by a
//! limiter for those settings (one per distinct setting, shared by the tokens that have it,
//! each token with its own budget); `unlimited` tokens are not counted at all.
//!
//! With replicas (`crate::cluster`), [`RateLimiter::share`] turns on counting of the requests
//! let through, which the cluster publishes, and [`RateLimiter::charge`] takes in the other
//! replicas' counts. A single node never pays for it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::Quota;

use crate::auth::TokenHash;
use crate::manifest::kinds::{RateLimitConfig, TokenRateLimit};

type Gcra = governor::RateLimiter<
    TokenHash,
    DefaultKeyedStateStore<TokenHash>,
    DefaultClock,
    StateInformationMiddleware,
>;

struct Limiter {
    settings: RateLimitConfig,
    gcra: Gcra,
    /// Time for one request's worth of capacity to come back.
    per_request: Duration,
}

impl Limiter {
    fn new(settings: &RateLimitConfig) -> Limiter {
        let rpm = NonZeroU32::new(settings.requests_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
        Limiter {
            settings: settings.clone(),
            gcra: governor::RateLimiter::keyed(Quota::per_minute(rpm).allow_burst(burst))
                .with_middleware::<StateInformationMiddleware>(),
            per_request: Duration::from_secs(60) / rpm.get(),
        }
    }
}

/// The outcome of one check, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Requests that may be made in a burst (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in the current burst (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Unix time at which the burst is full again (`X-RateLimit-Reset`).
    pub reset: u64,
    /// Seconds to wait, when the request is refused.
    pub retry_after: Option<u64>,
}

/// Distinct per-token settings kept at most; past it the map starts afresh (stale settings of
/// edited tokens would otherwise accumulate).
const MAX_OVERRIDES: usize = 1024;

/// The per-token limiter.
pub struct RateLimiter {
    current: ArcSwap<Limiter>,
    /// Limiters for the settings of tokens that carry their own `rate_limit`.
    overrides: ArcSwap<HashMap<RateLimitConfig, Arc<Limiter>>>,
    /// Replicas: requests let through since the last [`RateLimiter::take_usage`], per token
    /// and budget (`None`: the Config's).
    shared: std::sync::OnceLock<Usage>,
}

type Usage = std::sync::Mutex<Shared>;

/// A token's budget: the token and its own settings (`None`: the Config's).
type Budget = (TokenHash, Option<RateLimitConfig>);

/// What replicas exchange about this one's limiter.
#[derive(Default)]
struct Shared {
    /// Requests let through since the last publish.
    used: HashMap<Budget, u32>,
    /// Other replicas' requests this one could not take from the bucket yet.
    debt: HashMap<Budget, u32>,
}

impl RateLimiter {
    /// A limiter with the given settings.
    pub fn new(settings: &RateLimitConfig) -> RateLimiter {
        RateLimiter {
            current: ArcSwap::from_pointee(Limiter::new(settings)),
            overrides: ArcSwap::default(),
            shared: std::sync::OnceLock::new(),
        }
    }

    /// Counts the requests let through from now on, for [`RateLimiter::take_usage`].
    pub fn share(&self) {
        let _ = self.shared.set(Default::default());
    }

    /// The requests let through since the last call, per token and budget.
    pub fn take_usage(&self) -> Vec<(TokenHash, Option<RateLimitConfig>, u32)> {
        let Some(shared) = self.shared.get() else {
            return Vec::new();
        };
        let taken = std::mem::take(&mut shared.lock().unwrap_or_else(|e| e.into_inner()).used);
        taken.into_iter().map(|((k, own), n)| (k, own, n)).collect()
    }

    /// Takes `n` requests of `key` that other replicas let through out of this replica's
    /// budget for the same settings (`None`: the Config's). What the bucket cannot give now is
    /// owed, and paid before this replica lets the token through again, so the deployment's
    /// sustained rate is the token's, not the token's times the replicas.
    pub fn charge(&self, key: &TokenHash, own: Option<&RateLimitConfig>, n: u32) {
        let limiter = match own {
            None => self.current.load_full(),
            Some(own) => self.override_for(own),
        };
        let owed = n - take(&limiter, key, n);
        if owed > 0 {
            if let Some(shared) = self.shared.get() {
                let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
                let debt = shared.debt.entry((*key, own.cloned())).or_default();
                // At most a minute's worth: older overshoot has refilled by now anyway.
                *debt = debt
                    .saturating_add(owed)
                    .min(limiter.settings.requests_per_minute.max(1));
            }
        }
    }

    fn override_for(&self, own: &RateLimitConfig) -> Arc<Limiter> {
        let map = self.overrides.load();
        match map.get(own) {
            Some(limiter) => limiter.clone(),
            None => {
                drop(map);
                let limiter = Arc::new(Limiter::new(own));
                self.overrides.rcu(|map| {
                    let mut next = if map.len() >= MAX_OVERRIDES {
                        HashMap::new()
                    } else {
                        HashMap::clone(map)
                    };
                    next.entry(own.clone()).or_insert_with(|| limiter.clone());
                    next
                });
                self.overrides.load().get(own).cloned().unwrap_or(limiter)
            }
        }
    }

    /// Counts one request of `key`: against the token's own limit when it has one, else
    /// against the Config's `settings`. `None` for an `unlimited` token.
    pub fn check_token(
        &self,
        key: &TokenHash,
        own: Option<&TokenRateLimit>,
        settings: &RateLimitConfig,
    ) -> Option<Decision> {
        match own {
            None => Some(self.decide_shared(&self.current_for(settings), key, None)),
            Some(TokenRateLimit::Unlimited(_)) => None,
            Some(TokenRateLimit::Limited(own)) => {
                Some(self.decide_shared(&self.override_for(own), key, Some(own)))
            }
        }
    }

    /// Counts one request of `key` against `settings` (rebuilding the limiter if they changed).
    pub fn check(&self, key: &TokenHash, settings: &RateLimitConfig) -> Decision {
        self.decide_shared(&self.current_for(settings), key, None)
    }

    /// The limiter for the Config's `settings`, rebuilt if they changed.
    fn current_for(&self, settings: &RateLimitConfig) -> arc_swap::Guard<Arc<Limiter>> {
        let limiter = self.current.load();
        if limiter.settings == *settings {
            return limiter;
        }
        self.current.store(Arc::new(Limiter::new(settings)));
        self.current.load()
    }

    /// [`decide`], and with replicas: first what this token owes for the other replicas'
    /// requests, then the request counted for them if it is let through.
    fn decide_shared(
        &self,
        limiter: &Limiter,
        key: &TokenHash,
        own: Option<&RateLimitConfig>,
    ) -> Decision {
        let Some(shared) = self.shared.get() else {
            return decide(limiter, key);
        };
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        let budget = (*key, own.cloned());
        if let Some(debt) = shared.debt.get_mut(&budget) {
            *debt -= take(limiter, key, *debt);
            if *debt == 0 {
                shared.debt.remove(&budget);
            }
        }
        let decision = decide(limiter, key);
        if decision.retry_after.is_none() {
            *shared.used.entry(budget).or_default() += 1;
        }
        decision
    }
}

/// Takes up to `n` requests' worth of capacity of `key` from `limiter`; how many it took.
fn take(limiter: &Limiter, key: &TokenHash, n: u32) -> u32 {
    let mut taken = 0;
    while taken < n && limiter.gcra.check_key(key).is_ok() {
        taken += 1;
    }
    taken
}

/// One request of `key` counted by `limiter`.
fn decide(limiter: &Limiter, key: &TokenHash) -> Decision {
    let burst = limiter.settings.burst;
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    match limiter.gcra.check_key(key) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            let refill = limiter.per_request * burst.saturating_sub(remaining);
            Decision {
                limit: burst,
                remaining,
                reset: (now_unix + refill).as_secs_f64().ceil() as u64,
                retry_after: None,
            }
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(limiter.gcra.clock().now());
            let refill = limiter.per_request * burst;
            Decision {
                limit: burst,
                remaining: 0,
                reset: (now_unix + refill).as_secs_f64().ceil() as u64,
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rpm: u32, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            requests_per_minute: rpm,
            burst,
        }
    }

    #[test]
    fn allows_a_burst_then_refuses_with_a_retry_after_of_at_least_one_second() {
        let limiter = RateLimiter::new(&settings(60, 3));
        let key = [7; 32];
        let s = settings(60, 3);
        let remaining: Vec<_> = (0..3).map(|_| limiter.check(&key, &s).remaining).collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let refused = limiter.check(&key, &s);
        assert_eq!(refused.limit, 3);
        assert!(refused.retry_after.is_some_and(|s| s >= 1));
        // Another token has its own budget.
        assert!(limiter.check(&[8; 32], &s).retry_after.is_none());
    }

    #[test]
    fn new_settings_apply_to_the_next_check() {
        let limiter = RateLimiter::new(&settings(60, 1));
        let key = [1; 32];
        limiter.check(&key, &settings(60, 1));
        assert!(limiter.check(&key, &settings(60, 1)).retry_after.is_some());
        let d = limiter.check(&key, &settings(600, 10));
        assert_eq!((d.limit, d.retry_after), (10, None));
    }

    #[test]
    fn a_token_s_own_limit_overrides_the_config_and_unlimited_is_not_counted() {
        use crate::manifest::kinds::UnlimitedWord;
        let config = settings(60, 1);
        let limiter = RateLimiter::new(&config);
        let own = TokenRateLimit::Limited(settings(60, 3));
        let key = [3; 32];
        let remaining: Vec<_> = (0..4)
            .map(|_| limiter.check_token(&key, Some(&own), &config).unwrap())
            .map(|d| (d.remaining, d.retry_after.is_some()))
            .collect();
        assert_eq!(
            remaining,
            vec![(2, false), (1, false), (0, false), (0, true)]
        );
        // The Config's budget of the same token is untouched by its own limit's use.
        assert!(limiter
            .check_token(&key, None, &config)
            .unwrap()
            .retry_after
            .is_none());
        let unlimited = TokenRateLimit::Unlimited(UnlimitedWord::Unlimited);
        assert!((0..10).all(|_| limiter
            .check_token(&key, Some(&unlimited), &config)
            .is_none()));
    }

    #[test]
    fn shared_usage_is_counted_only_when_shared_and_others_usage_drains_the_bucket() {
        let config = settings(60, 10);
        let key = [9; 32];
        let alone = RateLimiter::new(&config);
        alone.check_token(&key, None, &config);
        assert!(
            alone.take_usage().is_empty(),
            "a single node counts nothing"
        );

        let a = RateLimiter::new(&config);
        let b = RateLimiter::new(&config);
        a.share();
        b.share();
        for _ in 0..6 {
            assert!(a
                .check_token(&key, None, &config)
                .unwrap()
                .retry_after
                .is_none());
        }
        let usage = a.take_usage();
        assert_eq!(usage, vec![(key, None, 6)]);
        assert!(a.take_usage().is_empty(), "taken once");
        // B takes A's six in: four left of the burst of ten, then refused.
        for (token, own, n) in usage {
            b.charge(&token, own.as_ref(), n);
        }
        let allowed = (0..10)
            .take_while(|_| {
                b.check_token(&key, None, &config)
                    .unwrap()
                    .retry_after
                    .is_none()
            })
            .count();
        assert_eq!(allowed, 4);
        // Refused requests are not counted as usage.
        assert_eq!(b.take_usage(), vec![(key, None, 4)]);
    }
}
