//! One shell session: its exec, the pump that moves the process's output
//! into the replay buffer (and to the attached socket, if any), the writer
//! of its standard input, resize and signals, and how it ended.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use lease_core::runtime::{ExecChunk, ExecHandle, ExecSession, LogSource};
use lease_core::{
    ContainerRuntime, EndReason as LeaseEndReason, LeaseId, LeaseManager, RuntimeError, Status,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use super::frames::{EndReason, ServerMessage, SignalName};
use super::kill;
use super::replay::{Chunk, Replay, ReplayBuffer};

/// Output chunks queued for the attached socket before the pump waits for it.
const OUTPUT_QUEUE: usize = 32;
/// Stdin bytes queued for a process that has not read them yet. Far more
/// than anyone types or pastes ahead of a busy shell; past it a message is
/// refused (`input_overflow`) so a process that never reads its input
/// cannot stall the socket (signals and output keep flowing).
const STDIN_BUDGET: usize = 1 << 20;
/// Stdin messages queued (each also counts against [`STDIN_BUDGET`]).
const STDIN_QUEUE: usize = 4096;
/// How long the exit code is waited for after the output ended.
const EXIT_CODE_WAIT: Duration = Duration::from_secs(5);
/// Between two reads of the exit code.
const EXIT_CODE_POLL: Duration = Duration::from_millis(25);

/// What a session is, fixed at creation.
#[derive(Clone, Debug)]
pub(crate) struct SessionInfo {
    /// 26 lowercase base32 characters.
    pub(crate) id: String,
    /// The lease it runs in.
    pub(crate) lease_id: LeaseId,
    /// The caller who started it (its sessions count against this owner).
    pub(crate) owner: String,
    /// The command run.
    pub(crate) command: Vec<String>,
    /// With a terminal.
    pub(crate) tty: bool,
    /// When it was created.
    pub(crate) created_at: DateTime<Utc>,
    /// The lease's container.
    pub(crate) container: String,
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    /// The process exited with this code.
    Exit(i64),
    /// It ended for another reason.
    Ended {
        /// Why.
        reason: EndReason,
        /// For people.
        message: String,
    },
}

impl SessionEnd {
    /// An end for `reason` with `message`.
    pub(crate) fn ended(reason: EndReason, message: impl Into<String>) -> Self {
        SessionEnd::Ended {
            reason,
            message: message.into(),
        }
    }

    /// The message that tells the client.
    pub(crate) fn message(&self) -> ServerMessage {
        match self {
            SessionEnd::Exit(code) => ServerMessage::Exit { code: *code },
            SessionEnd::Ended { reason, message } => ServerMessage::Ended {
                reason: *reason,
                message: message.clone(),
            },
        }
    }

    /// The end of a session whose lease ended for `reason`.
    pub(crate) fn lease_ended(reason: Option<LeaseEndReason>) -> Self {
        match reason {
            Some(LeaseEndReason::Expired) => SessionEnd::ended(
                EndReason::Expired,
                "the lease expired: its container was removed",
            ),
            Some(LeaseEndReason::Exited) => {
                SessionEnd::ended(EndReason::Deleted, "the lease's container stopped")
            }
            _ => SessionEnd::ended(
                EndReason::Deleted,
                "the lease was deleted: its container was removed",
            ),
        }
    }
}

/// What the socket writes into the process's standard input.
#[derive(Debug)]
pub(crate) enum StdinCommand {
    /// Bytes to write.
    Data(Bytes),
    /// Close standard input.
    Eof,
}

/// Why stdin did not take a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StdinRefused {
    /// The process has not read what it was sent.
    Full,
    /// Standard input is closed (after `eof`, or the process ended).
    Closed,
}

/// The attached socket's side of the session.
struct Attachment {
    generation: u64,
    output: mpsc::Sender<Chunk>,
    taken_over: CancellationToken,
}

/// What changes while the session lives.
struct State {
    buffer: ReplayBuffer,
    attached: Option<Attachment>,
    /// Since when nobody is attached (`None` while a socket is).
    detached_since: Option<Instant>,
    generation: u64,
    /// The terminal size last asked for.
    size: Option<(u16, u16)>,
}

