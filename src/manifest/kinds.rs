//! Typed manifest kinds: the `metadata` and `spec` of every document users commit.
//!
//! These types mirror `schemas/*.schema.json` field for field; the drift tests at the bottom
//! of this file fail when one changes without the other. Documents are validated against the
//! schema first (for good error messages), then deserialised into these types.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The `apiVersion` every manifest carries.
pub const API_VERSION: &str = "openclaw.dev/v1";

/// The kind of a manifest document.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Kind {
    /// Server configuration (exactly one, named `default`).
    Config,
    /// An API token, stored as a hash.
    Token,
    /// An installed skill.
    Skill,
    /// A webhook subscription.
    Webhook,
    /// An MCP server.
    McpServer,
    /// A task that runs on its own (cron, interval or one-shot).
    Schedule,
}

impl Kind {
    /// Every kind, in a stable order (the order resources are reconciled in).
    pub const ALL: [Kind; 6] = [
        Kind::Config,
        Kind::Token,
        Kind::Skill,
        Kind::Webhook,
        Kind::McpServer,
        Kind::Schedule,
    ];

    /// The `kind` string of a document, e.g. `McpServer`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Config => "Config",
            Kind::Token => "Token",
            Kind::Skill => "Skill",
            Kind::Webhook => "Webhook",
            Kind::McpServer => "McpServer",
            Kind::Schedule => "Schedule",
        }
    }

    /// Lowercase plural, used for directories (`<plural>/<name>.yaml`) and API paths.
    pub const fn plural(self) -> &'static str {
        match self {
            Kind::Config => "configs",
            Kind::Token => "tokens",
            Kind::Skill => "skills",
            Kind::Webhook => "webhooks",
            Kind::McpServer => "mcpservers",
            Kind::Schedule => "schedules",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of parsing a [`Kind`] from a string that is not exactly one of the kind names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind \"{0}\": expected one of Config, Token, Skill, Webhook, McpServer, Schedule")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Exact match only: `kind` is case-sensitive in Kubernetes-style documents.
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// `metadata` of a document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Resource name, unique per kind. Shared: the index, the applied map, the reflector and
    /// the token table key on this one copy (a large tree has ~100,000 names).
    pub name: Arc<str>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "StringMap::is_empty")]
    pub labels: StringMap,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "StringMap::is_empty")]
    pub annotations: StringMap,
}

/// A small string-to-string map (labels, annotations): its pairs sorted by key in one
/// allocation. A `BTreeMap` allocates a node with room for eleven pairs (about 550 bytes) for
/// even one label, and a large manifests tree holds one per resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StringMap(Box<[(String, String)]>);

impl StringMap {
    /// True when there is no pair.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }
}

impl From<BTreeMap<String, String>> for StringMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        StringMap(map.into_iter().collect())
    }
}

impl Serialize for StringMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(StringMap::from)
    }
}

impl Metadata {
    /// Metadata with only a name.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Metadata {
            name: name.into(),
            ..Metadata::default()
        }
    }
}

/// Where a secret comes from: `{fromEnv: NAME}`, `{fromFile: PATH}` or `{ref: NAME}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SecretRef {
    /// An environment variable of the server process.
    FromEnv(String),
    /// A file whose contents are the secret.
    FromFile(String),
    /// A secret the server stored under its data directory.
    Ref(String),
}

// ---------------------------------------------------------------------------------------------
// Config

/// Spec of the `Config` document; every field has a default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigSpec {
    /// Model provider settings.
    pub model: ModelConfig,
    /// Task execution settings.
    pub tasks: TasksConfig,
    /// Per-token API rate limit.
    pub rate_limit: RateLimitConfig,
    /// Webhook delivery settings.
    pub webhooks: WebhooksConfig,
    /// Skill installation settings.
    pub skills: SkillsConfig,
    /// Git integration settings.
    pub git: GitConfig,
    /// Optional API surfaces.
    pub api: ApiConfig,
}

/// A model provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Anthropic's Messages API.
    #[default]
    Anthropic,
    /// OpenAI's API (or a compatible one via `base_url`).
    Openai,
    /// A local program run with `command`.
    Command,
}

impl Provider {
    /// The manifest string, e.g. `anthropic`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::Openai => "openai",
            Provider::Command => "command",
        }
    }
}

/// `spec.model` of the Config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Which provider tasks run against.
    pub provider: Provider,
    /// Model name passed to the provider.
    pub name: String,
    /// Maximum tokens generated per response.
    pub max_tokens: u32,
    /// Maximum context window in tokens.
    pub max_context: u64,
    /// Override of the provider's API base URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Provider API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretRef>,
    /// argv of the program run for [`Provider::Command`].
    pub command: Vec<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            provider: Provider::Anthropic,
            name: "claude-sonnet-4-20250514".to_owned(),
            max_tokens: 4096,
            max_context: 200_000,
            base_url: None,
            api_key: None,
            command: Vec::new(),
        }
    }
}

