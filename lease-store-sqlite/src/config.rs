//! [`SqliteStoreConfig`]: where the database file lives and how hard it
//! tries to keep what it acknowledged.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long finished leases stay in history by default: 7 days (the same
/// default as every store, [`lease_core::DEFAULT_HISTORY_RETENTION`]).
pub const DEFAULT_HISTORY_RETENTION: Duration = lease_core::DEFAULT_HISTORY_RETENTION;

/// How long a write waits for another process's write to finish before it
/// reports the store unavailable.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections (each on its own thread) used unless configured.
pub const DEFAULT_READERS: usize = 2;

/// When SQLite waits for the disk (`PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is on the disk before it is acknowledged: survives a
    /// process crash and a power loss. The default.
    #[default]
    Full,
    /// Commits are on the disk at the next checkpoint: survives a process
    /// crash, may lose the last commits on power loss. Faster writes.
    Normal,
}

impl Synchronous {
    /// The value for `PRAGMA synchronous`.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Settings of a [`crate::SqliteStore`].
///
/// ```
/// use std::time::Duration;
/// use lease_store_sqlite::{SqliteStoreConfig, Synchronous};
///
/// let config = SqliteStoreConfig::new("/var/lib/containerlease/leases.db")
///     .synchronous(Synchronous::Normal)
///     .history_retention(Duration::from_secs(24 * 3600));
/// assert_eq!(config.path().to_str(), Some("/var/lib/containerlease/leases.db"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteStoreConfig {
    pub(crate) path: PathBuf,
    pub(crate) synchronous: Synchronous,
    pub(crate) busy_timeout: Duration,
    pub(crate) history_retention: Duration,
    pub(crate) readers: usize,
    pub(crate) integrity_check: bool,
    pub(crate) namespace: Option<String>,
}

impl SqliteStoreConfig {
    /// The database at `path` (created, with its directory, if missing),
    /// `synchronous=FULL`, [`DEFAULT_HISTORY_RETENTION`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteStoreConfig {
            path: path.into(),
            synchronous: Synchronous::Full,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            history_retention: DEFAULT_HISTORY_RETENTION,
            readers: DEFAULT_READERS,
            integrity_check: true,
            namespace: None,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When commits reach the disk (default [`Synchronous::Full`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a write waits for another process's (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long a finished lease stays in history, counted back from the
    /// system clock (usage totals are kept forever).
    pub fn history_retention(mut self, retention: Duration) -> Self {
        self.history_retention = retention;
        self
    }

    /// Read connections on their own threads (default 2); 0 runs reads on
    /// the writer's thread.
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// The deployment namespace whose leases the file holds. The first store
    /// that opens a file with a namespace writes it into the file; opening
    /// it later for another namespace is refused
    /// ([`crate::OpenError::OtherNamespace`]): two namespaces' reapers would
    /// end each other's leases. Without one (the default), no check.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Whether opening runs `PRAGMA quick_check` over an existing file, so a
    /// corrupt database is refused at start-up rather than half-way through
    /// a request (default on; it reads the whole file once).
    pub fn integrity_check(mut self, check: bool) -> Self {
        self.integrity_check = check;
        self
    }
}