/// What exists once the exec has started.
struct Started {
    /// Resize and exit code of the exec.
    control: ExecHandle,
    stdin: mpsc::Sender<StdinCommand>,
    /// Bytes queued for stdin and not written yet.
    pending: Arc<AtomicUsize>,
}

/// A socket's hold on a session, from [`Session::attach`].
pub(crate) struct Attached {
    /// Tells [`Session::detach`] which socket lets go.
    pub(crate) generation: u64,
    /// The held output from the client's offset on.
    pub(crate) replay: Replay,
    /// New output, in order after the replay.
    pub(crate) output: mpsc::Receiver<Chunk>,
    /// Cancelled when another socket takes the session over.
    pub(crate) taken_over: CancellationToken,
    /// The session's end, once it has one.
    pub(crate) end: watch::Receiver<Option<SessionEnd>>,
}

/// One shell session.
pub(crate) struct Session {
    pub(crate) info: SessionInfo,
    runtime: Arc<dyn ContainerRuntime>,
    state: Mutex<State>,
    started: OnceLock<Started>,
    end: watch::Sender<Option<SessionEnd>>,
    /// Bumped on every attach, detach and end (the detach timer watches it).
    changes: watch::Sender<u64>,
    /// Cancelled when the session ends: the pump and the stdin writer stop.
    stopped: CancellationToken,
    /// Cancelled when the registry forgets the session.
    pub(crate) removed: CancellationToken,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn channel_of(source: LogSource) -> u8 {
    match source {
        LogSource::Stdout => 1,
        LogSource::Stderr => 2,
    }
}

impl Session {
    /// A session not started yet (reserved in the registry), replaying up
    /// to `replay_bytes`.
    pub(crate) fn new(
        info: SessionInfo,
        manager: &LeaseManager,
        replay_bytes: usize,
        size: Option<(u16, u16)>,
    ) -> Arc<Self> {
        Arc::new(Session {
            info,
            runtime: manager.runtime().clone(),
            state: Mutex::new(State {
                buffer: ReplayBuffer::new(replay_bytes),
                attached: None,
                detached_since: Some(Instant::now()),
                generation: 0,
                size,
            }),
            started: OnceLock::new(),
            end: watch::channel(None).0,
            changes: watch::channel(0).0,
            stopped: CancellationToken::new(),
            removed: CancellationToken::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a valid state: keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Starts the session's tasks on its running exec: the output pump and
    /// the stdin writer.
    pub(crate) fn start(self: &Arc<Self>, exec: ExecSession, manager: LeaseManager) {
        let ExecSession {
            output,
            input,
            control,
        } = exec;
        let (stdin, commands) = mpsc::channel(STDIN_QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        // `start` runs once per session: a second call would find it set.
        let _ = self.started.set(Started {
            control,
            stdin,
            pending: pending.clone(),
        });
        let span = self.span();
        if let Some(input) = input {
            let writer = write_stdin(input, commands, pending, self.stopped.clone());
            tokio::spawn(writer.instrument(span.clone()));
        }
        tokio::spawn(self.clone().pump(output, manager).instrument(span));
    }

    /// A span carrying the session's fields, for its tasks.
    pub(crate) fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "shell_session",
            lease_id = %self.info.lease_id,
            owner = %self.info.owner,
            session_id = %self.info.id,
        )
    }

    /// The exec's control (`None` before the exec started).
    fn control(&self) -> Option<&ExecHandle> {
        self.started.get().map(|started| &started.control)
    }

    /// The end, if the session has ended.
    pub(crate) fn end(&self) -> Option<SessionEnd> {
        self.end.borrow().clone()
    }

    /// Whether the process still runs (the session has no end yet).
    pub(crate) fn is_live(&self) -> bool {
        self.end.borrow().is_none()
    }

    /// Whether a socket is attached.
    pub(crate) fn is_attached(&self) -> bool {
        self.state().attached.is_some()
    }

    /// A receiver of the attach/detach/end changes.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// When a session nobody is attached to times out (`None` while attached).
    pub(crate) fn detach_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.state().detached_since.map(|since| since + timeout)
    }

    /// Ends the session with `end` unless it has ended already; returns
    /// whether this call ended it.
    pub(crate) fn finish(&self, end: SessionEnd) -> bool {
        let mut ended = false;
        self.end.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            info!(
                lease_id = %self.info.lease_id,
                owner = %self.info.owner,
                session_id = %self.info.id,
                end = ?end,
                "shell session ended"
            );
            *current = Some(end);
            ended = true;
            true
        });
        if ended {
            self.stopped.cancel();
            self.bump();
        }
        ended
    }