/// `spec.tasks` of the Config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// Maximum tasks running at once.
    pub concurrency: u32,
    /// Wall-clock limit of one task, in seconds.
    pub timeout_seconds: u64,
    /// Absolute directories a task's `working_directory` may lie under (empty: tasks run only
    /// in their own fresh directory under the data dir).
    pub allowed_roots: Vec<String>,
    /// Largest per-task `timeout_seconds` a request may ask for.
    pub max_timeout_seconds: u64,
    /// Largest prompt accepted, in bytes.
    pub max_prompt_bytes: u64,
    /// Model round trips one task may take.
    pub max_turns: u32,
    /// Offer the agent a tool that runs shell commands in the working directory.
    pub allow_commands: bool,
    /// MCP servers whose tools tasks may use when a task names none itself
    /// (`options.mcp_servers`); `None`: every connected server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<Vec<String>>,
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            concurrency: 4,
            timeout_seconds: 600,
            allowed_roots: Vec::new(),
            max_timeout_seconds: 3600,
            max_prompt_bytes: 65536,
            max_turns: 20,
            allow_commands: false,
            mcp_servers: None,
        }
    }
}

/// `spec.rate_limit` of the Config.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per minute per token.
    pub requests_per_minute: u32,
    /// Burst size above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            requests_per_minute: 600,
            burst: 60,
        }
    }
}

/// `spec.rate_limit` of a Token: its own limit, or none at all (for internal services and
/// load tests).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenRateLimit {
    /// The string `unlimited`: requests with this token are never refused for rate.
    Unlimited(UnlimitedWord),
    /// `{requests_per_minute, burst}` like the Config's.
    Limited(RateLimitConfig),
}

/// The word `unlimited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnlimitedWord {
    #[serde(rename = "unlimited")]
    Unlimited,
}

/// `spec.webhooks` of the Config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Timeout of one delivery attempt, in seconds.
    pub timeout_seconds: u64,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
    /// If non-empty, an allow-list of CIDR networks (may open ranges refused by default).
    pub allow_networks: Vec<String>,
    /// CIDR networks never delivered to.
    pub deny_networks: Vec<String>,
    /// Days delivered and failed deliveries (and their attempts) are kept.
    pub retention_days: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            timeout_seconds: 15,
            max_attempts: 8,
            allow_networks: Vec::new(),
            deny_networks: Vec::new(),
            retention_days: 7,
        }
    }
}

/// `spec.skills` of the Config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkillsConfig {
    /// Default registry: a directory path or an http(s) URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

/// `spec.git` of the Config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitConfig {
    /// Commit each API write-back.
    pub auto_commit: bool,
    /// Author (and committer) name of write-back commits.
    pub author_name: String,
    /// Author (and committer) email of write-back commits.
    pub author_email: String,
}

impl GitConfig {
    /// The author (and committer) of write-back commits.
    pub fn author(&self) -> crate::gitops::git::Author {
        crate::gitops::git::Author {
            name: self.author_name.clone(),
            email: self.author_email.clone(),
        }
    }
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            auto_commit: false,
            author_name: "claw".to_owned(),
            author_email: "claw@localhost".to_owned(),
        }
    }
}

/// `spec.api` of the Config: optional API surfaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve `POST /v1/chat/completions` and `GET /v1/models` (OpenAI's wire format).
    pub openai_compatible: bool,
}

// ---------------------------------------------------------------------------------------------
// Token

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every GET.
    Read,
    /// Read, plus creating and cancelling tasks.
    Execute,
    /// Everything.
    Full,
}

impl Scope {
    /// The manifest string, e.g. `execute`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Execute => "execute",
            Scope::Full => "full",
        }
    }

    /// Whether a token of this scope may do what `needed` permits (full ⊇ execute ⊇ read).
    pub const fn allows(self, needed: Scope) -> bool {
        self.rank() >= needed.rank()
    }

    const fn rank(self) -> u8 {
        match self {
            Scope::Read => 0,
            Scope::Execute => 1,
            Scope::Full => 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of parsing a [`Scope`] from a string other than `full`, `read` or `execute`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope \"{0}\": expected one of full, read, execute")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "execute" => Ok(Scope::Execute),
            "full" => Ok(Scope::Full),
            other => Err(UnknownScope(other.to_owned())),
        }
    }
}

/// Spec of a `Token` document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSpec {
    /// What the token may do.
    pub scope: Scope,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
    /// When the token stops being accepted.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// When the token was created.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub created_at: Option<OffsetDateTime>,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// This token's own rate limit, overriding the Config's `rate_limit`.
    #[serde(
        default,
        rename = "rate_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate_limit: Option<TokenRateLimit>,
}

// ---------------------------------------------------------------------------------------------
// Skill

/// The default skill version.
const LATEST: &str = "latest";

/// Spec of a `Skill` document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkillSpec {
    /// `latest`, an exact version, or a semver range.
    pub version: String,
    /// Where the skill comes from; the configured registry when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SkillSource>,
    /// Whether the skill is installed.
    pub enabled: bool,
    /// Human description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Default for SkillSpec {
    fn default() -> Self {
        SkillSpec {
            version: LATEST.to_owned(),
            source: None,
            enabled: true,
            description: None,
        }
    }
}

/// Where a skill comes from (exactly one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SkillSource {
    /// A registry: directory path or http(s) URL.
    Registry(String),
    /// A local directory.
    Path(String),
    /// A git repository.
    Git(GitSource),
    /// An archive download verified by digest.
    Archive(ArchiveSource),
}

