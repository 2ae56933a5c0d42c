//! The agent's tools, confined to the task's working directory.
//!
//! File tools go through a `cap_std::fs::Dir` opened on the working directory: every path is
//! resolved by cap-std inside that directory, so `..`, absolute paths and symlinks that lead
//! outside (at the end of a path or in the middle, when reading or writing) fail instead of
//! escaping. `run_command` is only offered when Config `tasks.allow_commands` is set; a shell
//! is not confined by anything but the server user's permissions, which is why it is opt-in.
//!
//! Adding a tool: push its [`ToolSpec`] in [`Toolbox::for_workdir`] and add an arm for its
//! name in [`Toolbox::call`]. Tools from elsewhere are added the same way: `read_skill`
//! ([`Toolbox::with_skills`]) and the tools of connected MCP servers ([`Toolbox::with_mcp`],
//! named `<server>__<tool>` and forwarded to the supervisor).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cap_std::fs::Dir;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use super::providers::command::ProcessGroupGuard;
use crate::mcp::Supervisor;

/// Largest part of a file `read_file` returns.
const MAX_READ_BYTES: u64 = 256 * 1024;
/// Entries `list_files` returns at most.
const MAX_LIST_ENTRIES: usize = 2000;
/// Wall-clock limit of one `run_command`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of stdout and of stderr `run_command` keeps, each.
const MAX_COMMAND_OUTPUT: usize = 64 * 1024;

/// A tool as offered to a model: its name, what it does, and a JSON Schema of its input.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the tool's input object.
    pub input_schema: Value,
}

/// The tools of one task, bound to its working directory.
pub struct Toolbox {
    root: Arc<Dir>,
    workdir: PathBuf,
    specs: Vec<ToolSpec>,
    /// The installed skills, read-only for the agent (`read_skill`).
    skills: Option<Arc<Dir>>,
    /// MCP servers' tools: offered name -> (server, tool), called through the supervisor.
    mcp: Option<(Arc<Supervisor>, McpRoutes)>,
}

/// Offered tool name -> (MCP server, tool name on that server).
type McpRoutes = HashMap<String, (String, String)>;

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox")
            .field("workdir", &self.workdir)
            .field(
                "tools",
                &self.specs.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn spec(name: &str, description: &str, input_schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema,
    }
}

