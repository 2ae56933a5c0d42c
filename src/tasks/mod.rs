//! Tasks: prompts run by an agent against a model provider.
//!
//! `service` is the durable queue and dispatcher (rows in the store, events in the outbox);
//! `agent` runs one task with the configured provider (`providers/`), offering the model the
//! `tools` confined to the task's working directory; `workspace` tells what a run changed.
pub mod agent;
pub mod providers;
pub mod service;
pub mod tools;
pub mod workspace;
