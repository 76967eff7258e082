//! The background reaper of a SQLite store, for people who run only the
//! `lease` command (no lease-server): whenever a command leaves a live lease
//! in a SQLite file, a detached copy of this program (`lease reap
//! --until-idle`, hidden) reaps that file and namespace until no active lease
//! is left, then exits. One per file and namespace ([`crate::watch_lock`]).
//!
//! Redis is left to the lease-server that shares it; the memory store's
//! leases live in their own command, which holds them in the foreground.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use lease_core::{LeaseManager, ListQuery};
use lease_store_sqlite::SqliteStoreConfig;
use tokio_util::sync::CancellationToken;

use crate::commands::interrupt_token;
use crate::context::{Context, Docker, StoreSpec};
use crate::error::CliError;
use crate::output::note;
use crate::watch_lock::{WatchLock, lock_path};

/// The watcher's reaper sweeps at least this often. Leases created by other
/// processes do not wake it, so this bounds how late their containers go
/// (one indexed query per sweep).
pub const SWEEP: Duration = Duration::from_secs(2);
/// How often the watcher looks whether any active lease is left.
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// Consecutive failed looks (the store unreadable) after which it gives up.
const MAX_FAILED_CHECKS: u32 = 150;

/// Whether a background reaper watches the store after this command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watching {
    /// Not a SQLite store: nothing was started.
    NotNeeded,
    /// One was started, or one was already running.
    Yes,
    /// Starting one failed (said on stderr).
    Failed,
}

/// Makes sure a background reaper watches the SQLite store of `context`
/// (after a lease was stored in it): starts one unless one holds the lock.
/// A failure is reported on stderr and does not fail the command.
pub fn ensure(context: &Context) -> Watching {
    let StoreSpec::Sqlite(config) = &context.store else {
        return Watching::NotNeeded;
    };
    match start_unless_running(context, config) {
        Ok(()) => Watching::Yes,
        Err(error) => {
            note(&format!(
                "lease: cannot start the background reaper: {}; run `lease reap --watch` \
                 (or a lease-server on this file) to remove expired containers",
                lease_core::error::error_chain(&error)
            ));
            Watching::Failed
        }
    }
}

