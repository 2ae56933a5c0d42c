//! `claw init`: a Config and a full-scope `admin` Token in a manifests dir, each written only
//! if missing, so init is safe to run on a dir that already has some manifests.

use std::path::{Path, PathBuf};

use super::write::{atomic_write, default_path, WriteError};
use super::{Kind, ManifestSet};
use crate::auth::issue::{self, NewToken};
use crate::auth::Scope;

/// The Config `claw init` writes: every field optional, defaults shown.
pub const DEFAULT_CONFIG: &str = r#"# The claw server's configuration. Every field is optional; values shown are the defaults.
# Schema: schemas/config.schema.json (claw validate checks this file).
apiVersion: openclaw.dev/v1
kind: Config
metadata:
  name: default
spec:
  model:
    provider: anthropic          # anthropic | openai | command
    name: claude-sonnet-4-20250514
    max_tokens: 4096
    api_key: {fromEnv: ANTHROPIC_API_KEY}
  tasks:
    concurrency: 4
    timeout_seconds: 600         # per task; a request may ask for up to max_timeout_seconds
    max_timeout_seconds: 3600
    allowed_roots: []            # absolute dirs a task's working_directory may lie under
    allow_commands: false        # offer the agent a shell tool in the working directory
  rate_limit:                    # per token
    requests_per_minute: 600
    burst: 60
  webhooks:
    timeout_seconds: 15
    max_attempts: 8
    retention_days: 7            # delivered / failed deliveries kept this long
  api:
    openai_compatible: false     # serve POST /v1/chat/completions and GET /v1/models (OpenAI's API)
  git:
    auto_commit: false           # commit each API write-back (when the dir is a git working copy)
    author_name: claw            # author and committer of those commits
    author_email: claw@localhost
"#;

/// What `init` did.
#[derive(Debug, Default)]
pub struct Scaffold {
    /// Files written, relative to the root.
    pub written: Vec<PathBuf>,
    /// The admin token, when one was created: show it once.
    pub admin_token: Option<String>,
}

/// Writes what is missing of a Config and an `admin` Token under `root`.
pub fn init(root: &Path) -> Result<Scaffold, WriteError> {
    let io = |source| WriteError::Io {
        path: root.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(root).map_err(io)?;
    let set = ManifestSet::load(root).map_err(io)?;
    let mut out = Scaffold::default();
    if !set.resources().any(|r| r.kind == Kind::Config) && set.file_diagnostics().next().is_none() {
        let path = default_path(Kind::Config, "default");
        atomic_write(&root.join(&path), DEFAULT_CONFIG.as_bytes()).map_err(io)?;
        out.written.push(path);
    }
    if !set.resources().any(|r| r.kind == Kind::Token) {
        let issued = issue::create(
            root,
            &NewToken {
                name: "admin",
                scope: Scope::Full,
                expires_at: None,
                description: Some("created by claw init"),
                rate_limit: None,
            },
        )?;
        out.written.push(issued.path);
        out.admin_token = Some(issued.token);
    }
    Ok(out)
}

/// True when `root` is missing or declares no Token (then `serve` initialises it). Stops at
/// the first Token, and parses only files that mention one.
pub fn needs_init(root: &Path) -> bool {
    let declares_token = |rel: &Path| {
        matches!(super::load::read_file(root, rel), Ok(Some(text)) if text.contains("Token")
            && super::load::parse_file(rel, &text).resources.iter().any(|r| r.kind == Kind::Token))
    };
    // Tokens are most likely under `tokens/`: look there first, so a large tree is neither
    // walked (start-up walks it once more anyway) nor read up to its first Token.
    // (A symlinked `tokens/` is not looked into: the loader skips symlinked directories.)
    let tokens = Path::new("tokens");
    let is_dir = std::fs::symlink_metadata(root.join(tokens)).is_ok_and(|m| m.is_dir());
    if is_dir
        && super::load::any_file(&root.join(tokens), |rel| declares_token(&tokens.join(rel)))
            .unwrap_or(false)
    {
        return false;
    }
    match super::load::any_file(root, |rel| !rel.starts_with(tokens) && declares_token(rel)) {
        Ok(found) => !found,
        Err(_) => !root.exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_valid_config_and_an_admin_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = init(dir.path()).unwrap();
        assert_eq!(first.written.len(), 2);
        let token = first.admin_token.unwrap();
        let set = ManifestSet::load(dir.path()).unwrap();
        assert!(set.file_diagnostics().next().is_none(), "{:?}", set.files);
        let admin = set.find(Kind::Token, "admin").unwrap();
        let crate::manifest::Spec::Token(spec) = &admin.spec else {
            panic!()
        };
        assert_eq!(spec.sha256, crate::auth::token::hash_hex(&token));
        let text = std::fs::read_to_string(dir.path().join("tokens/admin.yaml")).unwrap();
        assert!(
            !text.contains(&token),
            "the token itself must never be written"
        );
        let again = init(dir.path()).unwrap();
        assert!(again.written.is_empty() && again.admin_token.is_none());
    }

    #[test]
    fn a_token_anywhere_but_only_a_loaded_one_means_no_init() {
        const TOKEN: &str = "apiVersion: openclaw.dev/v1\nkind: Token\nmetadata:\n  name: ci\nspec:\n  scope: read\n  sha256: 0a0000000000000000000000000000000000000000000000000000000000000b\n";
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(needs_init(root), "an empty dir");
        // `tokens/` holds something else; the Token is elsewhere.
        std::fs::create_dir_all(root.join("tokens")).unwrap();
        std::fs::write(root.join("tokens/notes.yaml"), "# nothing\n").unwrap();
        std::fs::create_dir_all(root.join("team/access")).unwrap();
        assert!(needs_init(root));
        std::fs::write(root.join("team/access/ci.yaml"), TOKEN).unwrap();
        assert!(!needs_init(root), "a Token outside tokens/ counts");
        // A Token in a symlinked tokens/ is not loaded, so it does not count.
        std::fs::remove_file(root.join("team/access/ci.yaml")).unwrap();
        std::fs::remove_dir_all(root.join("tokens")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("ci.yaml"), TOKEN).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join("tokens")).unwrap();
        assert!(needs_init(root), "a symlinked tokens/ is not loaded");
    }
}
