//! Running a command in a lease's container and wiring it to this terminal:
//! output to stdout/stderr, stdin to the command, window size along.

use futures::StreamExt;
use lease_core::runtime::{ExecHandle, ExecRequest, ExecSession, LogSource};
use lease_core::{LeaseId, LeaseManager};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::TtyArgs;
use crate::error::CliError;
use crate::output::{write_stderr, write_stdout};
use crate::signals::WindowChanges;
use crate::terminal::{self, RawMode};

/// The shell opened when no command is given: bash where there is one, else sh.
const DEFAULT_SHELL: [&str; 3] = [
    "sh",
    "-c",
    "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi",
];

/// What to run and how to attach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecPlan {
    /// Program and arguments.
    pub command: Vec<String>,
    /// With a terminal (raw mode here, window size passed through).
    pub tty: bool,
    /// With our stdin attached.
    pub stdin: bool,
}

impl ExecPlan {
    /// A shell when `command` is empty, else the command. A terminal when
    /// both stdin and stdout are terminals, unless `--tty`/`--no-tty` say
    /// otherwise; stdin is attached for a shell, with a terminal, or when it
    /// is piped in.
    pub fn new(command: Vec<String>, tty: TtyArgs) -> Self {
        let interactive = command.is_empty();
        let command = if interactive {
            DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect()
        } else {
            command
        };
        let stdin_tty = terminal::stdin_is_terminal();
        let tty = if tty.no_tty {
            false
        } else {
            tty.tty || (stdin_tty && terminal::stdout_is_terminal())
        };
        ExecPlan {
            command,
            tty,
            stdin: interactive || tty || !stdin_tty,
        }
    }
}

/// How an exec ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecEnd {
    /// The command exited with this code.
    Exited(i64),
    /// `cancel` fired first; the command was left to the container's removal.
    Cancelled,
}

/// Reads stdin on a thread of its own (a blocking read cannot be cancelled,
/// so it must not hold up the async runtime's shutdown) and hands the bytes over.
pub fn stdin_channel() -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel(16);
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin();
            let mut buffer = [0u8; 8192];
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) => return,
                    Ok(n) => {
                        if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                }
            }
        });
    if spawned.is_err() {
        // No thread: the receiver reports end of input at once.
        let (_, closed) = mpsc::channel(1);
        return closed;
    }
    receiver
}

pub async fn next_input(keys: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match keys {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Tells the exec the terminal's current size (best effort).
async fn resize(control: &ExecHandle) {
    if let Some((columns, rows)) = terminal::size()
        && let Err(error) = control.resize(columns, rows).await
    {
        tracing::debug!(exec = ?control, error = %error.chain(), "resize failed");
    }
}

/// Runs `plan` in the container of lease `id` until it exits or `cancel`
/// fires. The terminal is restored before this returns, however it returns.
pub async fn run(
    manager: &LeaseManager,
    id: &LeaseId,
    plan: ExecPlan,
    cancel: &CancellationToken,
) -> Result<ExecEnd, CliError> {
    let size = if plan.tty { terminal::size() } else { None };
    let request = ExecRequest {
        command: plan.command.clone(),
        tty: plan.tty,
        stdin: plan.stdin,
        size,
        ..ExecRequest::default()
    };
    let ExecSession {
        mut output,
        mut input,
        control,
    } = manager.exec(id, request).await?;
    // Dropped on every way out of this function: the terminal comes back.
    let _raw = if plan.tty && terminal::stdin_is_terminal() {
        Some(RawMode::enable()?)
    } else {
        None
    };
    let mut keys = input.is_some().then(stdin_channel);
    let mut windows = WindowChanges::new();
    // The process may not have its terminal yet when the exec starts; size
    // it again once it has written something.
    let mut resized_after_output = !plan.tty;
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(chunk)) => {
                    match chunk.source {
                        LogSource::Stdout => write_stdout(&chunk.bytes)?,
                        LogSource::Stderr => write_stderr(&chunk.bytes),
                    }
                    if !resized_after_output {
                        resized_after_output = true;
                        resize(&control).await;
                    }
                }
                Some(Err(error)) => return Err(error.into()),
                None => break,
            },
            bytes = next_input(&mut keys) => match (bytes, input.as_mut()) {
                (Some(bytes), Some(writer)) => {
                    if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                        // The command stopped reading; its output still comes.
                        keys = None;
                        input = None;
                    }
                }
                _ => {
                    // End of our stdin: pass it on, so `cat` and friends finish.
                    keys = None;
                    if let Some(mut writer) = input.take() {
                        let _ = writer.shutdown().await;
                    }
                }
            },
            () = windows.changed(), if plan.tty => resize(&control).await,
            () = cancel.cancelled() => return Ok(ExecEnd::Cancelled),
        }
    }
    drop(input);
    exit_code(&control).await.map(ExecEnd::Exited)
}

/// The exec's exit code; the engine may take a moment to record it after
/// the output ends.
async fn exit_code(control: &ExecHandle) -> Result<i64, CliError> {
    for _ in 0..100 {
        if let Some(code) = control.exit_code().await? {
            return Ok(code);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(CliError::Partial(
        "the command's output ended but Docker reports it still running".to_owned(),
    ))
}

/// An exec's exit code as a process exit code (0-255).
pub fn process_code(code: i64) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(code.rem_euclid(256)).unwrap_or(1))
}
