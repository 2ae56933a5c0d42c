//! MCP servers declared by `McpServer` manifests, kept connected for tasks to use.
//!
//! [`supervisor::Supervisor`] runs one tokio task per declared server: it starts a stdio
//! server as a child process (its own process group, killed on stop) or connects to a
//! streamable HTTP endpoint, initialises the MCP session, lists the tools, and reconnects with
//! exponential backoff when the process exits or the connection drops. The reconciler's
//! `McpServer` handler tells it what should run; the API reads its status; tasks call tools
//! through it (`tasks::tools::Toolbox::with_mcp`).

pub mod supervisor;

pub use supervisor::{Backoff, Desired, Launch, Phase, ServerStatus, Supervisor, Tool};
