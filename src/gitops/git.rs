//! The git working copy around the manifests dir: its revision (for statuses) and commits of
//! API write-backs. Every git call of the server goes through here.
//!
//! The real `git` binary is run (no prompts, no optional index locks), always from blocking
//! code: callers on async threads use `spawn_blocking`. Pathspecs are literal and relative to
//! the manifests root.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Suffix of a revision whose working copy has uncommitted manifest changes.
pub const DIRTY: &str = "-dirty";

/// A failed git call. The message is git's own stderr (it never holds a secret of ours: we
/// pass none to git).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[source] io::Error),
    #[error("`git {command}` failed: {message}")]
    Failed { command: String, message: String },
}

/// Who commits write-backs.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub email: String,
}

fn git(root: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("--no-optional-locks")
        .arg("--literal-pathspecs")
        .arg("-C")
        .arg(root)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> Result<Output, GitError> {
    let output = cmd.output().map_err(GitError::Spawn)?;
    if output.status.success() {
        Ok(output)
    } else {
        let args: Vec<_> = cmd
            .get_args()
            .skip(4) // --no-optional-locks --literal-pathspecs -C <root>
            .map(OsStr::to_string_lossy)
            .collect();
        Err(GitError::Failed {
            command: args.join(" "),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// The revision of the manifests under `root`: the HEAD commit id (full, 40 hex digits) with
/// [`DIRTY`] appended when a tracked file under `root` has uncommitted changes or an untracked
/// manifest file exists there. `None` when `root` is not in a git working copy or HEAD has no
/// commit yet; an error when git cannot be run.
pub fn revision(root: &Path) -> Result<Option<String>, GitError> {
    Ok(status(root, &[])?.map(|s| s.revision()))
}

/// What `git status` says about (part of) the manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The HEAD commit id.
    pub oid: String,
    /// Paths (relative to the top of the working copy) that make it dirty: tracked files with
    /// changes, untracked manifest files.
    pub dirty: Vec<String>,
}

impl Status {
    /// The revision string: the commit id, with [`DIRTY`] when anything is dirty.
    pub fn revision(&self) -> String {
        if self.dirty.is_empty() {
            self.oid.clone()
        } else {
            format!("{}{DIRTY}", self.oid)
        }
    }
}

/// `git status` of `paths` (relative to `root`; none: everything under `root`). `None` when
/// `root` is not in a git working copy or HEAD has no commit yet. Asking for only the files
/// that changed keeps a pass's cost independent of how many files the working copy holds.
pub fn status(root: &Path, paths: &[PathBuf]) -> Result<Option<Status>, GitError> {
    let mut cmd = git(root);
    cmd.args([
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=all",
        "--",
    ]);
    if paths.is_empty() {
        cmd.arg(".");
    } else {
        cmd.args(paths);
    }
    let output = match run(cmd) {
        Ok(output) => output,
        // Not a working copy (or a broken one): the caller falls back to a content digest.
        Err(GitError::Failed { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parse_status(&String::from_utf8_lossy(&output.stdout)))
}

/// Where `root` is inside its working copy (`git rev-parse --show-prefix`, e.g. `manifests/`).
pub fn prefix(root: &Path) -> Result<String, GitError> {
    let mut cmd = git(root);
    cmd.args(["rev-parse", "--show-prefix"]);
    let output = run(cmd)?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn parse_status(text: &str) -> Option<Status> {
    let mut oid = None;
    let mut dirty = Vec::new();
    let mut entries = text.split('\0');
    while let Some(entry) = entries.next() {
        if let Some(id) = entry.strip_prefix("# branch.oid ") {
            oid = Some(id.to_owned());
        } else if let Some(path) = entry.strip_prefix("? ") {
            if crate::manifest::load::is_manifest_file(Path::new(path)) {
                dirty.push(path.to_owned());
            }
        } else if entry.starts_with("1 ") {
            dirty.extend(entry.splitn(9, ' ').nth(8).map(str::to_owned));
        } else if entry.starts_with("u ") {
            dirty.extend(entry.splitn(11, ' ').nth(10).map(str::to_owned));
        } else if entry.starts_with("2 ") {
            dirty.extend(entry.splitn(10, ' ').nth(9).map(str::to_owned));
            // A rename or copy is followed by its original path.
            entries.next();
        }
    }
    let oid = oid.filter(|id| id.chars().all(|c| c.is_ascii_hexdigit()))?;
    Some(Status { oid, dirty })
}

/// Whether `root` is inside a git working copy.
pub fn is_work_tree(root: &Path) -> Result<bool, GitError> {
    let mut cmd = git(root);
    cmd.args(["rev-parse", "--is-inside-work-tree"]);
    match run(cmd) {
        Ok(output) => Ok(String::from_utf8_lossy(&output.stdout).trim() == "true"),
        Err(GitError::Failed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Commits exactly `paths` (relative to `root`; present files are added, missing ones recorded
/// as deleted) in one commit with `message`, leaving every other staged or unstaged change of
/// the working copy as it was. Returns the new commit id (HEAD as it was when the paths hold
/// what HEAD has: no empty commits).
pub fn commit(
    root: &Path,
    paths: &[PathBuf],
    message: &str,
    author: &Author,
) -> Result<String, GitError> {
    let (present, gone): (Vec<&PathBuf>, Vec<&PathBuf>) =
        paths.iter().partition(|p| root.join(p).exists());
    if !present.is_empty() {
        let mut cmd = git(root);
        cmd.args(["add", "--"]).args(&present);
        run(cmd)?;
    }
    if !gone.is_empty() {
        let mut cmd = git(root);
        cmd.args(["rm", "--cached", "--quiet", "--ignore-unmatch", "--"])
            .args(&gone);
        run(cmd)?;
    }
    // A write that left the content as committed (a no-op patch) has nothing to commit.
    let mut diff = git(root);
    diff.args(["diff", "--cached", "--quiet", "--"]).args(paths);
    if diff.status().map_err(GitError::Spawn)?.success() {
        return head(root);
    }
    let mut cmd = git(root);
    cmd.args(["-c", "commit.gpgSign=false", "commit", "--quiet", "--only"])
        .args(["--cleanup=verbatim", "-m", message, "--"])
        .args(paths)
        .env("GIT_AUTHOR_NAME", &author.name)
        .env("GIT_AUTHOR_EMAIL", &author.email)
        .env("GIT_COMMITTER_NAME", &author.name)
        .env("GIT_COMMITTER_EMAIL", &author.email);
    if let Err(e) = run(cmd) {
        // Leave the index as it was for these paths (as of HEAD).
        let mut reset = git(root);
        reset.args(["reset", "--quiet", "--"]).args(paths);
        let _ = run(reset);
        return Err(e);
    }
    head(root)
}

/// Clones `branch` of `url` into `dest` (which must not exist yet). Credentials come from the
/// user's git configuration (credential helpers, ssh agent); never from our arguments.
pub fn clone(url: &str, branch: &str, dest: &Path) -> Result<(), GitError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut cmd = git(parent);
    cmd.args(["clone", "--quiet", "--branch", branch, "--", url])
        .arg(dest);
    run(cmd).map(|_| ()).map_err(redact)
}

/// Points `origin` at `url` (a restart may name another URL for the same repository).
pub fn set_origin(root: &Path, url: &str) -> Result<(), GitError> {
    let mut cmd = git(root);
    cmd.args(["remote", "set-url", "origin", url]);
    run(cmd).map(|_| ()).map_err(redact)
}

/// Fetches `branch` from `origin` into `refs/remotes/origin/<branch>`.
pub fn fetch(root: &Path, branch: &str) -> Result<(), GitError> {
    let mut cmd = git(root);
    cmd.args(["fetch", "--quiet", "origin"])
        .arg(format!("+refs/heads/{branch}:refs/remotes/origin/{branch}"));
    run(cmd).map(|_| ()).map_err(redact)
}

/// Brings the checkout up to `origin/<branch>`: a fast-forward, or (when local commits that
/// were never pushed exist) a rebase of them onto it. A failed rebase is aborted.
/// `committer` commits the rebased commits.
pub fn fast_forward(root: &Path, branch: &str, committer: &Author) -> Result<(), GitError> {
    let upstream = format!("origin/{branch}");
    let mut merge = git(root);
    merge.args(["merge", "--ff-only", "--quiet", &upstream]);
    if run(merge).is_ok() {
        return Ok(());
    }
    rebase(root, &upstream, committer)
}

fn rebase(root: &Path, upstream: &str, committer: &Author) -> Result<(), GitError> {
    let mut cmd = git(root);
    cmd.args(["-c", "commit.gpgSign=false", "rebase", "--quiet", upstream])
        .env("GIT_COMMITTER_NAME", &committer.name)
        .env("GIT_COMMITTER_EMAIL", &committer.email);
    run(cmd).map(|_| ()).inspect_err(|_| {
        let mut abort = git(root);
        abort.args(["rebase", "--abort"]);
        let _ = run(abort);
    })
}

/// Pushes HEAD to `origin/<branch>`. A push rejected as not a fast-forward (someone pushed
/// first) is fetched, rebased onto the new tip and retried, up to `attempts` pushes in all;
/// it is never forced. `committer` commits the rebased commits.
pub fn push(root: &Path, branch: &str, attempts: u32, committer: &Author) -> Result<(), GitError> {
    let mut attempt = 1;
    loop {
        let mut cmd = git(root);
        cmd.args(["push", "--quiet", "origin"])
            .arg(format!("HEAD:refs/heads/{branch}"));
        match run(cmd).map_err(redact) {
            Ok(_) => return Ok(()),
            Err(GitError::Failed { message, .. })
                if attempt < attempts && is_stale_push(&message) =>
            {
                tracing::info!(
                    attempt,
                    "push rejected as not a fast-forward; rebasing: {message}"
                );
                fetch(root, branch)?;
                rebase(root, &format!("origin/{branch}"), committer)?;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether git refused a push because the remote moved on (not because a hook or a
/// permission refused it).
fn is_stale_push(stderr: &str) -> bool {
    stderr.contains("[rejected]")
        || stderr.contains("non-fast-forward")
        || stderr.contains("fetch first")
}

/// The commit HEAD points at.
pub fn head(root: &Path) -> Result<String, GitError> {
    let mut cmd = git(root);
    cmd.args(["rev-parse", "HEAD"]);
    let output = run(cmd)?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Puts the checkout (HEAD, index and files) back to `commit`.
pub fn reset_hard(root: &Path, commit: &str) -> Result<(), GitError> {
    let mut cmd = git(root);
    cmd.args(["reset", "--hard", "--quiet", commit]);
    run(cmd).map(|_| ())
}

/// Whether `url` carries a credential (`user:password@`, or any user part over http(s)),
/// which must come from the git configuration instead of a visible argument.
pub fn url_has_credentials(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false; // scp-like `git@host:path`: a user name, no secret
    };
    let authority = rest.split('/').next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => {
            userinfo.contains(':')
                || scheme.eq_ignore_ascii_case("http")
                || scheme.eq_ignore_ascii_case("https")
        }
        None => false,
    }
}

/// Removes the user part of every URL git quotes in `text`, in case a configured remote
/// carries one: error messages reach API callers and logs.
fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            out.push_str("***@");
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

fn redact(e: GitError) -> GitError {
    match e {
        GitError::Failed { command, message } => GitError::Failed {
            command: redact_text(&command),
            message: redact_text(&message),
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parses_head_and_dirtiness() {
        let head = "# branch.oid 0123456789abcdef0123456789abcdef01234567\0# branch.head main\0";
        assert_eq!(
            parse_status(head).map(|s| s.revision()).as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        let untracked_other = format!("{head}? notes.txt\0");
        assert!(!parse_status(&untracked_other)
            .unwrap()
            .revision()
            .ends_with(DIRTY));
        let untracked_manifest = format!("{head}? tokens/a.yaml\0");
        assert_eq!(
            parse_status(&untracked_manifest).unwrap().dirty,
            ["tokens/a.yaml"]
        );
        let modified = format!("{head}1 .M N... 100644 100644 100644 a b config.yaml\0");
        assert_eq!(parse_status(&modified).unwrap().dirty, ["config.yaml"]);
        assert_eq!(parse_status("# branch.oid (initial)\0"), None);
    }

    #[test]
    fn credentials_in_urls_are_refused_and_redacted() {
        assert!(url_has_credentials("https://me:ghp_x@github.com/o/r.git"));
        assert!(url_has_credentials("https://ghp_x@github.com/o/r.git"));
        assert!(url_has_credentials("ssh://me:pw@host/r.git"));
        assert!(!url_has_credentials("ssh://git@github.com/o/r.git"));
        assert!(!url_has_credentials("git@github.com:o/r.git"));
        assert!(!url_has_credentials("file:///tmp/r.git"));
        assert_eq!(
            redact_text("fatal: unable to access 'https://me:pw@h/r/': 403"),
            "fatal: unable to access 'https://***@h/r/': 403"
        );
    }
}