impl Toolbox {
    /// Opens `workdir` and lists the tools; `run_command` only when `allow_commands`.
    pub fn for_workdir(workdir: &Path, allow_commands: bool) -> std::io::Result<Toolbox> {
        let root = Dir::open_ambient_dir(workdir, cap_std::ambient_authority())?;
        let mut specs = vec![
            spec(
                "list_files",
                "List files and directories (directories end with '/'). Paths are relative \
                 to the working directory.",
                json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "Directory to list; default \".\""},
                        "recursive": {"type": "boolean", "description": "Include subdirectories; default false"}
                    }
                }),
            ),
            spec(
                "read_file",
                "Read a text file (at most 256 KiB are returned).",
                json!({
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"]
                }),
            ),
            spec(
                "write_file",
                "Create or overwrite a file with the given content; missing parent \
                 directories are created.",
                json!({
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                    "required": ["path", "content"]
                }),
            ),
        ];
        if allow_commands {
            specs.push(spec(
                "run_command",
                "Run a shell command (sh -c) in the working directory; returns its exit \
                 status, stdout and stderr. Limited to 60 seconds.",
                json!({
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"]
                }),
            ));
        }
        Ok(Toolbox {
            root: Arc::new(root),
            workdir: workdir.to_owned(),
            specs,
            skills: None,
            mcp: None,
        })
    }

    /// Adds `read_skill`, reading files of the skills installed under `skills_dir` (confined
    /// to that directory like every other tool is to the working directory).
    pub fn with_skills(mut self, skills_dir: &Path) -> std::io::Result<Toolbox> {
        self.skills = Some(Arc::new(Dir::open_ambient_dir(
            skills_dir,
            cap_std::ambient_authority(),
        )?));
        self.specs.push(spec(
            "read_skill",
            "Read a file of an installed skill: its SKILL.md (the default) or a file it refers to.",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The skill's name"},
                    "path": {"type": "string", "description": "File within the skill; default \"SKILL.md\""}
                },
                "required": ["name"]
            }),
        ));
        Ok(self)
    }

    /// Adds the tools of the connected MCP servers (all of them, or those named in `allowed`)
    /// as `<server>__<tool>`; a call goes to that server with its timeout. Tools whose
    /// combined name providers would refuse (over 64 characters, or characters other than
    /// ASCII letters, digits, `_` and `-`) are left out.
    pub fn with_mcp(mut self, supervisor: Arc<Supervisor>, allowed: Option<&[String]>) -> Toolbox {
        let mut routes = HashMap::new();
        for (server, tools) in supervisor.connected_tools(allowed) {
            for tool in tools.iter() {
                let name = format!("{server}__{}", tool.name);
                let valid = name.len() <= 64
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid || routes.contains_key(&name) {
                    tracing::debug!(server = %server, tool = %tool.name, "MCP tool not offered: its name does not fit");
                    continue;
                }
                self.specs.push(ToolSpec {
                    name: name.clone(),
                    description: format!("[MCP server {server}] {}", tool.description),
                    input_schema: tool.input_schema.clone(),
                });
                routes.insert(name, (server.clone(), tool.name.clone()));
            }
        }
        self.mcp = Some((supervisor, routes));
        self
    }

    /// The tools offered to the model.
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// Ok(text result for the model) or Err(error text for the model, sent as is_error).
    pub async fn call(&self, name: &str, input: &Value) -> Result<String, String> {
        // Dispatch only to offered tools, so that a model cannot call run_command by name
        // when commands are not allowed.
        if !self.specs.iter().any(|s| s.name == name) {
            return Err(format!("unknown tool \"{name}\""));
        }
        tracing::debug!(tool = name, "tool call");
        if let Some((supervisor, routes)) = &self.mcp {
            if let Some((server, tool)) = routes.get(name) {
                return supervisor.call(server, tool, input).await;
            }
        }
        match name {
            "list_files" => {
                let path = optional_str(input, "path")?.unwrap_or(".").to_owned();
                let recursive = input
                    .get("recursive")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                self.blocking(move |root| list_files(root, &path, recursive))
                    .await
            }
            "read_file" => {
                let path = required_str(input, "path")?.to_owned();
                self.blocking(move |root| read_file(root, &path)).await
            }
            "write_file" => {
                let path = required_str(input, "path")?.to_owned();
                let content = required_str(input, "content")?.to_owned();
                self.blocking(move |root| write_file(root, &path, &content))
                    .await
            }
            "run_command" => run_command(&self.workdir, required_str(input, "command")?).await,
            "read_skill" => {
                let name = required_str(input, "name")?.to_owned();
                if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
                    return Err(format!("\"{name}\" is not a skill name"));
                }
                let path = optional_str(input, "path")?
                    .unwrap_or("SKILL.md")
                    .to_owned();
                let skills = self.skills.clone().ok_or("no skills are installed")?;
                tokio::task::spawn_blocking(move || read_file(&skills, &format!("{name}/{path}")))
                    .await
                    .map_err(|e| format!("the tool failed: {e}"))?
            }
            _ => Err(format!(
                "tool \"{name}\" is listed but has no implementation"
            )),
        }
    }

    /// Runs blocking filesystem work off the async threads.
    async fn blocking<F>(&self, work: F) -> Result<String, String>
    where
        F: FnOnce(&Dir) -> Result<String, String> + Send + 'static,
    {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || work(&root))
            .await
            .map_err(|e| format!("the tool failed: {e}"))?
    }
}

fn optional_str<'a>(input: &'a Value, field: &str) -> Result<Option<&'a str>, String> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{field}\" must be a string")),
    }
}

fn required_str<'a>(input: &'a Value, field: &str) -> Result<&'a str, String> {
    optional_str(input, field)?.ok_or_else(|| format!("missing string field \"{field}\""))
}

/// `""` and `"./"` mean the working directory itself. Other paths go to cap-std as given
/// (trimming a trailing `/` of `"/"` would turn it into the workdir).
fn normalize(path: &str) -> &str {
    match path.trim() {
        "" | "./" => ".",
        trimmed => trimmed,
    }
}

