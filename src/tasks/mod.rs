//! Tasks: prompts run by an agent against a model provider.
//!
//! `service` is the durable queue and dispatcher (rows in the store, events in the outbox);
//! `agent` runs one task with the configured provider (`providers/`), offering the model the
//! `tools` confined to the task's working directory; `workspace` tells what a run changed;
//! `status` is the task status vocabulary ([`TaskStatus`]).
pub mod agent;
pub mod providers;
pub mod service;
pub mod status;
pub mod tools;
pub mod workspace;

pub use status::TaskStatus;
