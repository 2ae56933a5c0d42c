//! Tasks: prompts run by an agent against a model provider.
pub mod workspace;