/// A git repository holding a skill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    /// Repository URL.
    pub url: String,
    /// Branch, tag or commit; the default branch when `None`.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// An archive holding a skill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSource {
    /// http(s) URL of the archive.
    pub url: String,
    /// Lowercase hex SHA-256 of the archive.
    pub sha256: String,
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// The entries of a Webhook's `events` (an event name or `*`): the event vocabulary lives
/// in `events`, where the delivery fan-out matches against the same type.
pub use crate::events::{EventFilter, UnknownEvent};

/// Spec of a `Webhook` document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Endpoint events are POSTed to.
    pub url: String,
    /// Subscribed events.
    pub events: Vec<EventFilter>,
    /// HMAC signing key.
    pub secret: SecretRef,
    /// Whether events are delivered.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// McpServer

/// A value that is either given in plain text or read from a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// A plain string.
    Plain(String),
    /// A secret reference.
    Secret(SecretRef),
}

/// Spec of an `McpServer` document.
///
/// In YAML the transport fields sit directly in `spec` (`command`/`args`/`env`/`cwd` or
/// `url`/`headers`); here they are one enum so code cannot see both or neither.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawMcpServerSpec", into = "RawMcpServerSpec")]
pub struct McpServerSpec {
    /// How the server is reached.
    pub transport: McpTransport,
    /// Whether the server is started and its tools offered.
    pub enabled: bool,
    /// Human description.
    pub description: Option<String>,
    /// Timeout of one request, in seconds.
    pub timeout_seconds: Option<u64>,
}

/// How an MCP server is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum McpTransport {
    /// A local program speaking MCP on stdin/stdout.
    Stdio(StdioTransport),
    /// A streamable HTTP endpoint.
    Http(HttpTransport),
}

/// The stdio transport of an MCP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StdioTransport {
    /// Program to run.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, EnvValue>,
    /// Working directory.
    pub cwd: Option<String>,
}

/// The streamable HTTP transport of an MCP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTransport {
    /// Endpoint URL.
    pub url: String,
    /// Extra request headers.
    pub headers: BTreeMap<String, EnvValue>,
}

/// The YAML shape of [`McpServerSpec`], with the transport fields flat in `spec`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMcpServerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, EnvValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, EnvValue>,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_seconds: Option<u64>,
}

/// Why a `spec` does not describe exactly one MCP transport.
#[derive(Debug, thiserror::Error)]
enum McpSpecError {
    #[error("exactly one of `command` (stdio) or `url` (HTTP) must be set")]
    Transport,
    #[error("`args`, `env` and `cwd` are only allowed with `command`")]
    StdioFieldWithUrl,
    #[error("`headers` is only allowed with `url`")]
    HeadersWithCommand,
}

impl TryFrom<RawMcpServerSpec> for McpServerSpec {
    type Error = McpSpecError;

    fn try_from(raw: RawMcpServerSpec) -> Result<Self, Self::Error> {
        let transport = match (raw.command, raw.url) {
            (Some(command), None) => {
                if !raw.headers.is_empty() {
                    return Err(McpSpecError::HeadersWithCommand);
                }
                McpTransport::Stdio(StdioTransport {
                    command,
                    args: raw.args,
                    env: raw.env,
                    cwd: raw.cwd,
                })
            }
            (None, Some(url)) => {
                if !raw.args.is_empty() || !raw.env.is_empty() || raw.cwd.is_some() {
                    return Err(McpSpecError::StdioFieldWithUrl);
                }
                McpTransport::Http(HttpTransport {
                    url,
                    headers: raw.headers,
                })
            }
            _ => return Err(McpSpecError::Transport),
        };
        Ok(McpServerSpec {
            transport,
            enabled: raw.enabled,
            description: raw.description,
            timeout_seconds: raw.timeout_seconds,
        })
    }
}

impl From<McpServerSpec> for RawMcpServerSpec {
    fn from(spec: McpServerSpec) -> Self {
        let mut raw = RawMcpServerSpec {
            enabled: spec.enabled,
            description: spec.description,
            timeout_seconds: spec.timeout_seconds,
            ..RawMcpServerSpec::default()
        };
        match spec.transport {
            McpTransport::Stdio(stdio) => {
                raw.command = Some(stdio.command);
                raw.args = stdio.args;
                raw.env = stdio.env;
                raw.cwd = stdio.cwd;
            }
            McpTransport::Http(http) => {
                raw.url = Some(http.url);
                raw.headers = http.headers;
            }
        }
        raw
    }
}

// ---------------------------------------------------------------------------------------------
// Schedule