    /// Attaches a socket that has `offset` output bytes already; an earlier
    /// socket is told it was taken over.
    pub(crate) fn attach(&self, offset: u64) -> Attached {
        let (sender, output) = mpsc::channel(OUTPUT_QUEUE);
        let taken_over = CancellationToken::new();
        let mut state = self.state();
        if let Some(previous) = state.attached.take() {
            previous.taken_over.cancel();
        }
        state.generation += 1;
        let generation = state.generation;
        state.attached = Some(Attachment {
            generation,
            output: sender,
            taken_over: taken_over.clone(),
        });
        state.detached_since = None;
        let replay = state.buffer.since(offset);
        drop(state);
        self.bump();
        Attached {
            generation,
            replay,
            output,
            taken_over,
            end: self.end.subscribe(),
        }
    }

    /// The socket of `generation` lets go (a later one may hold it already).
    pub(crate) fn detach(&self, generation: u64) {
        let mut state = self.state();
        if state
            .attached
            .as_ref()
            .is_some_and(|a| a.generation == generation)
        {
            state.attached = None;
            state.detached_since = Some(Instant::now());
            drop(state);
            self.bump();
        }
    }

    /// Queues `command` for the process's standard input without waiting.
    pub(crate) fn send_stdin(&self, command: StdinCommand) -> Result<(), StdinRefused> {
        let Some(started) = self.started.get() else {
            return Err(StdinRefused::Closed);
        };
        let size = match &command {
            StdinCommand::Data(bytes) => bytes.len(),
            StdinCommand::Eof => 0,
        };
        let reserved =
            started
                .pending
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                    (pending + size <= STDIN_BUDGET).then_some(pending + size)
                });
        if reserved.is_err() {
            return Err(StdinRefused::Full);
        }
        started.stdin.try_send(command).map_err(|error| {
            started.pending.fetch_sub(size, Ordering::AcqRel);
            match error {
                mpsc::error::TrySendError::Full(_) => StdinRefused::Full,
                mpsc::error::TrySendError::Closed(_) => StdinRefused::Closed,
            }
        })
    }

    /// Resizes the terminal.
    pub(crate) async fn resize(&self, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        self.state().size = Some((cols, rows));
        match self.control() {
            Some(control) => control.resize(cols, rows).await,
            // Not started yet: the exec starts at the size kept above.
            None => Ok(()),
        }
    }

    /// Sends `signal` to the session's process tree.
    pub(crate) async fn signal(&self, signal: SignalName) -> Result<(), RuntimeError> {
        debug!(
            lease_id = %self.info.lease_id,
            session_id = %self.info.id,
            signal = signal.as_str(),
            "signalling a shell session"
        );
        kill::signal_tree(&*self.runtime, &self.info.container, &self.info.id, signal).await
    }

    /// Kills the process tree (SIGKILL), logging a failure.
    pub(crate) async fn kill(&self) {
        if let Err(error) = self.signal(SignalName::Kill).await {
            warn!(
                lease_id = %self.info.lease_id,
                owner = %self.info.owner,
                session_id = %self.info.id,
                error = %error.chain(),
                "could not kill a shell session's processes"
            );
        }
    }

    /// Moves the output into the buffer (and to the attached socket) until
    /// it ends, then records how the session ended.
    async fn pump(
        self: Arc<Self>,
        mut output: BoxStream<'static, Result<ExecChunk, RuntimeError>>,
        manager: LeaseManager,
    ) {
        let mut sized = !self.info.tty;
        let failed = loop {
            let next = tokio::select! {
                biased;
                () = self.stopped.cancelled() => return,
                next = output.next() => next,
            };
            match next {
                Some(Ok(chunk)) => {
                    if !sized {
                        // The terminal may not have existed at the first resize.
                        sized = true;
                        self.size_again().await;
                    }
                    self.push(chunk).await;
                }
                Some(Err(error)) => break Some(error),
                None => break None,
            }
        };
        drop(output);
        let end = self.find_end(&manager, failed).await;
        self.finish(end);
    }

    async fn size_again(&self) {
        let size = self.state().size;
        if let Some((cols, rows)) = size
            && let Some(control) = self.control()
            && let Err(error) = control.resize(cols, rows).await
        {
            debug!(session_id = %self.info.id, error = %error.chain(), "resize after the first output failed");
        }
    }

    /// Keeps one chunk and hands it to the attached socket, waiting for it
    /// (a detached session never waits).
    async fn push(&self, chunk: ExecChunk) {
        let channel = channel_of(chunk.source);
        let bytes = Bytes::from(chunk.bytes);
        let target = {
            let mut state = self.state();
            state.buffer.push(channel, bytes.clone());
            state
                .attached
                .as_ref()
                .map(|a| (a.output.clone(), a.taken_over.clone()))
        };
        if let Some((output, taken_over)) = target {
            tokio::select! {
                // A closed receiver: the socket is gone; the buffer has it.
                _ = output.send(Chunk { channel, bytes }) => {}
                () = taken_over.cancelled() => {}
                () = self.stopped.cancelled() => {}
            }
        }
    }

    /// Why the output ended: the lease ended, the exec failed, or the
    /// process exited (with its code).
    async fn find_end(&self, manager: &LeaseManager, failed: Option<RuntimeError>) -> SessionEnd {
        if let Some(end) = lease_end(manager, &self.info.lease_id).await {
            return end;
        }
        if let Some(error) = failed {
            warn!(session_id = %self.info.id, error = %error.chain(), "shell output failed");
            return SessionEnd::ended(EndReason::Error, "the command's output could not be read");
        }
        let Some(control) = self.control() else {
            return SessionEnd::ended(EndReason::Error, "the command never started");
        };
        let deadline = Instant::now() + EXIT_CODE_WAIT;
        loop {
            match control.exit_code().await {
                Ok(Some(code)) => return SessionEnd::Exit(code),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(EXIT_CODE_POLL).await;
                }
                Ok(None) => {
                    return SessionEnd::ended(
                        EndReason::Error,
                        "the command's output ended but it did not exit",
                    );
                }
                Err(error) => {
                    if let Some(end) = lease_end(manager, &self.info.lease_id).await {
                        return end;
                    }
                    warn!(session_id = %self.info.id, error = %error.chain(), "shell exit code unavailable");
                    return SessionEnd::ended(
                        EndReason::Error,
                        "the command's exit code could not be read",
                    );
                }
            }
        }
    }
}