fn list_files(root: &Dir, path: &str, recursive: bool) -> Result<String, String> {
    let path = normalize(path);
    let dir = root.open_dir(path).map_err(|e| format!("{path}: {e}"))?;
    let prefix = if path == "." {
        String::new()
    } else {
        format!("{}/", path.trim_end_matches('/'))
    };
    let mut lines = Vec::new();
    let mut truncated = false;
    collect_entries(&dir, &prefix, recursive, &mut lines, &mut truncated)
        .map_err(|e| format!("{path}: {e}"))?;
    let mut text = lines.join("\n");
    if truncated {
        text.push_str(&format!(
            "\n[listing stopped at {MAX_LIST_ENTRIES} entries]"
        ));
    } else if lines.is_empty() {
        text.push_str("[empty directory]");
    }
    Ok(text)
}

fn collect_entries(
    dir: &Dir,
    prefix: &str,
    recursive: bool,
    lines: &mut Vec<String>,
    truncated: &mut bool,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = dir
        .entries()?
        .filter_map(Result::ok)
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // file_type does not follow symlinks, so a symlinked directory is never descended.
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            (name, is_dir)
        })
        .collect();
    entries.sort();
    for (name, is_dir) in entries {
        if lines.len() >= MAX_LIST_ENTRIES {
            *truncated = true;
            return Ok(());
        }
        let path = format!("{prefix}{name}");
        if is_dir {
            lines.push(format!("{path}/"));
            // `.git` is listed but not walked: it is large and never what a task is about.
            if recursive && name != ".git" {
                if let Ok(sub) = dir.open_dir(&name) {
                    collect_entries(&sub, &format!("{path}/"), true, lines, truncated)?;
                }
            }
        } else {
            lines.push(path);
        }
    }
    Ok(())
}

fn read_file(root: &Dir, path: &str) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("{path}: {e}");
    let file = root.open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if meta.is_dir() {
        return Err(format!("{path} is a directory; use list_files"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_READ_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    let truncated = bytes.len() as u64 > MAX_READ_BYTES;
    bytes.truncate(MAX_READ_BYTES as usize);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if truncated {
        text.push_str(&format!(
            "\n[truncated: the file has {} bytes; only the first {MAX_READ_BYTES} are shown]",
            meta.len()
        ));
    }
    Ok(text)
}

fn write_file(root: &Dir, path: &str, content: &str) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("{path}: {e}");
    if normalize(path) == "." {
        return Err("\"path\" must name a file".to_owned());
    }
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            root.create_dir_all(parent).map_err(fail)?;
        }
    }
    root.write(path, content).map_err(fail)?;
    Ok(format!("wrote {} bytes to {path}", content.len()))
}

