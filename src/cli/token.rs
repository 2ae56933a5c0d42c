//! `claw token create|list|revoke`: edit Token manifests (hash only). Works with or without a
//! running server; a running server picks the change up by watching.

use std::collections::HashMap;
use std::process::ExitCode;

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::auth::issue::{self, NewToken};
use crate::auth::Scope;
use crate::manifest::kinds::{RateLimitConfig, TokenRateLimit, UnlimitedWord};
use crate::manifest::write::WriteError;
use crate::manifest::{Kind, ManifestSet, Spec};
use crate::store::{self, Store};

/// The `token` verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Generate a token, write its Token manifest (SHA-256 only) and print the token once.
    Create {
        /// Name of the token (lower case, digits, `-`, `_`, `.`).
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, default_value = "full", value_parser = parse_scope)]
        scope: Scope,
        /// Lifetime, e.g. `30d`, `12h`, `90m`; no expiry when absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// What the token is for.
        #[arg(long)]
        description: Option<String>,
        /// The token's own rate limit, overriding the Config's: `RPM` or `RPM:BURST`
        /// (requests per minute, burst; burst defaults to 60), or `unlimited`.
        #[arg(long, value_parser = parse_rate_limit)]
        rate_limit: Option<TokenRateLimit>,
        #[command(flatten)]
        manifests: super::ManifestsArg,
    },
    /// List tokens: name, scope, created, expires, last used (when a server has seen it).
    List {
        #[command(flatten)]
        manifests: super::ManifestsArg,
        #[command(flatten)]
        data: super::DataArg,
        #[arg(long, value_enum, default_value = "text")]
        format: super::Format,
    },
    /// Remove a token's manifest; a running server refuses it within one reconcile.
    Revoke {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        manifests: super::ManifestsArg,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse::<Scope>().map_err(|e| e.to_string())
}

/// `unlimited`, `RPM` or `RPM:BURST`, within the schema's bounds.
fn parse_rate_limit(s: &str) -> Result<TokenRateLimit, String> {
    if s == "unlimited" {
        return Ok(TokenRateLimit::Unlimited(UnlimitedWord::Unlimited));
    }
    let (rpm, burst) = s.split_once(':').unwrap_or((s, ""));
    let number = |v: &str, what: &str, max: u32| match v.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected `unlimited`, `RPM` or `RPM:BURST` with {what} from 1 to {max}, got `{s}`"
        )),
    };
    let mut limit = RateLimitConfig {
        requests_per_minute: number(rpm, "requests per minute", 1_000_000)?,
        ..RateLimitConfig::default()
    };
    if !burst.is_empty() {
        limit.burst = number(burst, "burst", 100_000)?;
    }
    Ok(TokenRateLimit::Limited(limit))
}

/// How `token list` shows a token's rate limit.
fn show_rate_limit(limit: Option<&TokenRateLimit>) -> String {
    match limit {
        None => "config".to_owned(),
        Some(TokenRateLimit::Unlimited(_)) => "unlimited".to_owned(),
        Some(TokenRateLimit::Limited(l)) => {
            format!("{}/min, burst {}", l.requests_per_minute, l.burst)
        }
    }
}

/// Runs a `token` verb.
pub async fn run(command: Command) -> ExitCode {
    match command {
        Command::Create {
            name,
            scope,
            expires,
            description,
            rate_limit,
            manifests,
        } => {
            let expires_at = match expires
                .map(|d| time::Duration::try_from(d).map(|d| OffsetDateTime::now_utc() + d))
            {
                Some(Err(_)) => {
                    eprintln!("claw token create: --expires is too long");
                    return ExitCode::from(2);
                }
                Some(Ok(at)) => Some(at.replace_nanosecond(0).unwrap_or(at)),
                None => None,
            };
            let new = NewToken {
                name: &name,
                scope,
                expires_at,
                description: description.as_deref(),
                rate_limit,
            };
            match issue::create(&manifests.manifests, &new) {
                Ok(issued) => {
                    eprintln!(
                        "wrote {} (scope {}{})",
                        manifests.manifests.join(&issued.path).display(),
                        scope.as_str(),
                        expires_at
                            .and_then(|t| t.format(&Rfc3339).ok())
                            .map(|t| format!(", expires {t}"))
                            .unwrap_or_default()
                    );
                    super::print_new_token(&name, &issued.token);
                    ExitCode::SUCCESS
                }
                Err(e) => fail("create", &manifests.manifests, e),
            }
        }
        Command::Revoke { name, manifests } => match issue::revoke(&manifests.manifests, &name) {
            Ok(path) => {
                eprintln!(
                    "revoked token '{name}': removed it from {}; a running server refuses it after its next reconcile",
                    manifests.manifests.join(path).display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail("revoke", &manifests.manifests, e),
        },
        Command::List {
            manifests,
            data,
            format,
        } => list(&manifests.manifests, &data, format).await,
    }
}

fn fail(verb: &str, root: &std::path::Path, e: WriteError) -> ExitCode {
    eprintln!("claw token {verb}: {e}");
    if let WriteError::Invalid(diagnostics) = &e {
        for d in diagnostics {
            eprintln!("  {}", d.display_in(root));
        }
    }
    ExitCode::from(1)
}

async fn list(root: &std::path::Path, data: &super::DataArg, format: super::Format) -> ExitCode {
    let set = match ManifestSet::load(root) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("claw token list: {}: {e}", root.display());
            return ExitCode::from(2);
        }
    };
    let last_used: HashMap<String, String> =
        match Store::open_existing(&data.data, data.database_url.as_deref()).await {
            Ok(Some(store)) => store::tokens::list(&store)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter_map(|row| Some((row.name, row.last_used_at?)))
                .collect(),
            _ => HashMap::new(),
        };
    let fmt = |t: &Option<OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
    let mut rows = Vec::new();
    for r in set.resources().filter(|r| r.kind == Kind::Token) {
        let Spec::Token(spec) = &r.spec else { continue };
        rows.push(json!({
            "name": r.name(),
            "scope": spec.scope.as_str(),
            "created": fmt(&spec.created_at),
            "expires": fmt(&spec.expires_at),
            "last_used": last_used.get(r.name()),
            "rate_limit": show_rate_limit(spec.rate_limit.as_ref()),
            "file": root.join(&r.origin.file).display().to_string(),
        }));
    }
    match format {
        super::Format::Json => println!("{}", serde_json::Value::Array(rows)),
        super::Format::Text => {
            println!(
                "{:<24} {:<8} {:<21} {:<21} {:<21} {:<22}",
                "NAME", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "RATE LIMIT"
            );
            for row in &rows {
                let cell = |k: &str| row[k].as_str().unwrap_or("-").to_owned();
                println!(
                    "{:<24} {:<8} {:<21} {:<21} {:<21} {:<22}",
                    cell("name"),
                    cell("scope"),
                    cell("created"),
                    cell("expires"),
                    cell("last_used"),
                    cell("rate_limit")
                );
            }
        }
    }
    ExitCode::SUCCESS
}
