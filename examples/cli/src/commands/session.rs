//! `lease logs`, `shell` and `run`: working inside a lease's container.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lease_core::error::error_chain;
use lease_core::runtime::{LogOptions, LogSource};
use tokio_util::sync::CancellationToken;

use crate::cli::{LogsArgs, RunArgs, ShellArgs};
use crate::commands::interrupt_token;
use crate::context::{Context, Docker};
use crate::duration::compact;
use crate::error::CliError;
use crate::exec::{self, ExecEnd, ExecPlan, process_code};
use crate::lifetime::{Over, until_over};
use crate::lookup::{Scope, find};
use crate::output::{dollars, note, print, write_stderr};
use crate::provisioning::{check_offering, provision, wait_until_running};
use crate::removal::remove_now;
use crate::watcher;

/// `lease logs`.
pub async fn logs(context: &Context, args: LogsArgs) -> Result<ExitCode, CliError> {
    context.require_shared_store("logs")?;
    let manager = context.manager(Docker::Needed).await?;
    let lease = find(&manager, &context.owner, &args.id, Scope::Active).await?;
    let options = LogOptions {
        follow: args.follow,
        tail: args.tail,
    };
    let mut lines = manager.logs(&lease.id, options).await?;
    while let Some(line) = lines.next().await {
        let line = line?;
        match line.source {
            LogSource::Stdout => print(&line.text)?,
            LogSource::Stderr => write_stderr(format!("{}\n", line.text).as_bytes()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lease shell`: an interactive shell, or one command with its exit code.
pub async fn shell(context: &Context, args: ShellArgs) -> Result<ExitCode, CliError> {
    context.require_shared_store("shell")?;
    let manager = context.manager(Docker::Needed).await?;
    let lease = find(&manager, &context.owner, &args.id, Scope::Active).await?;
    let plan = ExecPlan::new(args.command, args.tty);
    match exec::run(&manager, &lease.id, plan, &CancellationToken::new()).await? {
        ExecEnd::Exited(code) => Ok(process_code(code)),
        ExecEnd::Cancelled => Ok(ExitCode::from(1)),
    }
}

/// `lease run`: a lease that lasts as long as its shell. The container is
/// removed when the shell (or command) exits, on Ctrl-C/SIGTERM/SIGHUP, at
/// expiry, or when the lease is ended elsewhere.
pub async fn run(context: &Context, args: RunArgs) -> Result<ExitCode, CliError> {
    check_offering(&context.catalog()?, &args.offering)?;
    let manager = context.manager(Docker::Needed).await?;
    let interrupt = interrupt_token();
    let lease = provision(context, &manager, &args.offering, args.minutes).await?;
    // The lease outlives this command if it is killed (SIGKILL, a crash):
    // on SQLite a background reaper then removes the container at expiry.
    watcher::ensure(context);
    let id = lease.id.clone();
    let running = match wait_until_running(&manager, lease, &interrupt).await {
        Ok(running) => running,
        Err(error) => {
            if let Err(cleanup) = remove_now(&manager, &id).await {
                note(&format!("lease: {}", error_chain(&cleanup)));
            }
            return Err(error);
        }
    };
    note(&format!(
        "lease {} ({}, {}) is running for up to {}; its container is removed when the shell exits",
        running.id.short(12),
        running.offering,
        dollars(running.estimated_cost),
        compact(running.expires_in(manager.clock().now()))
    ));

    // Whatever ends the lease first ends the shell.
    let over = CancellationToken::new();
    let why: Arc<Mutex<Option<Over>>> = Arc::new(Mutex::new(None));
    let watcher = {
        let (manager, id, over, why, interrupt) = (
            manager.clone(),
            id.clone(),
            over.clone(),
            why.clone(),
            interrupt.clone(),
        );
        tokio::spawn(async move {
            let reason = tokio::select! {
                reason = until_over(&manager, &id) => reason,
                () = interrupt.cancelled() => Over::Interrupted,
                () = over.cancelled() => return,
            };
            if let Ok(mut slot) = why.lock() {
                *slot = Some(reason);
            }
            over.cancel();
        })
    };
    let plan = ExecPlan::new(args.command, args.tty);
    let ended = exec::run(&manager, &id, plan, &over).await;
    // The terminal is restored by now.
    over.cancel();
    let _ = watcher.await;
    let reason = why.lock().ok().and_then(|slot| *slot);
    match reason {
        Some(Over::Expired) => note("lease: the lease expired; removing its container"),
        Some(Over::Interrupted) => note("lease: interrupted; removing the container"),
        Some(Over::Ended(status)) => {
            note(&format!("lease: the lease was ended elsewhere ({status})"))
        }
        None => {}
    }
    let removed = remove_now(&manager, &id).await;
    manager.shutdown(std::time::Duration::from_secs(5)).await;
    let removed = removed?;
    note(&format!(
        "lease {} removed; cost {}",
        id.short(12),
        dollars(removed.final_cost.unwrap_or_default())
    ));
    match (ended?, reason) {
        (ExecEnd::Exited(code), _) => Ok(process_code(code)),
        (ExecEnd::Cancelled, Some(Over::Interrupted)) => Ok(ExitCode::from(130)),
        // Like timeout(1): the command was cut off by the lease's end.
        (ExecEnd::Cancelled, _) => Ok(ExitCode::from(124)),
    }
}
