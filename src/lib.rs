//! claw: a declarative, GitOps-driven server for the OpenClaw API.
//!
//! Users commit YAML manifests; `claw serve` validates them, converges runtime state to match,
//! and serves `/api/v1`, whose writes go back to the manifests. See `ARCHITECTURE.md` for the
//! map of modules.

pub mod alloc;
pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod egress;
pub mod events;
pub mod gitops;
pub mod live;
pub mod manifest;
pub mod mcp;
pub mod metrics;
pub mod reconcile;
pub mod schedules;
pub mod server;
pub mod skills;
pub mod store;
pub mod tasks;
pub mod webhooks;