/// Runs `sh -c command` in its own process group, killed on timeout or when dropped.
async fn run_command(workdir: &Path, command: &str) -> Result<String, String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let _guard = ProcessGroupGuard::for_child(&child);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("cannot capture the command's output".to_owned());
    };
    let work = async {
        let (out, err, status) = tokio::join!(
            read_capped(stdout, MAX_COMMAND_OUTPUT),
            read_capped(stderr, MAX_COMMAND_OUTPUT),
            child.wait()
        );
        (out, err, status)
    };
    let Ok((out, err, status)) = tokio::time::timeout(COMMAND_TIMEOUT, work).await else {
        return Err(format!(
            "the command did not finish within {} seconds and was killed",
            COMMAND_TIMEOUT.as_secs()
        ));
    };
    let status = status.map_err(|e| format!("waiting for the command failed: {e}"))?;
    let text = format!(
        "exit status: {}\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
        status
            .code()
            .map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string())
    );
    if status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Reads a stream to its end, keeping the first `max` bytes (the rest is drained so that the
/// writer never blocks on a full pipe).
async fn read_capped(mut reader: impl tokio::io::AsyncRead + Unpin, max: usize) -> String {
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                dropped += n - room;
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n[{dropped} more bytes not shown]"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Setup {
        // Kept alive for the test; `outside` is a sibling the tools must never reach.
        _base: tempfile::TempDir,
        work: PathBuf,
        outside: PathBuf,
    }

    fn setup() -> Setup {
        let base = tempfile::tempdir().unwrap();
        let work = base.path().join("work");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "top secret").unwrap();
        Setup {
            _base: base,
            work,
            outside,
        }
    }

    async fn call(tools: &Toolbox, name: &str, input: Value) -> Result<String, String> {
        tools.call(name, &input).await
    }

    #[tokio::test]
    async fn writes_reads_and_lists_inside_the_workdir() {
        let s = setup();
        let tools = Toolbox::for_workdir(&s.work, false).unwrap();
        let wrote = call(
            &tools,
            "write_file",
            json!({"path": "a/b/c.txt", "content": "hello"}),
        )
        .await
        .unwrap();
        assert_eq!(wrote, "wrote 5 bytes to a/b/c.txt");
        assert_eq!(
            std::fs::read_to_string(s.work.join("a/b/c.txt")).unwrap(),
            "hello"
        );
        let read = call(&tools, "read_file", json!({"path": "a/b/c.txt"})).await;
        assert_eq!(read.unwrap(), "hello");
        let flat = call(&tools, "list_files", json!({})).await.unwrap();
        assert_eq!(flat, "a/");
        let flat = call(&tools, "list_files", json!({"path": "a/"}))
            .await
            .unwrap();
        assert_eq!(flat, "a/b/");
        let deep = call(
            &tools,
            "list_files",
            json!({"path": "a", "recursive": true}),
        )
        .await
        .unwrap();
        assert_eq!(deep, "a/b/\na/b/c.txt");
        // `..` that stays inside is fine.
        let read = call(&tools, "read_file", json!({"path": "a/../a/b/c.txt"})).await;
        assert_eq!(read.unwrap(), "hello");
    }

    #[tokio::test]
    async fn dot_dot_cannot_leave_the_workdir() {
        let s = setup();
        let tools = Toolbox::for_workdir(&s.work, false).unwrap();
        let read = call(
            &tools,
            "read_file",
            json!({"path": "../outside/secret.txt"}),
        )
        .await;
        assert!(read.is_err(), "{read:?}");
        let write = call(
            &tools,
            "write_file",
            json!({"path": "../outside/new.txt", "content": "x"}),
        )
        .await;
        assert!(write.is_err(), "{write:?}");
        assert!(!s.outside.join("new.txt").exists());
        let list = call(&tools, "list_files", json!({"path": ".."})).await;
        assert!(list.is_err(), "{list:?}");
        let write = call(
            &tools,
            "write_file",
            json!({"path": "sub/../../escape.txt", "content": "x"}),
        )
        .await;
        assert!(write.is_err(), "{write:?}");
        assert!(!s.work.parent().unwrap().join("escape.txt").exists());
    }

    #[tokio::test]
    async fn absolute_paths_are_refused() {
        let s = setup();
        let tools = Toolbox::for_workdir(&s.work, false).unwrap();
        let secret = s.outside.join("secret.txt");
        let read = call(&tools, "read_file", json!({"path": secret})).await;
        assert!(read.is_err(), "{read:?}");
        let target = s.outside.join("abs.txt");
        let write = call(
            &tools,
            "write_file",
            json!({"path": target, "content": "x"}),
        )
        .await;
        assert!(write.is_err(), "{write:?}");
        assert!(!target.exists());
        let list = call(&tools, "list_files", json!({"path": "/"})).await;
        assert!(list.is_err(), "{list:?}");
    }

    #[tokio::test]
    async fn symlinks_pointing_outside_are_not_followed() {
        let s = setup();
        symlink(s.outside.join("secret.txt"), s.work.join("link.txt")).unwrap();
        symlink(&s.outside, s.work.join("outdir")).unwrap();
        symlink(s.outside.join("target.txt"), s.work.join("dangling.txt")).unwrap();
        let tools = Toolbox::for_workdir(&s.work, false).unwrap();

        // A symlinked file at the end of the path.
        let read = call(&tools, "read_file", json!({"path": "link.txt"})).await;
        assert!(read.is_err(), "{read:?}");
        // A symlinked directory in the middle of the path.
        let read = call(&tools, "read_file", json!({"path": "outdir/secret.txt"})).await;
        assert!(read.is_err(), "{read:?}");
        let list = call(&tools, "list_files", json!({"path": "outdir"})).await;
        assert!(list.is_err(), "{list:?}");
        // Writing through symlinks: to an existing file, to a dangling one, and into a
        // symlinked directory (also with parent creation).
        for path in [
            "link.txt",
            "dangling.txt",
            "outdir/new.txt",
            "outdir/deep/new.txt",
        ] {
            let write = call(
                &tools,
                "write_file",
                json!({"path": path, "content": "pwned"}),
            )
            .await;
            assert!(write.is_err(), "{path}: {write:?}");
        }
        assert_eq!(
            std::fs::read_to_string(s.outside.join("secret.txt")).unwrap(),
            "top secret"
        );
        assert!(!s.outside.join("target.txt").exists());
        assert!(!s.outside.join("new.txt").exists());
        assert!(!s.outside.join("deep").exists());

        // A recursive listing shows the links but does not walk into the linked directory.
        let list = call(&tools, "list_files", json!({"recursive": true}))
            .await
            .unwrap();
        assert_eq!(list, "dangling.txt\nlink.txt\noutdir");
    }

    #[tokio::test]
    async fn symlinks_inside_the_workdir_work() {
        let s = setup();
        std::fs::create_dir(s.work.join("real")).unwrap();
        std::fs::write(s.work.join("real/f.txt"), "inside").unwrap();
        symlink("real", s.work.join("alias")).unwrap();
        let tools = Toolbox::for_workdir(&s.work, false).unwrap();
        let read = call(&tools, "read_file", json!({"path": "alias/f.txt"})).await;
        assert_eq!(read.unwrap(), "inside");
    }

    #[tokio::test]
    async fn large_files_are_truncated_with_a_note() {
        let s = setup();
        std::fs::write(s.work.join("big.txt"), vec![b'x'; 300 * 1024]).unwrap();
        let tools = Toolbox::for_workdir(&s.work, false).unwrap();
        let read = call(&tools, "read_file", json!({"path": "big.txt"}))
            .await
            .unwrap();
        assert!(read.starts_with(&"x".repeat(1000)));
        assert!(read
            .ends_with("[truncated: the file has 307200 bytes; only the first 262144 are shown]"));
    }

    #[tokio::test]
    async fn bad_input_and_unknown_tools_are_errors_for_the_model() {
        let s = setup();
        let tools = Toolbox::for_workdir(&s.work, false).unwrap();
        let err = call(&tools, "read_file", json!({})).await.unwrap_err();
        assert_eq!(err, "missing string field \"path\"");
        let err = call(&tools, "read_file", json!({"path": 3}))
            .await
            .unwrap_err();
        assert_eq!(err, "\"path\" must be a string");
        let err = call(&tools, "nope", json!({})).await.unwrap_err();
        assert_eq!(err, "unknown tool \"nope\"");
    }

    #[tokio::test]
    async fn run_command_is_offered_only_when_allowed() {
        let s = setup();
        let tools = Toolbox::for_workdir(&s.work, false).unwrap();
        assert!(tools.specs().iter().all(|t| t.name != "run_command"));
        let err = call(&tools, "run_command", json!({"command": "touch x"}))
            .await
            .unwrap_err();
        assert_eq!(err, "unknown tool \"run_command\"");
        assert!(!s.work.join("x").exists());

        let tools = Toolbox::for_workdir(&s.work, true).unwrap();
        assert!(tools.specs().iter().any(|t| t.name == "run_command"));
        let ok = call(&tools, "run_command", json!({"command": "echo hi; pwd"}))
            .await
            .unwrap();
        let pwd = std::fs::canonicalize(&s.work).unwrap();
        assert_eq!(
            ok,
            format!(
                "exit status: 0\n--- stdout ---\nhi\n{}\n\n--- stderr ---\n",
                pwd.display()
            )
        );
        let err = call(
            &tools,
            "run_command",
            json!({"command": "echo oops >&2; exit 3"}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            "exit status: 3\n--- stdout ---\n\n--- stderr ---\noops\n"
        );
    }
}