/// Spec of a `Schedule` document: when (exactly one of `cron`, `every`, `at`), what (`prompt`
/// and `options`, as in `POST /tasks`) and how (`concurrency`, `suspend`, deadline, history).
/// `cron`, `timezone` and `every` are checked beyond the schema by
/// [`crate::schedules::timing::check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// 5-field cron expression, evaluated in `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone of `cron` (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Interval between runs (`30s`, `15m`, `1h30m`), counted from when the spec was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// One-shot: the instant of the only run.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub at: Option<OffsetDateTime>,
    /// What the agent should do.
    pub prompt: String,
    /// Task options, as in `POST /tasks`.
    #[serde(default, skip_serializing_if = "ScheduleTaskOptions::is_empty")]
    pub options: ScheduleTaskOptions,
    /// What happens when a slot comes while the previous run is still going.
    #[serde(default)]
    pub concurrency: Concurrency,
    /// Stops the clock: no slot fires (a manual run still does).
    #[serde(default)]
    pub suspend: bool,
    /// Missed slots older than this are skipped; unset, a missed slot is never too old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<u64>,
    /// How many runs are kept and shown.
    #[serde(default = "default_history_limit")]
    pub history_limit: u32,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn default_history_limit() -> u32 {
    10
}

/// The `options` of a scheduled task: the fields of `POST /tasks`'s `options`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleTaskOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<Vec<String>>,
}

impl ScheduleTaskOptions {
    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        *self == ScheduleTaskOptions::default()
    }
}

/// A Schedule's concurrency policy (as a Kubernetes CronJob's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Start the new run beside the running one.
    #[default]
    Allow,
    /// Skip the slot while a run is queued or running.
    Forbid,
    /// Cancel the running run, then start the new one.
    Replace,
}

// ---------------------------------------------------------------------------------------------
// Any kind

/// The typed `spec` of a document of any kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    /// Spec of a Config.
    /// Boxed: the Config is one of thousands of resources but by far the largest type.
    Config(Box<ConfigSpec>),
    /// Spec of a Token.
    Token(TokenSpec),
    /// Spec of a Skill.
    Skill(SkillSpec),
    /// Spec of a Webhook.
    Webhook(WebhookSpec),
    /// Spec of an McpServer (boxed, as the Schedule: the enum is as large as its largest
    /// variant, and the Tokens, most resources of a large tree, are small).
    McpServer(Box<McpServerSpec>),
    /// Spec of a Schedule.
    Schedule(Box<ScheduleSpec>),
}

impl Spec {
    /// Deserialises the `spec` of a document of `kind` (pass `{}` when `spec` is absent).
    pub fn from_value(kind: Kind, spec: &serde_json::Value) -> Result<Spec, serde_json::Error> {
        Ok(match kind {
            Kind::Config => Spec::Config(Box::new(ConfigSpec::deserialize(spec)?)),
            Kind::Token => Spec::Token(TokenSpec::deserialize(spec)?),
            Kind::Skill => Spec::Skill(SkillSpec::deserialize(spec)?),
            Kind::Webhook => Spec::Webhook(WebhookSpec::deserialize(spec)?),
            Kind::McpServer => Spec::McpServer(Box::new(McpServerSpec::deserialize(spec)?)),
            Kind::Schedule => Spec::Schedule(Box::new(ScheduleSpec::deserialize(spec)?)),
        })
    }

    /// The kind this spec belongs to.
    pub const fn kind(&self) -> Kind {
        match self {
            Spec::Config(_) => Kind::Config,
            Spec::Token(_) => Kind::Token,
            Spec::Skill(_) => Kind::Skill,
            Spec::Webhook(_) => Kind::Webhook,
            Spec::McpServer(_) => Kind::McpServer,
            Spec::Schedule(_) => Kind::Schedule,
        }
    }

    /// The spec as JSON, in the shape the schema describes (for write-back).
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;
    use crate::manifest::schema::{schema, validate};
    use serde_json::{json, Value};
    use std::collections::BTreeSet;
    use time::macros::datetime;

    /// Map-valued fields: their keys are user data, so paths stop at the map.
    const MAPS: [&str; 4] = [
        "/metadata/labels",
        "/metadata/annotations",
        "/spec/env",
        "/spec/headers",
    ];

    fn document(metadata: &Metadata, spec: &Spec) -> Value {
        json!({
            "apiVersion": API_VERSION,
            "kind": spec.kind().as_str(),
            "metadata": metadata,
            "spec": spec,
        })
    }

    fn full_metadata(name: &str) -> Metadata {
        Metadata {
            name: name.into(),
            labels: BTreeMap::from([("team".to_owned(), "platform".to_owned())]).into(),
            annotations: BTreeMap::from([("owner".to_owned(), "ops@example.com".to_owned())])
                .into(),
        }
    }

    fn config_example(provider: Provider, api_key: SecretRef) -> ConfigSpec {
        ConfigSpec {
            model: ModelConfig {
                provider,
                name: "gpt-4o".to_owned(),
                max_tokens: 1000,
                max_context: 128_000,
                base_url: Some("https://llm.example.com/v1".to_owned()),
                api_key: Some(api_key),
                command: vec!["llm".to_owned(), "--json".to_owned()],
            },
            tasks: TasksConfig {
                concurrency: 2,
                timeout_seconds: 60,
                allowed_roots: vec!["/srv/work".to_owned()],
                max_timeout_seconds: 120,
                max_prompt_bytes: 4096,
                max_turns: 5,
                allow_commands: true,
                mcp_servers: Some(vec!["everything".to_owned()]),
            },
            rate_limit: RateLimitConfig {
                requests_per_minute: 100,
                burst: 10,
            },
            webhooks: WebhooksConfig {
                timeout_seconds: 5,
                max_attempts: 3,
                allow_networks: vec!["169.254.0.0/16".to_owned()],
                deny_networks: vec!["10.0.0.0/8".to_owned(), "::1/128".to_owned()],
                retention_days: 30,
            },
            skills: SkillsConfig {
                registry: Some("https://skills.example.com".to_owned()),
            },
            git: GitConfig {
                auto_commit: true,
                author_name: "CI bot".to_owned(),
                author_email: "ci@example.com".to_owned(),
            },
            api: ApiConfig {
                openai_compatible: true,
            },
        }
    }

