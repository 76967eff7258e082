//! A shell session on the server wired to this terminal: output to
//! stdout/stderr, stdin to the session, window size along (SIGWINCH →
//! resize), and a dropped connection re-attached with `?offset=` so the
//! output produced meanwhile still arrives.

use std::time::Duration;

use lease_client::{Attachment, Channel, ClientError, EndReason, Frame, SessionRequest, Signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::CliError;
use crate::exec::{ExecPlan, next_input, stdin_channel};
use crate::output::{write_stderr, write_stdout};
use crate::remote::Remote;
use crate::signals::{Interrupts, WindowChanges};
use crate::terminal::{self, RawMode};

/// WebSocket pings to the server this often (a dead link shows up).
const KEEPALIVE: Duration = Duration::from_secs(20);
/// Re-attach attempts in a row before giving up.
const RECONNECT_TRIES: u32 = 8;
/// First pause before re-attaching; doubles up to [`RECONNECT_MAX_PAUSE`].
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);
/// Longest pause between two attempts.
const RECONNECT_MAX_PAUSE: Duration = Duration::from_secs(4);

/// How a remote session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The process exited with this code.
    Exited(i64),
    /// The server ended it (the lease expired or was deleted, DELETE on
    /// the session, server shutdown, a failed exec, …).
    Ended {
        /// The reason.
        reason: EndReason,
        /// For people.
        message: String,
    },
    /// Another client took it over.
    Detached(String),
    /// `cancel` fired first.
    Cancelled,
}

/// What this side still owes the session, kept across reconnects.
struct Wiring {
    keys: Option<mpsc::Receiver<Vec<u8>>>,
    /// Input read but not delivered (the link dropped while sending).
    unsent: Option<Vec<u8>>,
    /// End of input read but not delivered.
    eof_pending: bool,
    windows: WindowChanges,
    /// Ctrl-C, passed on as a signal (`None`: they do what they do to us).
    interrupts: Option<Interrupts>,
    tty: bool,
    /// Raw mode is on: notes need `\r\n`.
    raw: bool,
}

impl Wiring {
    fn note(&self, text: &str) {
        let end = if self.raw { "\r\n" } else { "\n" };
        write_stderr(format!("{text}{end}").as_bytes());
    }
}

/// How one connection ended.
enum Pumped {
    Over(SessionEnd),
    Dropped(String),
}

/// What Ctrl-C does during a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlC {
    /// Passed on to the session's processes as SIGINT (without a terminal;
    /// with one, Ctrl-C is a key like any other).
    Forward,
    /// Left to the caller (who watches `cancel`).
    Caller,
}

/// Creates a session running `plan` in lease `lease_id` and attaches it to
/// this terminal until it ends or `cancel` fires. The terminal is restored
/// before this returns, however it returns.
pub async fn run(
    remote: &Remote,
    lease_id: &str,
    plan: ExecPlan,
    ctrl_c: CtrlC,
    cancel: &CancellationToken,
) -> Result<SessionEnd, CliError> {
    let size = if plan.tty { terminal::size() } else { None };
    let request = SessionRequest {
        command: Some(plan.command.clone()),
        tty: Some(plan.tty),
        cols: size.map(|(cols, _)| cols),
        rows: size.map(|(_, rows)| rows),
    };
    let session = remote
        .client
        .create_session(lease_id, &request)
        .await
        .map_err(|e| remote.error(e))?;
    tracing::debug!(lease_id, session_id = %session.session_id, tty = plan.tty, "session created");
    let raw = if plan.tty && terminal::stdin_is_terminal() {
        Some(RawMode::enable()?)
    } else {
        None
    };
    let mut wiring = Wiring {
        keys: plan.stdin.then(stdin_channel),
        unsent: None,
        eof_pending: !plan.stdin,
        windows: WindowChanges::new(),
        interrupts: (ctrl_c == CtrlC::Forward && raw.is_none()).then(Interrupts::new),
        tty: plan.tty,
        raw: raw.is_some(),
    };
    let end = attach_until_over(remote, lease_id, &session.session_id, &mut wiring, cancel).await;
    if matches!(end, Ok(SessionEnd::Cancelled)) {
        // Nobody will come back for it: end it now rather than at the detach timeout.
        let deleted = tokio::time::timeout(
            Duration::from_secs(5),
            remote.client.delete_session(lease_id, &session.session_id),
        )
        .await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::debug!(lease_id, session_id = %session.session_id, "could not end the session");
        }
    }
    end
}

/// Attaches (and re-attaches after drops) until the session is over.
async fn attach_until_over(
    remote: &Remote,
    lease_id: &str,
    session_id: &str,
    wiring: &mut Wiring,
    cancel: &CancellationToken,
) -> Result<SessionEnd, CliError> {
    let mut offset = 0u64;
    let mut failures = 0u32;
    loop {
        let attached = tokio::select! {
            attached = remote.client.attach(lease_id, session_id, offset) => attached,
            () = cancel.cancelled() => return Ok(SessionEnd::Cancelled),
        };
        let why = match attached {
            Ok(attachment) => {
                match pump(attachment, wiring, &mut offset, &mut failures, cancel).await? {
                    Pumped::Over(end) => return Ok(end),
                    Pumped::Dropped(why) => why,
                }
            }
            Err(error) if retryable(&error) => lease_core::error::error_chain(&error),
            Err(error) => return Err(remote.error(error)),
        };
        failures += 1;
        if failures > RECONNECT_TRIES {
            return Err(CliError::Partial(format!(
                "lost the connection to the server and could not re-attach ({why}); \
                 the session lives on for a while: `lease shell` starts a new one"
            )));
        }
        wiring.note(&format!(
            "lease: connection to the server lost ({why}); reconnecting (attempt {failures} of {RECONNECT_TRIES})…"
        ));
        let pause = RECONNECT_PAUSE
            .saturating_mul(1 << (failures - 1).min(5))
            .min(RECONNECT_MAX_PAUSE);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => return Ok(SessionEnd::Cancelled),
        }
    }
}

