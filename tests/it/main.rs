//! Integration tests: a real server on 127.0.0.1:0 with temp manifests and data dirs (a real
//! SQLite file, or with `CLAW_TEST_DATABASE=postgres` a fresh database on a throwaway
//! PostgreSQL cluster: `postgres.rs`), spoken to over HTTP; CLI verbs run as the real `claw`
//! binary.

mod auth;
// The API bench's figures (medians, ratio of medians, wrk's report), unit-tested here.
#[allow(dead_code)]
#[path = "../../benches/support/stats.rs"]
mod bench_stats;
mod cli;
mod config;
mod deploy;
mod fuzz;
mod gitops;
mod hardening;
mod harness;
mod idempotency;
mod mcp;
mod openai;
mod openapi;
mod postgres;
mod pull;
mod reconcile;
mod replicas;
mod schedules;
mod skills;
mod slow_work;
mod tasks;
mod ui;
mod webhooks;