    fn token_example(scope: Scope) -> TokenSpec {
        TokenSpec {
            scope,
            sha256: "ab".repeat(32),
            expires_at: Some(datetime!(2030-01-01 00:00:00 UTC)),
            created_at: Some(datetime!(2025-06-01 12:30:00 +02:00)),
            description: Some("CI pipeline".to_owned()),
            rate_limit: match scope {
                Scope::Full => None,
                Scope::Read => Some(TokenRateLimit::Limited(RateLimitConfig {
                    requests_per_minute: 6000,
                    burst: 100,
                })),
                Scope::Execute => Some(TokenRateLimit::Unlimited(UnlimitedWord::Unlimited)),
            },
        }
    }

    fn skill_example(source: SkillSource) -> SkillSpec {
        SkillSpec {
            version: "^1.2".to_owned(),
            source: Some(source),
            enabled: false,
            description: Some("Formats code".to_owned()),
        }
    }

    fn webhook_example(events: Vec<EventFilter>, secret: SecretRef) -> WebhookSpec {
        WebhookSpec {
            url: "http://localhost:4000/webhooks/openclaw".to_owned(),
            events,
            secret,
            enabled: false,
            description: Some("Receiver".to_owned()),
        }
    }

    fn mcp_example(transport: McpTransport) -> McpServerSpec {
        McpServerSpec {
            transport,
            enabled: false,
            description: Some("Files".to_owned()),
            timeout_seconds: Some(30),
        }
    }

    /// Fully populated examples of every kind; together they exercise every enum variant.
    fn examples() -> Vec<(Metadata, Spec)> {
        let env = BTreeMap::from([
            ("PLAIN".to_owned(), EnvValue::Plain("1".to_owned())),
            (
                "TOKEN".to_owned(),
                EnvValue::Secret(SecretRef::FromEnv("GITHUB_TOKEN".to_owned())),
            ),
        ]);
        let headers = BTreeMap::from([
            ("X-Plain".to_owned(), EnvValue::Plain("1".to_owned())),
            (
                "Authorization".to_owned(),
                EnvValue::Secret(SecretRef::Ref("mcp-auth".to_owned())),
            ),
        ]);
        let meta = full_metadata;
        vec![
            (
                meta("default"),
                Spec::Config(Box::new(config_example(
                    Provider::Command,
                    SecretRef::FromEnv("ANTHROPIC_API_KEY".to_owned()),
                ))),
            ),
            (
                meta("default"),
                Spec::Config(Box::new(config_example(
                    Provider::Openai,
                    SecretRef::FromFile("/run/secrets/key".to_owned()),
                ))),
            ),
            (
                meta("default"),
                Spec::Config(Box::new(config_example(
                    Provider::Anthropic,
                    SecretRef::Ref("anthropic".to_owned()),
                ))),
            ),
            (meta("ci"), Spec::Token(token_example(Scope::Full))),
            (meta("reader"), Spec::Token(token_example(Scope::Read))),
            (meta("runner"), Spec::Token(token_example(Scope::Execute))),
            (
                meta("fmt"),
                Spec::Skill(skill_example(SkillSource::Registry(
                    "https://skills.example.com".to_owned(),
                ))),
            ),
            (
                meta("fmt-local"),
                Spec::Skill(skill_example(SkillSource::Path("./skills/fmt".to_owned()))),
            ),
            (
                meta("fmt-git"),
                Spec::Skill(skill_example(SkillSource::Git(GitSource {
                    url: "https://github.com/acme/fmt.git".to_owned(),
                    reference: Some("v1.2.0".to_owned()),
                }))),
            ),
            (
                meta("fmt-archive"),
                Spec::Skill(skill_example(SkillSource::Archive(ArchiveSource {
                    url: "https://example.com/fmt.tar.gz".to_owned(),
                    sha256: "cd".repeat(32),
                }))),
            ),
            (
                meta("ci-hook"),
                Spec::Webhook(webhook_example(
                    vec![
                        EventFilter::Only(EventType::TaskCompleted),
                        EventFilter::Only(EventType::TaskFailed),
                        EventFilter::Only(EventType::TaskStarted),
                    ],
                    SecretRef::Ref("ci-hook".to_owned()),
                )),
            ),
            (
                meta("skills-hook"),
                Spec::Webhook(webhook_example(
                    vec![
                        EventFilter::Only(EventType::SkillInstalled),
                        EventFilter::Only(EventType::SkillRemoved),
                        EventFilter::Only(EventType::SystemError),
                    ],
                    SecretRef::FromEnv("HOOK_SECRET".to_owned()),
                )),
            ),
            (
                meta("all-hook"),
                Spec::Webhook(webhook_example(
                    vec![EventFilter::All],
                    SecretRef::FromFile("/run/secrets/hook".to_owned()),
                )),
            ),
            (
                meta("files"),
                Spec::McpServer(Box::new(mcp_example(McpTransport::Stdio(StdioTransport {
                    command: "npx".to_owned(),
                    args: vec!["-y".to_owned(), "@mcp/files".to_owned()],
                    env,
                    cwd: Some("/srv".to_owned()),
                })))),
            ),
            (
                meta("remote"),
                Spec::McpServer(Box::new(mcp_example(McpTransport::Http(HttpTransport {
                    url: "https://mcp.example.com/mcp".to_owned(),
                    headers,
                })))),
            ),
            (
                meta("nightly"),
                Spec::Schedule(Box::new(ScheduleSpec {
                    cron: Some("30 2 * * 1-5".to_owned()),
                    timezone: Some("Europe/Berlin".to_owned()),
                    every: None,
                    at: None,
                    prompt: "Summarize the latest git commits".to_owned(),
                    options: ScheduleTaskOptions {
                        model: Some("gpt-4o".to_owned()),
                        max_tokens: Some(2000),
                        working_directory: Some("/srv/repo".to_owned()),
                        timeout_seconds: Some(600),
                        mcp_servers: Some(vec!["files".to_owned()]),
                    },
                    concurrency: Concurrency::Forbid,
                    suspend: true,
                    starting_deadline_seconds: Some(300),
                    history_limit: 5,
                    description: Some("Nightly summary".to_owned()),
                })),
            ),
            (
                meta("poll"),
                Spec::Schedule(Box::new(ScheduleSpec {
                    cron: None,
                    timezone: None,
                    every: Some("1h30m".to_owned()),
                    at: None,
                    prompt: "Analyze the error logs".to_owned(),
                    options: ScheduleTaskOptions::default(),
                    concurrency: Concurrency::Replace,
                    suspend: false,
                    starting_deadline_seconds: None,
                    history_limit: 10,
                    description: None,
                })),
            ),
            (
                meta("once"),
                Spec::Schedule(Box::new(ScheduleSpec {
                    cron: None,
                    timezone: None,
                    every: None,
                    at: Some(datetime!(2030-01-01 09:00:00 UTC)),
                    prompt: "Happy new year".to_owned(),
                    options: ScheduleTaskOptions::default(),
                    concurrency: Concurrency::Allow,
                    suspend: false,
                    starting_deadline_seconds: None,
                    history_limit: 1,
                    description: None,
                })),
            ),
        ]
    }

