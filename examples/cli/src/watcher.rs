//! The background reaper of a SQLite store, for people who run only the
//! `lease` command (no lease-server): whenever a command leaves a live lease
//! in a SQLite file, a detached copy of this program (`lease reap
//! --until-idle`, hidden) reaps that file and namespace until no active lease
//! is left, then exits. One per file and namespace ([`crate::watch_lock`]).
//!
//! Redis is left to the lease-server that shares it; the memory store's
//! leases live in their own command, which holds them in the foreground.

use std::path::{Path, PathBuf};
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
        .env("LEASE_STORE", child_store_url(&context.store_url, &db))
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
pub fn child_store_url(given: &str, db: &Path) -> String {
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
    let mut watch = EngineWatch {
        context,
        manager: None,
        interrupt: interrupt_token(),
    };
    let rounds = watch_while_busy(&lock, &mut watch).await;
    if let Some(manager) = watch.manager {
        manager.shutdown(Duration::from_secs(5)).await;
    }
    let rounds = rounds?;
    tracing::info!(rounds, "background reaper done");
    Ok(ExitCode::SUCCESS)
}

/// What the watcher does while it holds the lock, and the look it takes
/// after letting go.
trait Watch {
    /// Reaps until the store has no active lease (or a stop is asked for).
    async fn reap_until_idle(&mut self) -> Result<(), CliError>;
    /// Whether the store has an active lease now.
    async fn has_active_lease(&mut self) -> Result<bool, CliError>;
    /// Whether a stop was asked for (SIGTERM).
    fn stopped(&self) -> bool;
}

/// Takes the lock at `lock` and watches until idle; after letting go, looks
/// once more and, if a lease arrived meanwhile, takes the lock again (unless
/// a newer watcher has it) and goes on. The number of rounds watched (0: the
/// lock was held by another watcher).
async fn watch_while_busy(lock: &Path, watch: &mut impl Watch) -> Result<u32, CliError> {
    let mut rounds = 0;
    loop {
        let Some(held) = WatchLock::try_acquire(lock)? else {
            tracing::info!(lock = %lock.display(), "another background reaper is watching");
            return Ok(rounds);
        };
        rounds += 1;
        tracing::info!(lock = %lock.display(), rounds, "background reaper watching");
        let watched = watch.reap_until_idle().await;
        drop(held);
        watched?;
        if watch.stopped() || !watch.has_active_lease().await? {
            return Ok(rounds);
        }
        tracing::info!("a lease arrived as the reaper was leaving: watching again");
    }
}

/// The real watcher: the engine's reaper over the store and Docker, built
/// on first use.
struct EngineWatch<'a> {
    context: &'a Context,
    manager: Option<LeaseManager>,
    interrupt: CancellationToken,
}

impl EngineWatch<'_> {
    async fn manager(&mut self) -> Result<LeaseManager, CliError> {
        if let Some(manager) = &self.manager {
            return Ok(manager.clone());
        }
        let built = self
            .context
            .manager_with(Docker::Needed, watcher_config(self.context))
            .await?;
        self.manager = Some(built.clone());
        Ok(built)
    }
}

impl Watch for EngineWatch<'_> {
    async fn reap_until_idle(&mut self) -> Result<(), CliError> {
        let manager = self.manager().await?;
        reap_until_idle(&manager, &self.interrupt).await;
        Ok(())
    }

    async fn has_active_lease(&mut self) -> Result<bool, CliError> {
        let manager = self.manager().await?;
        has_active_lease(&manager).await
    }

    fn stopped(&self) -> bool {
        self.interrupt.is_cancelled()
    }
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
    use std::collections::VecDeque;

    use super::*;

    /// A watcher whose store answers from a script, and which can let a
    /// newer watcher take the lock while it is away.
    struct Scripted {
        lock: PathBuf,
        /// Answers of `has_active_lease`, in order.
        active: VecDeque<bool>,
        /// Take the lock (as a newer watcher would) at the look after letting go.
        rival_takes_over: bool,
        rival: Option<WatchLock>,
        rounds_seen: u32,
    }

    impl Scripted {
        fn new(name: &str, active: &[bool]) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "lease-cli-watcher-{name}-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Scripted {
                lock: lock_path(&dir.join("leases.db"), "default"),
                active: active.iter().copied().collect(),
                rival_takes_over: false,
                rival: None,
                rounds_seen: 0,
            }
        }
    }

    impl Drop for Scripted {
        fn drop(&mut self) {
            if let Some(dir) = self.lock.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    impl Watch for Scripted {
        async fn reap_until_idle(&mut self) -> Result<(), CliError> {
            assert!(
                WatchLock::is_held(&self.lock).expect("probe"),
                "reaps under the lock"
            );
            self.rounds_seen += 1;
            Ok(())
        }

        async fn has_active_lease(&mut self) -> Result<bool, CliError> {
            assert!(!WatchLock::is_held(&self.lock).expect("probe") || self.rival.is_some());
            if self.rival_takes_over && self.rival.is_none() {
                self.rival = WatchLock::try_acquire(&self.lock).expect("lock");
            }
            Ok(self
                .active
                .pop_front()
                .expect("an answer left in the script"))
        }

        fn stopped(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn exits_at_once_when_another_watcher_holds_the_lock() {
        let mut watch = Scripted::new("held", &[]);
        let other = WatchLock::try_acquire(&watch.lock)
            .expect("lock")
            .expect("free");
        assert_eq!(
            watch_while_busy(&watch.lock.clone(), &mut watch).await.ok(),
            Some(0)
        );
        assert_eq!(watch.rounds_seen, 0);
        drop(other);
    }

    #[tokio::test]
    async fn exits_when_idle_and_nothing_arrived() {
        let mut watch = Scripted::new("idle", &[false]);
        assert_eq!(
            watch_while_busy(&watch.lock.clone(), &mut watch).await.ok(),
            Some(1)
        );
        assert!(!WatchLock::is_held(&watch.lock).expect("probe"));
    }

    #[tokio::test]
    async fn watches_again_when_a_lease_arrived_as_it_was_leaving() {
        let mut watch = Scripted::new("arrived", &[true, false]);
        assert_eq!(
            watch_while_busy(&watch.lock.clone(), &mut watch).await.ok(),
            Some(2)
        );
        assert_eq!(watch.rounds_seen, 2);
        assert!(!WatchLock::is_held(&watch.lock).expect("probe"));
    }

    #[tokio::test]
    async fn leaves_the_lease_to_a_newer_watcher_that_took_the_lock() {
        let mut watch = Scripted::new("rival", &[true]);
        watch.rival_takes_over = true;
        assert_eq!(
            watch_while_busy(&watch.lock.clone(), &mut watch).await.ok(),
            Some(1)
        );
        assert!(watch.rival.is_some(), "the newer watcher holds the lock");
    }

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
