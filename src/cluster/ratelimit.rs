//! Rate limits across the deployment. Each replica keeps its own limiter (the request path
//! never waits on the database) and counts the requests it let through per token. Every
//! [`RATE_SYNC`] it publishes those counts (one `INSERT` of all tokens), reads what the others
//! published since the last read, and charges it to its own limiter — so each replica's
//! buckets drain with the whole deployment's traffic, at most one sync interval (plus a
//! round trip) late. Over a minute the overshoot is at most what the other replicas let through
//! in that delay, a few percent of a per-minute budget. Each replica removes its own rows
//! after [`KEEP`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{now, stamp, Cluster, RATE_SYNC};
use crate::api::ratelimit::RateLimiter;
use crate::manifest::kinds::RateLimitConfig;
use crate::store::cluster as rows;

/// How long published consumption is kept (and read back: rows are read by time, so one that
/// commits late is still seen; ids already charged are remembered for as long).
const KEEP: Duration = Duration::from_secs(5);

pub(super) async fn sync(
    cluster: Arc<Cluster>,
    pool: PgPool,
    limiter: Arc<RateLimiter>,
    stop: CancellationToken,
) {
    limiter.share();
    let mut every = tokio::time::interval(RATE_SYNC);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Rows charged already, with their time, forgotten after KEEP.
    let mut charged: HashSet<(i64, String)> = HashSet::new();
    let mut last_prune = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        let usage: Vec<rows::Usage> = limiter
            .take_usage()
            .into_iter()
            .map(|(token, own, n)| {
                (
                    hex::encode(token),
                    own.map(|o| (i64::from(o.requests_per_minute), i64::from(o.burst))),
                    i64::from(n),
                )
            })
            .collect();
        if let Err(e) = rows::publish_rate_usage(&pool, cluster.id(), &now(), &usage).await {
            tracing::debug!("cannot publish rate-limit usage: {e}");
        }
        let since = stamp(SystemTime::now() - KEEP);
        match rows::rate_usage_of_others(&pool, cluster.id(), &since).await {
            Ok(others) => {
                for u in others {
                    if !charged.insert((u.id, u.at.clone())) {
                        continue;
                    }
                    let Ok(token) = <[u8; 32]>::try_from(hex::decode(&u.token).unwrap_or_default())
                    else {
                        continue;
                    };
                    let own = match (u.rpm, u.burst) {
                        (Some(rpm), Some(burst)) => Some(RateLimitConfig {
                            requests_per_minute: u32::try_from(rpm).unwrap_or(u32::MAX),
                            burst: u32::try_from(burst).unwrap_or(u32::MAX),
                        }),
                        _ => None,
                    };
                    limiter.charge(&token, own.as_ref(), u32::try_from(u.n).unwrap_or(u32::MAX));
                }
                charged.retain(|(_, at)| *at >= since);
            }
            Err(e) => tracing::debug!("cannot read rate-limit usage: {e}"),
        }
        if last_prune.elapsed() >= KEEP {
            last_prune = std::time::Instant::now();
            let before = stamp(SystemTime::now() - KEEP * 2);
            if let Err(e) = rows::prune_rate_usage(&pool, cluster.id(), &before).await {
                tracing::debug!("cannot prune rate-limit usage: {e}");
            }
        }
    }
}
