//! Tasks: prompts run by an agent against a model provider.
pub mod agent;
pub mod providers;
pub mod tools;
pub mod workspace;
