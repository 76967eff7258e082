//! `logs`, `shell` and `run` through a lease-server.

use std::process::ExitCode;

use lease_client::EndReason;
use lease_core::Status;
use lease_core::error::error_chain;
use tokio_util::sync::CancellationToken;

use crate::cli::{LogsArgs, RunArgs, ShellArgs};
use crate::commands::interrupt_token;
use crate::duration::compact;
use crate::error::CliError;
use crate::exec::{ExecPlan, process_code};
use crate::lookup::Scope;
use crate::output::{SHORT_ID, dollars, note, print, short_id};
use crate::remote::Remote;
use crate::remote::attach::{self, CtrlC, SessionEnd};
use crate::remote::leases::{provision, remove_now, wait_until_running};
use crate::remote::lookup::find;

/// Most lines the server replays (its cap on `tail`).
const MAX_TAIL: u32 = 10_000;

/// `lease logs`: the container's output (stdout and stderr together: the
/// server's log stream does not tell them apart).
pub async fn logs(remote: &Remote, args: LogsArgs) -> Result<ExitCode, CliError> {
    let lease = find(remote, &args.id, Scope::Active).await?;
    let mut lines = remote
        .client
        .logs(&lease.id, Some(args.tail.unwrap_or(MAX_TAIL)), args.follow)
        .await
        .map_err(|e| remote.error(e))?;
    loop {
        match lines.next_line().await {
            Some(Ok(line)) => print(&line)?,
            Some(Err(error)) => return Err(remote.error(error)),
            None => break,
        }
    }
    lines.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Fails unless the lease (as just read) is running.
pub(super) fn require_running(lease: &lease_client::wire::LeaseJson) -> Result<(), CliError> {
    match lease.status.parse::<Status>() {
        Ok(Status::Running) => Ok(()),
        Ok(status) => Err(CliError::NotRunning {
            id: lease.id.clone(),
            status,
            error: lease.error.clone(),
        }),
        Err(_) => Err(CliError::Partial(format!(
            "the server reports an unknown status `{}`",
            lease.status
        ))),
    }
}

/// `lease shell`: an interactive shell, or one command with its exit code.
pub async fn shell(remote: &Remote, args: ShellArgs) -> Result<ExitCode, CliError> {
    let lease = find(remote, &args.id, Scope::Active).await?;
    require_running(&lease)?;
    let plan = ExecPlan::new(args.command, args.tty);
    // SIGTERM/SIGHUP end the session (its processes are killed); Ctrl-C
    // goes to them (as a key with a terminal, as SIGINT without).
    let terminated = CancellationToken::new();
    let watch = {
        let terminated = terminated.clone();
        tokio::spawn(async move {
            crate::signals::terminated().await;
            terminated.cancel();
        })
    };
    let end = attach::run(remote, &lease.id, plan, CtrlC::Forward, &terminated).await;
    watch.abort();
    Ok(match end? {
        SessionEnd::Exited(code) => process_code(code),
        SessionEnd::Cancelled => ExitCode::from(130),
        other => {
            note_end(&other);
            ExitCode::from(1)
        }
    })
}

fn note_end(end: &SessionEnd) {
    match end {
        SessionEnd::Ended { reason, message } => {
            note(&format!(
                "lease: the session ended ({}): {message}",
                reason.as_str()
            ));
        }
        SessionEnd::Detached(reason) => note(&format!(
            "lease: the session was taken over ({reason}); it goes on there"
        )),
        SessionEnd::Exited(_) | SessionEnd::Cancelled => {}
    }
}

/// `lease run` through the server: a lease that lasts as long as its
/// shell. The lease is removed when the shell (or command) exits, on
/// Ctrl-C/SIGTERM/SIGHUP, or when the server ends the session because the
/// lease expired or was ended elsewhere.
pub async fn run(remote: &Remote, args: RunArgs) -> Result<ExitCode, CliError> {
    let interrupt = interrupt_token();
    let lease = provision(remote, &args.offering, args.minutes).await?;
    let id = lease.id.clone();
    let running = match wait_until_running(remote, lease, &interrupt).await {
        Ok(running) => running,
        Err(error) => {
            if let Err(cleanup) = remove_now(remote, &id).await {
                note(&format!("lease: {}", error_chain(&cleanup)));
            }
            return Err(error);
        }
    };
    note(&format!(
        "lease {} ({}, {}) is running for up to {}; its container is removed when the shell exits",
        short_id(&running.id, SHORT_ID),
        running.image_type,
        dollars(running.cost),
        compact(running.expires_in)
    ));
    let plan = ExecPlan::new(args.command, args.tty);
    // The terminal is restored when this returns.
    let ended = attach::run(remote, &id, plan, CtrlC::Caller, &interrupt).await;
    match &ended {
        Ok(SessionEnd::Ended {
            reason: EndReason::Expired,
            ..
        }) => {
            note("lease: the lease expired; removing its container");
        }
        Ok(SessionEnd::Ended {
            reason: EndReason::Deleted,
            ..
        }) => {
            note("lease: the lease was ended elsewhere (deleted)");
        }
        Ok(SessionEnd::Cancelled) => note("lease: interrupted; removing the container"),
        Ok(other) => note_end(other),
        Err(_) => {}
    }
    let removed = remove_now(remote, &id).await?;
    note(&format!(
        "lease {} removed; cost {}",
        short_id(&id, SHORT_ID),
        dollars(removed.final_cost.unwrap_or_default())
    ));
    Ok(match ended? {
        SessionEnd::Exited(code) => process_code(code),
        SessionEnd::Cancelled => ExitCode::from(130),
        // Like timeout(1): the command was cut off by the lease's end.
        SessionEnd::Ended {
            reason: EndReason::Expired | EndReason::Deleted,
            ..
        } => ExitCode::from(124),
        SessionEnd::Ended { .. } | SessionEnd::Detached(_) => ExitCode::from(1),
    })
}