fn start_unless_running(context: &Context, config: &SqliteStoreConfig) -> Result<(), CliError> {
    let db = database_path(config)?;
    let lock = lock_path(&db, &context.args.namespace);
    if WatchLock::is_held(&lock)? {
        tracing::debug!(lock = %lock.display(), "a background reaper is already watching");
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| CliError::io("cannot find this program", e))?;
    let mut command = Command::new(exe);
    command.args(["reap", "--until-idle"]);
    // Only what reaping needs; the rest of the caller's settings (quotas,
    // catalog) does not matter to it and must not make it fail.
    command
        .env("LEASE_STORE", child_store_url(&context.args.store, &db))
        .env("LEASE_NAMESPACE", &context.args.namespace)
        .env("LEASE_OUTPUT", "json")
        .env_remove("LEASE_CATALOG")
        .env_remove("LEASE_MAX_MINUTES")
        .env_remove("LEASE_MAX_LEASES_PER_OWNER")
        .env_remove("LEASE_MAX_DAILY_SPEND")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    {
        // Its own process group: Ctrl-C in this terminal does not stop it.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let child = command
        .spawn()
        .map_err(|e| CliError::io("cannot start the background reaper", e))?;
    tracing::info!(pid = child.id(), lock = %lock.display(), "background reaper started");
    Ok(())
}

/// The database file as an absolute path without symbolic links (it exists:
/// the store was opened), so every spelling of it finds the same lock.
fn database_path(config: &SqliteStoreConfig) -> Result<PathBuf, CliError> {
    std::fs::canonicalize(config.path()).map_err(|e| {
        CliError::io(
            format!("cannot resolve the database {}", config.path().display()),
            e,
        )
    })
}

/// The store URL for a child process: the absolute `db`, with the query
/// (e.g. `?synchronous=normal`) of the URL the user gave.
pub fn child_store_url(given: &str, db: &std::path::Path) -> String {
    let url = lease_store_sqlite::url_for(db);
    match given.trim().split_once('?') {
        Some((_, query)) if !query.is_empty() => format!("{url}?{query}"),
        _ => url,
    }
}

/// `lease reap --until-idle`: the background reaper itself. Exits at once
/// if another one holds the lock; otherwise reaps until no active lease is
/// left (or SIGTERM), then — after letting go of the lock — looks once more,
/// so a lease stored meanwhile (whose command saw the lock still held and
/// started no watcher) is not left unwatched.
pub async fn run_until_idle(context: &Context) -> Result<ExitCode, CliError> {
    let StoreSpec::Sqlite(config) = &context.store else {
        return Err(CliError::Usage(
            "`lease reap --until-idle` is for SQLite stores".to_owned(),
        ));
    };
    let lock = lock_path(&database_path(config)?, &context.args.namespace);
    let interrupt = interrupt_token();
    let mut manager: Option<LeaseManager> = None;
    loop {
        let Some(held) = WatchLock::try_acquire(&lock)? else {
            tracing::info!(lock = %lock.display(), "another background reaper is watching");
            break;
        };
        let current = match &manager {
            Some(manager) => manager.clone(),
            None => {
                let built = context
                    .manager_with(Docker::Needed, watcher_config(context))
                    .await?;
                manager = Some(built.clone());
                built
            }
        };
        tracing::info!(lock = %lock.display(), "background reaper watching");
        reap_until_idle(&current, &interrupt).await;
        drop(held);
        if interrupt.is_cancelled() || !has_active_lease(&current).await? {
            break;
        }
        tracing::info!("a lease arrived as the reaper was leaving: watching again");
    }
    if let Some(manager) = manager {
        manager.shutdown(Duration::from_secs(5)).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The engine settings of the watcher: the flags', with a short sweep.
fn watcher_config(context: &Context) -> lease_core::ManagerConfig {
    lease_core::ManagerConfig {
        sweep_interval: SWEEP,
        ..context.config()
    }
}

/// Runs the reaper until the store has no active lease (or `interrupt`).
async fn reap_until_idle(manager: &LeaseManager, interrupt: &CancellationToken) {
    let stop = interrupt.child_token();
    let reaper = {
        let manager = manager.clone();
        let stop = stop.clone();
        tokio::spawn(async move { manager.run_reaper(stop).await })
    };
    let mut failed_checks = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(IDLE_CHECK) => {}
            () = interrupt.cancelled() => break,
        }
        match has_active_lease(manager).await {
            Ok(true) => failed_checks = 0,
            Ok(false) => break,
            Err(error) => {
                failed_checks += 1;
                tracing::warn!(
                    failed_checks,
                    error = %lease_core::error::error_chain(&error),
                    "cannot read the store"
                );
                if failed_checks >= MAX_FAILED_CHECKS {
                    break;
                }
            }
        }
    }
    stop.cancel();
    let _ = reaper.await;
}

/// Whether any lease of the store is still active (not yet in history):
/// live, ending, failed or exited — all are reaped at their due time.
async fn has_active_lease(manager: &LeaseManager) -> Result<bool, CliError> {
    let query = ListQuery {
        limit: 1,
        ..ListQuery::default()
    };
    Ok(!manager.list(&query).await?.items.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_gets_an_absolute_url_with_the_given_query() {
        let db = std::path::Path::new("/state/leases.db");
        assert_eq!(
            child_store_url("sqlite://leases.db", db),
            "sqlite:///state/leases.db"
        );
        assert_eq!(
            child_store_url(" sqlite:leases.db?synchronous=normal ", db),
            "sqlite:///state/leases.db?synchronous=normal"
        );
    }
}