    /// Property paths and `default`s a schema declares.
    #[derive(Default)]
    struct Declared {
        paths: BTreeSet<String>,
        defaults: BTreeMap<String, Value>,
    }

    fn walk_schema(root: &Value, node: &Value, path: &str, out: &mut Declared) {
        if let Some(default) = node.get("default") {
            out.defaults.insert(path.to_owned(), default.clone());
        }
        if let Some(target) = node.get("$ref").and_then(Value::as_str) {
            let target = root
                .pointer(target.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {target}"));
            walk_schema(root, target, path, out);
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (key, sub) in props {
                let p = format!("{path}/{key}");
                out.paths.insert(p.clone());
                walk_schema(root, sub, &p, out);
            }
        }
        if node
            .get("additionalProperties")
            .is_some_and(Value::is_object)
        {
            assert!(
                MAPS.contains(&path),
                "{path} is a map in the schema; add it to MAPS"
            );
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for sub in node
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                walk_schema(root, sub, path, out);
            }
        }
        for key in ["items", "then", "else"] {
            if let Some(sub) = node.get(key) {
                walk_schema(root, sub, path, out);
            }
        }
    }

    fn declared(kind: Kind) -> Declared {
        let root = schema(kind);
        let mut out = Declared::default();
        walk_schema(root, root, "", &mut out);
        out
    }

    fn value_paths(value: &Value, path: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, sub) in map {
                    let p = format!("{path}/{key}");
                    out.insert(p.clone());
                    if !MAPS.contains(&p.as_str()) {
                        value_paths(sub, &p, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| value_paths(v, path, out)),
            _ => {}
        }
    }

    #[test]
    fn types_and_schemas_do_not_drift() {
        let mut seen: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
        for (metadata, spec) in examples() {
            let kind = spec.kind();
            let doc = document(&metadata, &spec);
            let violations = validate(kind, &doc);
            assert!(
                violations.is_empty(),
                "{kind} example rejected: {violations:?}\n{doc:#}"
            );
            value_paths(&doc, "", seen.entry(kind).or_default());
            let back = Spec::from_value(kind, &doc["spec"]).expect("example deserialises");
            assert_eq!(back, spec);
            let meta_back: Metadata =
                serde_json::from_value(doc["metadata"].clone()).expect("metadata deserialises");
            assert_eq!(meta_back, metadata);
        }
        for kind in Kind::ALL {
            let in_values = seen.remove(&kind).unwrap_or_default();
            let in_schema = declared(kind).paths;
            let only_schema: Vec<_> = in_schema.difference(&in_values).collect();
            let only_types: Vec<_> = in_values.difference(&in_schema).collect();
            assert!(
                only_schema.is_empty() && only_types.is_empty(),
                "{kind}: only in schema {only_schema:?}, only in types {only_types:?}"
            );
        }
    }