/// The end of a session on lease `id` if the lease has ended.
pub(crate) async fn lease_end(manager: &LeaseManager, id: &LeaseId) -> Option<SessionEnd> {
    match manager.get(id).await {
        Ok(lease) if matches!(lease.status, Status::Deleting | Status::Deleted) => {
            Some(SessionEnd::lease_ended(lease.end_reason))
        }
        Ok(_) | Err(_) => None,
    }
}

/// Writes what the socket sends into the process's standard input. Runs
/// apart from the output pump, so a process that does not read its input
/// never holds its output back.
async fn write_stdin(
    mut input: Pin<Box<dyn AsyncWrite + Send>>,
    mut commands: mpsc::Receiver<StdinCommand>,
    pending: Arc<AtomicUsize>,
    stopped: CancellationToken,
) {
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            () = stopped.cancelled() => None,
        };
        match command {
            Some(StdinCommand::Data(bytes)) => {
                let write = async {
                    input.write_all(&bytes).await?;
                    input.flush().await
                };
                let written = tokio::select! {
                    written = write => written.is_ok(),
                    () = stopped.cancelled() => false,
                };
                if !written {
                    return;
                }
                pending.fetch_sub(bytes.len(), Ordering::AcqRel);
            }
            Some(StdinCommand::Eof) => {
                let _ = input.shutdown().await;
                // Refuse what comes after; keep the half-closed input until the end.
                drop(commands);
                stopped.cancelled().await;
                return;
            }
            None => return,
        }
    }
}
