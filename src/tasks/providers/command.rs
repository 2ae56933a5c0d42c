//! The `command` provider: a local program gets the prompt on stdin and answers on stdout.
//!
//! The program runs in the working directory, in its own process group, with `CLAW_TASK_ID`,
//! `CLAW_MODEL` and `CLAW_WORKDIR` set. Stdout is the task's output, forwarded as it is read;
//! the tail of stderr explains a non-zero exit. The whole process group is killed when the
//! task is cancelled, when the future is dropped (timeout), and when the program exits (so
//! that background processes it left behind do not outlive the task).

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{Failure, Progress};
use crate::manifest::kinds::ModelConfig;
use crate::tasks::agent::RunRequest;

/// Bytes of stderr kept for the error message of a failed run.
const STDERR_TAIL_BYTES: usize = 2048;

/// Stdout kept in memory at most; beyond it output is drained and dropped, so that a runaway
/// program cannot exhaust the server's memory.
const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// How long to wait for a killed child to be reaped, and for pipes to close after the program
/// exited (a process outside the group may still hold them).
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Kills a child's process group (SIGKILL) when dropped.
///
/// The child must have been spawned with `process_group(0)`, so that its pid is the group id.
/// Killing an already-empty group is harmless (ESRCH is ignored).
#[derive(Debug)]
pub(crate) struct ProcessGroupGuard {
    pgid: Option<Pid>,
}

impl ProcessGroupGuard {
    pub(crate) fn for_child(child: &tokio::process::Child) -> ProcessGroupGuard {
        ProcessGroupGuard {
            pgid: child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        }
    }

    /// Kills the group now; later calls and the drop do nothing.
    pub(crate) fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            match killpg(pgid, Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    tracing::warn!(pgid = pgid.as_raw(), error = %e, "cannot kill process group")
                }
            }
        }
    }
}

impl Drop for ProcessGroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `model.command` with the prompt on stdin until it exits or `cancel` fires.
pub(crate) async fn run(
    model: &ModelConfig,
    req: &RunRequest,
    progress: &mut Progress,
    cancel: &CancellationToken,
) -> Result<(), Failure> {
    let Some((program, args)) = model.command.split_first() else {
        return Err(Failure::Config(
            "model.command is empty; the command provider needs a program to run".to_owned(),
        ));
    };
    let mut command = tokio::process::Command::new(program);
    if let Some(dir) = &req.skills_dir {
        command.env("CLAW_SKILLS_DIR", dir);
    }
    let mut child = command
        .args(args)
        .current_dir(&req.workdir)
        .env("CLAW_TASK_ID", &req.task_id)
        .env("CLAW_MODEL", &req.model)
        .env("CLAW_WORKDIR", &req.workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Belt and braces: the guard kills the group, this makes sure the leader is reaped.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::Config(format!("model.command: cannot start \"{program}\": {e}")))?;
    let mut guard = ProcessGroupGuard::for_child(&child);
    tracing::debug!(pid = child.id(), program, "command provider started");

    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Failure::Failed(
            "cannot open the command's stdin/stdout/stderr".to_owned(),
        ));
    };
    let prompt = req.prompt.clone();
    // Written concurrently with reading stdout, so that a program that answers before it has
    // read all of a long prompt cannot deadlock us. A program that ignores stdin closes the
    // pipe, which is not an error.
    let feed = async move {
        let _ = stdin.write_all(prompt.as_bytes()).await;
        drop(stdin);
    };
    let mut stderr_tail = Vec::new();

    let outcome = {
        let work = async {
            let ((), (), ()) = tokio::join!(
                feed,
                forward_stdout(stdout, progress),
                collect_tail(stderr, &mut stderr_tail),
            );
        };
        let exited = async {
            let status = child.wait().await;
            // The program is done: stray background processes go with it, which also
            // closes the pipes they inherited.
            guard.kill();
            status
        };
        let finished = async {
            let mut work = std::pin::pin!(work);
            let mut exited = std::pin::pin!(exited);
            let first = tokio::select! {
                status = &mut exited => Some(status),
                () = &mut work => None,
            };
            match first {
                Some(status) => {
                    // Pipes still held by a process that left the group are not waited for
                    // forever.
                    let _ = tokio::time::timeout(REAP_TIMEOUT, work).await;
                    status
                }
                None => exited.await,
            }
        };
        tokio::select! {
            status = finished => Some(status),
            () = cancel.cancelled() => None,
        }
    };

    let Some(status) = outcome else {
        guard.kill();
        if tokio::time::timeout(REAP_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            tracing::warn!("killed command provider was not reaped in time");
        }
        return Err(Failure::Cancelled);
    };
    let status =
        status.map_err(|e| Failure::Failed(format!("waiting for the command failed: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let code = status
        .code()
        .map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string());
    let tail = String::from_utf8_lossy(&stderr_tail);
    Err(Failure::Failed(format!(
        "exit status {code}: {}",
        tail.trim_end()
    )))
}

/// Forwards stdout to the progress as it arrives, keeping UTF-8 characters split across reads
/// whole.
async fn forward_stdout(mut stdout: tokio::process::ChildStdout, progress: &mut Progress) {
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut kept = 0usize;
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if kept >= MAX_OUTPUT_BYTES {
            continue;
        }
        kept += n;
        pending.extend_from_slice(&buf[..n]);
        let text = take_utf8(&mut pending);
        progress.emit(&text);
        if kept >= MAX_OUTPUT_BYTES {
            progress.emit(&format!(
                "\n[output truncated at {MAX_OUTPUT_BYTES} bytes]\n"
            ));
        }
    }
    if !pending.is_empty() {
        progress.emit(&String::from_utf8_lossy(&pending));
    }
}

