//! Webhook delivery: events from the outbox, signed and POSTed to the endpoints that want them.
//!
//! The data path: `store::outbox` (written with the change that raised an event) →
//! `store::deliveries::fan_out` (one `deliveries` row per subscribed endpoint, idempotent) →
//! the [`dispatcher::Dispatcher`] (sends due deliveries, records every attempt, schedules
//! retries). The API reads `store::deliveries` to list attempts and to redeliver; it never talks
//! to the dispatcher except to [`dispatcher::Dispatcher::wake`] it.
//!
//! - [`signing`]: the headers of one POST (`X-OpenClaw-Signature`, Standard Webhooks).
//! - [`policy`]: the egress policy ([`crate::egress`], shared by every outbound client).
//! - [`schedule`]: the retry schedule (backoff, jitter, `Retry-After`), pure functions.
//! - [`clock`]: time as the dispatcher sees it, so tests drive retries with a manual clock.
//!
//! Delivery is at-least-once: a crash between sending and recording sends the same delivery id
//! again after restart; receivers deduplicate on `X-OpenClaw-Delivery` / `webhook-id`.

pub mod clock;
pub mod dispatcher;
pub use crate::egress as policy;
pub mod schedule;
pub mod signing;

#[cfg(test)]
mod tests;