    #[test]
    fn empty_config_spec_is_the_default() {
        let spec = Spec::from_value(Kind::Config, &json!({})).expect("{} is a valid Config spec");
        assert_eq!(spec, Spec::Config(Box::default()));
    }

    #[test]
    fn schema_defaults_match_default_impls() {
        let minimal = [
            (Kind::Config, json!({})),
            (
                Kind::Token,
                json!({"scope": "read", "sha256": "ab".repeat(32)}),
            ),
            (Kind::Skill, json!({})),
            (
                Kind::Webhook,
                json!({"url": "https://x.example", "events": ["*"], "secret": {"ref": "x"}}),
            ),
            (Kind::McpServer, json!({"command": "x"})),
            (Kind::Schedule, json!({"every": "1m", "prompt": "p"})),
        ];
        for (kind, spec) in minimal {
            let name = if kind == Kind::Config { "default" } else { "x" };
            let typed = Spec::from_value(kind, &spec).expect("minimal spec deserialises");
            let doc = document(&Metadata::new(name), &typed);
            assert!(validate(kind, &doc).is_empty(), "{kind}: {doc}");
            for (path, default) in declared(kind).defaults {
                assert_eq!(
                    doc.pointer(&path),
                    Some(&default),
                    "{kind} default of {path}"
                );
            }
        }
        // Every field of the Config has a default, so every leaf must declare it.
        let defaults = declared(Kind::Config).defaults;
        let doc = document(&Metadata::new("default"), &Spec::Config(Box::default()));
        let mut leaves = BTreeSet::new();
        value_paths(&doc["spec"], "/spec", &mut leaves);
        for path in leaves {
            let is_leaf = doc.pointer(&path).is_some_and(|v| !v.is_object());
            assert!(
                !is_leaf || defaults.contains_key(&path),
                "Config {path} has no schema default"
            );
        }
    }

    fn rejects(kind: Kind, doc: Value, pointer: &str) {
        let violations = validate(kind, &doc);
        assert!(
            violations.iter().any(|v| v.pointer == pointer),
            "{kind}: expected a violation at {pointer}, got {violations:?}"
        );
        for v in &violations {
            assert!(
                !v.message.to_lowercase().contains("sk-secret-123"),
                "message leaks the value: {v:?}"
            );
            assert!(!v.pointer.contains("sk-secret-123"), "pointer leaks: {v:?}");
        }
    }

    fn doc(kind: Kind, name: &str, spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": kind.as_str(), "metadata": {"name": name}, "spec": spec})
    }

    fn hook(secret: Value, events: Value) -> Value {
        doc(
            Kind::Webhook,
            "h",
            json!({"url": "https://example.com", "events": events, "secret": secret}),
        )
    }

    #[test]
    fn schema_rejects_typo_key() {
        let d = doc(
            Kind::Token,
            "t",
            json!({"scope": "read", "sha256": "ab".repeat(32), "descripton": "sk-secret-123"}),
        );
        rejects(Kind::Token, d, "/spec/descripton");
        let d = doc(Kind::Config, "default", json!({"model": {"max_token": 5}}));
        rejects(Kind::Config, d, "/spec/model/max_token");
        let mut d = doc(Kind::Skill, "s", json!({}));
        d["metadata"]["label"] = json!({});
        rejects(Kind::Skill, d, "/metadata/label");
    }

    #[test]
    fn schema_rejects_plain_string_secret() {
        rejects(
            Kind::Webhook,
            hook(json!("sk-secret-123"), json!(["*"])),
            "/spec/secret",
        );
        let d = doc(
            Kind::Config,
            "default",
            json!({"model": {"api_key": "sk-secret-123"}}),
        );
        rejects(Kind::Config, d, "/spec/model/api_key");
        let d = doc(
            Kind::McpServer,
            "m",
            json!({"url": "https://x.example", "headers": {"Authorization": {"fromEnv": "sk-secret-123"}}}),
        );
        rejects(Kind::McpServer, d, "/spec/headers/Authorization");
        let v = validate(Kind::Webhook, &hook(json!("sk-secret-123"), json!(["*"])));
        assert_eq!(
            v[0].message,
            "must be a secret reference: {fromEnv: NAME}, {fromFile: PATH} or {ref: NAME}"
        );
    }

    #[test]
    fn schema_rejects_bad_name() {
        rejects(
            Kind::Skill,
            doc(Kind::Skill, "SK-secret-123", json!({})),
            "/metadata/name",
        );
        rejects(
            Kind::Skill,
            doc(Kind::Skill, "-x", json!({})),
            "/metadata/name",
        );
        rejects(
            Kind::Skill,
            doc(Kind::Skill, &"a".repeat(64), json!({})),
            "/metadata/name",
        );
        assert!(validate(Kind::Skill, &doc(Kind::Skill, &"a".repeat(63), json!({}))).is_empty());
    }

    #[test]
    fn schema_rejects_unknown_event() {
        let d = hook(
            json!({"ref": "h"}),
            json!(["task.completed", "sk-secret-123"]),
        );
        rejects(Kind::Webhook, d, "/spec/events/1");
        rejects(
            Kind::Webhook,
            hook(json!({"ref": "h"}), json!([])),
            "/spec/events",
        );
        let d = hook(json!({"ref": "h"}), json!(["*", "*"]));
        rejects(Kind::Webhook, d, "/spec/events");
    }