/// Takes the longest decodable prefix of `bytes` (invalid sequences become U+FFFD), leaving an
/// incomplete character at the end for the next read.
fn take_utf8(bytes: &mut Vec<u8>) -> String {
    let mut text = String::new();
    let mut start = 0;
    loop {
        match std::str::from_utf8(&bytes[start..]) {
            Ok(valid) => {
                text.push_str(valid);
                start = bytes.len();
                break;
            }
            Err(e) => {
                let valid_end = start + e.valid_up_to();
                text.push_str(&String::from_utf8_lossy(&bytes[start..valid_end]));
                match e.error_len() {
                    Some(len) => {
                        text.push('\u{FFFD}');
                        start = valid_end + len;
                    }
                    None => {
                        start = valid_end;
                        break;
                    }
                }
            }
        }
    }
    bytes.drain(..start);
    text
}

/// Reads a stream to its end keeping only its last [`STDERR_TAIL_BYTES`].
async fn collect_tail(mut stream: impl tokio::io::AsyncRead + Unpin, tail: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_TAIL_BYTES {
                    tail.drain(..tail.len() - STDERR_TAIL_BYTES);
                }
            }
        }
    }
    if tail.len() > STDERR_TAIL_BYTES {
        tail.drain(..tail.len() - STDERR_TAIL_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::manifest::kinds::Provider;
    use crate::tasks::agent::{run, RunError};
    use crate::tasks::providers::testing::Fixture;

    fn command_model(script: &str) -> ModelConfig {
        ModelConfig {
            provider: Provider::Command,
            command: vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()],
            ..ModelConfig::default()
        }
    }

    async fn run_script(
        fx: &Fixture,
        script: &str,
        prompt: &str,
    ) -> Result<crate::tasks::agent::RunOutput, RunError> {
        run(
            &command_model(script),
            &fx.secrets,
            &fx.request(prompt),
            &fx.tools,
            fx.sink(),
            CancellationToken::new(),
        )
        .await
    }

    #[tokio::test]
    async fn stdout_is_the_output_and_the_prompt_arrives_on_stdin() {
        let fx = Fixture::new();
        let out = run_script(
            &fx,
            r#"read -r line; echo "got: $line"; echo "$CLAW_TASK_ID $CLAW_MODEL"; pwd"#,
            "do the thing\n",
        )
        .await
        .unwrap();
        let pwd = std::fs::canonicalize(fx.dir.path()).unwrap();
        let expected = format!("got: do the thing\ntask-1 test-model\n{}\n", pwd.display());
        assert_eq!(out.output, expected);
        assert_eq!(*fx.sunk.lock().unwrap(), expected);
        assert_eq!(out.usage, Default::default());
    }

    #[tokio::test]
    async fn a_long_prompt_is_fed_while_output_is_read() {
        let fx = Fixture::new();
        let prompt = "x".repeat(1 << 20);
        let out = run_script(&fx, "wc -c", &prompt).await.unwrap();
        assert_eq!(out.output.trim(), "1048576");
    }

    #[tokio::test]
    async fn non_zero_exit_fails_with_the_stderr_tail() {
        let fx = Fixture::new();
        let script = r#"echo partial; i=0; while [ $i -lt 500 ]; do echo "noise line $i" >&2; i=$((i+1)); done; echo "the real reason" >&2; exit 7"#;
        let err = run_script(&fx, script, "").await.unwrap_err();
        let RunError::Failed {
            message, output, ..
        } = err
        else {
            panic!("expected Failed, got {err:?}");
        };
        assert!(message.starts_with("exit status 7: "), "{message}");
        assert!(message.ends_with("the real reason"), "{message}");
        assert!(
            !message.contains("noise line 1\n"),
            "kept more than the tail"
        );
        assert!(message.len() <= STDERR_TAIL_BYTES + 20, "{}", message.len());
        assert_eq!(output, "partial\n");
    }

    #[tokio::test]
    async fn background_processes_left_behind_do_not_hold_the_task() {
        let fx = Fixture::new();
        let started = Instant::now();
        // The background sleep inherits stdout; the task must not wait for it.
        let out = run_script(&fx, "sleep 30 & echo $! > bg.pid; echo done", "")
            .await
            .unwrap();
        assert_eq!(out.output, "done\n");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        let pid: i32 = std::fs::read_to_string(fx.dir.path().join("bg.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(wait_gone(pid).await, "background process {pid} still runs");
    }

    #[tokio::test]
    async fn empty_argv_is_a_config_error() {
        let fx = Fixture::new();
        let model = ModelConfig {
            provider: Provider::Command,
            ..ModelConfig::default()
        };
        let err = run(
            &model,
            &fx.secrets,
            &fx.request("hi"),
            &fx.tools,
            fx.sink(),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RunError::Config(ref m) if m.contains("model.command is empty")));
    }

    /// True once `pid` no longer runs. A killed process whose parent died may linger as a
    /// zombie until init reaps it; a zombie runs nothing, so it counts as gone.
    fn is_gone(pid: i32) -> bool {
        match nix::sys::signal::kill(Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::ESRCH) => true,
            _ => std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    stat.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(true),
        }
    }

    async fn wait_gone(pid: i32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if is_gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Starts a script that leaves a background grandchild, waits until both pids are known.
    async fn start_grandchild_script(
        fx: &Fixture,
        cancel: CancellationToken,
    ) -> (
        tokio::task::JoinHandle<Result<crate::tasks::agent::RunOutput, RunError>>,
        i32,
        i32,
    ) {
        let model = command_model(
            "echo $$ > leader.pid; sleep 30 & echo $! > grandchild.pid; echo started; wait",
        );
        let req = fx.request("");
        let tools = crate::tasks::tools::Toolbox::for_workdir(fx.dir.path(), false).unwrap();
        let secrets = fx.secrets.clone();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let started_tx = std::sync::Mutex::new(Some(started_tx));
        let sink: crate::tasks::agent::OutputSink = std::sync::Arc::new(move |text: &str| {
            if text.contains("started") {
                if let Some(tx) = started_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
        });
        let handle =
            tokio::spawn(async move { run(&model, &secrets, &req, &tools, sink, cancel).await });
        started_rx.await.unwrap();
        let read_pid = |name: &str| -> i32 {
            std::fs::read_to_string(fx.dir.path().join(name))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        (handle, read_pid("leader.pid"), read_pid("grandchild.pid"))
    }

    #[tokio::test]
    async fn cancel_kills_the_process_group_promptly() {
        let fx = Fixture::new();
        let cancel = CancellationToken::new();
        let (handle, leader, grandchild) = start_grandchild_script(&fx, cancel.clone()).await;
        assert!(!is_gone(grandchild));
        let started = Instant::now();
        cancel.cancel();
        let result = handle.await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let Err(RunError::Cancelled { output, .. }) = result else {
            panic!("expected Cancelled, got {result:?}");
        };
        assert_eq!(output, "started\n");
        assert!(wait_gone(leader).await, "leader {leader} still runs");
        assert!(
            wait_gone(grandchild).await,
            "grandchild {grandchild} still runs"
        );
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_process_group() {
        let fx = Fixture::new();
        let (handle, leader, grandchild) =
            start_grandchild_script(&fx, CancellationToken::new()).await;
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
        assert!(wait_gone(leader).await, "leader {leader} still runs");
        assert!(
            wait_gone(grandchild).await,
            "grandchild {grandchild} still runs"
        );
    }

    #[test]
    fn utf8_split_across_reads_is_kept_whole() {
        let mut pending = "hé".as_bytes().to_vec();
        let last = pending.pop().unwrap();
        assert_eq!(take_utf8(&mut pending), "h");
        pending.push(last);
        pending.extend_from_slice(b"\xffz");
        assert_eq!(take_utf8(&mut pending), "é\u{FFFD}z");
        assert!(pending.is_empty());
    }
}