/// Whether attaching again may work: the network or a proxy in between,
/// not a refusal by the server.
fn retryable(error: &ClientError) -> bool {
    match error {
        ClientError::Transport { .. } | ClientError::WebSocket { .. } => true,
        ClientError::Api { status, .. } => matches!(status, 502..=504),
        _ => false,
    }
}

/// Moves bytes both ways over one connection until the session ends, the
/// link drops or `cancel` fires. `offset` follows the output received.
async fn pump(
    attachment: Attachment,
    wiring: &mut Wiring,
    offset: &mut u64,
    failures: &mut u32,
    cancel: &CancellationToken,
) -> Result<Pumped, CliError> {
    let Attachment {
        mut sender,
        mut stream,
    } = attachment;
    let dropped = |error: ClientError| Ok(Pumped::Dropped(lease_core::error::error_chain(&error)));
    if let Some(bytes) = wiring.unsent.take()
        && let Err(error) = sender.stdin(&bytes).await
    {
        wiring.unsent = Some(bytes);
        return dropped(error);
    }
    if wiring.eof_pending {
        if let Err(error) = sender.eof().await {
            return dropped(error);
        }
        wiring.eof_pending = false;
    }
    if wiring.tty
        && let Some((cols, rows)) = terminal::size()
        && let Err(error) = sender.resize(cols, rows).await
    {
        return dropped(error);
    }
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        tokio::select! {
            frame = stream.next() => {
                *offset = stream.offset();
                match frame {
                    Some(Ok(frame)) => {
                        if let Some(end) = on_frame(frame, wiring, failures)? {
                            sender.close().await;
                            return Ok(Pumped::Over(end));
                        }
                    }
                    Some(Err(
                        error @ (ClientError::Protocol(_) | ClientError::Decode { .. }),
                    )) => return Err(CliError::Remote(error)),
                    Some(Err(error)) => return dropped(error),
                    None => return Ok(match stream.close_frame() {
                        Some((4001, reason)) => Pumped::Over(SessionEnd::Detached(reason.to_owned())),
                        Some((code, reason)) => Pumped::Dropped(format!("closed by the server ({code} {reason})")),
                        None => Pumped::Dropped("the connection closed".to_owned()),
                    }),
                }
            }
            bytes = next_input(&mut wiring.keys) => match bytes {
                Some(bytes) => {
                    if let Err(error) = sender.stdin(&bytes).await {
                        wiring.unsent = Some(bytes);
                        return dropped(error);
                    }
                }
                None => {
                    // End of our stdin: pass it on, so `cat` and friends finish.
                    wiring.keys = None;
                    if let Err(error) = sender.eof().await {
                        wiring.eof_pending = true;
                        return dropped(error);
                    }
                }
            },
            () = wiring.windows.changed(), if wiring.tty => {
                if let Some((cols, rows)) = terminal::size()
                    && let Err(error) = sender.resize(cols, rows).await
                {
                    return dropped(error);
                }
            }
            () = next_interrupt(&mut wiring.interrupts) => {
                if let Err(error) = sender.signal(Signal::Int).await {
                    return dropped(error);
                }
            }
            _ = keepalive.tick() => {
                if let Err(error) = sender.ws_ping().await {
                    return dropped(error);
                }
            }
            () = cancel.cancelled() => {
                sender.close().await;
                return Ok(Pumped::Over(SessionEnd::Cancelled));
            }
        }
    }
}

async fn next_interrupt(interrupts: &mut Option<Interrupts>) {
    match interrupts {
        Some(interrupts) => interrupts.next().await,
        None => std::future::pending().await,
    }
}

/// Handles one frame; `Some` when the session is over.
fn on_frame(
    frame: Frame,
    wiring: &Wiring,
    failures: &mut u32,
) -> Result<Option<SessionEnd>, CliError> {
    match frame {
        Frame::Output { channel, bytes } => match channel {
            Channel::Stdout => write_stdout(&bytes)?,
            Channel::Stderr => write_stderr(&bytes),
        },
        Frame::Attached { missed, .. } => {
            if *failures > 0 {
                wiring.note("lease: reconnected");
            }
            *failures = 0;
            if missed > 0 {
                wiring.note(&format!(
                    "lease: {missed} bytes of output were lost while disconnected"
                ));
            }
        }
        Frame::Exit { code } => return Ok(Some(SessionEnd::Exited(code))),
        Frame::Ended { reason, message } => {
            return Ok(Some(SessionEnd::Ended { reason, message }));
        }
        Frame::Detached { reason } => return Ok(Some(SessionEnd::Detached(reason))),
        Frame::Error { code, message } => {
            tracing::warn!(code = %code, message = %message, "the server refused a message");
        }
        // Pong, and whatever a newer server sends that this one does not know.
        _ => {}
    }
    Ok(None)
}