    #[test]
    fn schema_rejects_mcp_with_command_and_url() {
        let d = doc(
            Kind::McpServer,
            "m",
            json!({"command": "sk-secret-123", "url": "https://x.example"}),
        );
        rejects(Kind::McpServer, d, "/spec");
        rejects(
            Kind::McpServer,
            doc(Kind::McpServer, "m", json!({})),
            "/spec",
        );
        let d = doc(
            Kind::McpServer,
            "m",
            json!({"url": "https://x.example", "args": ["a"]}),
        );
        rejects(Kind::McpServer, d, "/spec");
        // The typed layer refuses the same shapes, in case it is fed an unvalidated spec.
        for bad in [
            json!({"command": "x", "url": "https://x.example"}),
            json!({}),
            json!({"url": "https://x.example", "cwd": "/"}),
            json!({"command": "x", "headers": {"A": "b"}}),
        ] {
            assert!(Spec::from_value(Kind::McpServer, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schema_rejects_command_provider_without_command() {
        let d = doc(
            Kind::Config,
            "default",
            json!({"model": {"provider": "command"}}),
        );
        rejects(Kind::Config, d, "/spec/model");
        let d = doc(
            Kind::Config,
            "default",
            json!({"model": {"provider": "command", "command": []}}),
        );
        rejects(Kind::Config, d, "/spec/model/command");
    }

    #[test]
    fn schema_rejects_out_of_range_and_bad_strings() {
        let d = doc(
            Kind::Config,
            "default",
            json!({
                "tasks": {"concurrency": 0, "allowed_roots": ["relative/dir"]},
                "webhooks": {"deny_networks": ["10.0.0.0/33"]},
                "model": {"base_url": "ftp://x"}
            }),
        );
        let v = validate(Kind::Config, &d);
        let got: Vec<(&str, &str)> = v
            .iter()
            .map(|v| (v.pointer.as_str(), v.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/spec/model/base_url", "must be an http:// or https:// URL"),
                ("/spec/tasks/allowed_roots/0", "must be an absolute path"),
                ("/spec/tasks/concurrency", "must be at least 1"),
                (
                    "/spec/webhooks/deny_networks/0",
                    "must be a CIDR network such as 10.0.0.0/8 or ::1/128"
                ),
            ]
        );
        for version in [
            "latest",
            "1.2.3",
            "^1.2",
            "~1.2.3",
            ">=1.0, <2",
            "1.0.0-beta.1",
            "*",
        ] {
            let d = doc(Kind::Skill, "s", json!({"version": version}));
            assert!(validate(Kind::Skill, &d).is_empty(), "{version}");
        }
        rejects(
            Kind::Skill,
            doc(Kind::Skill, "s", json!({"version": "newest"})),
            "/spec/version",
        );
    }

    #[test]
    fn kind_strings() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
            assert_eq!(json!(kind), json!(kind.as_str()));
            assert_eq!(kind.plural(), format!("{}s", kind.as_str().to_lowercase()));
        }
        let err = "token".parse::<Kind>().unwrap_err();
        assert!(err
            .to_string()
            .contains("Config, Token, Skill, Webhook, McpServer, Schedule"));
    }

    #[test]
    fn scope_order() {
        use Scope::*;
        assert!(Full.allows(Execute) && Full.allows(Read) && Full.allows(Full));
        assert!(Execute.allows(Read) && Execute.allows(Execute) && !Execute.allows(Full));
        assert!(Read.allows(Read) && !Read.allows(Execute) && !Read.allows(Full));
        for s in [Read, Execute, Full] {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(s));
            assert_eq!(json!(s), json!(s.as_str()));
        }
    }

    #[test]
    fn webhook_event_strings() {
        for e in EventFilter::ALL {
            assert_eq!(e.as_str().parse::<EventFilter>(), Ok(e));
            assert_eq!(json!(e), json!(e.as_str()));
        }
        assert!(EventFilter::All.matches(EventType::SystemError));
        assert!(!EventFilter::Only(EventType::TaskFailed).matches(EventType::TaskCompleted));
        // The JSON Schema lists the same names, in the same order.
        let schema: Value =
            serde_json::from_str(include_str!("../../schemas/webhook.schema.json")).unwrap();
        let names: Vec<&str> = EventFilter::ALL.map(EventFilter::as_str).to_vec();
        assert_eq!(
            schema
                .pointer("/properties/spec/properties/events/items/enum")
                .unwrap(),
            &json!(names)
        );
    }

    #[test]
    fn secret_ref_shape() {
        assert_eq!(
            json!(SecretRef::FromEnv("A".into())),
            json!({"fromEnv": "A"})
        );
        assert_eq!(
            json!(SecretRef::FromFile("/f".into())),
            json!({"fromFile": "/f"})
        );
        assert_eq!(json!(SecretRef::Ref("r".into())), json!({"ref": "r"}));
        assert!(serde_json::from_value::<SecretRef>(json!("sk-secret-123")).is_err());
    }
}
