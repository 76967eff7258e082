//! [`SqliteStore`]: the [`LeaseStore`] port on one SQLite file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use lease_core::pool::Taken;
use lease_core::stats::StatsRow;
use lease_core::store::{HistoryQuery, LeaseStore, ListQuery, Page, UsageTotals};
use lease_core::{Admission, Lease, LeaseId, PoolSlot, SlotState, StoreError};
use rusqlite::{Connection, OpenFlags};
use tracing::info;

use crate::codec::saturating_nanos;
use crate::config::SqliteStoreConfig;
use crate::error::{During, OpenError};
use crate::schema::{self, Found};
use crate::worker::Worker;
use crate::writer::Writer;
use crate::{active, history, pool};

/// Prepared statements kept per connection (the list and history queries
/// vary with their filters).
const STATEMENT_CACHE: usize = 64;

/// A [`LeaseStore`] on one SQLite file: durable, and shared by the
/// processes of one host that open the same file.
///
/// - **Durability**: WAL journal, `synchronous=FULL` unless
///   [`crate::Synchronous::Normal`] is chosen; an acknowledged write has
///   been committed. Writes run in `BEGIN IMMEDIATE` transactions, so a
///   crash leaves each write either whole or absent.
/// - **Several processes**: SQLite's write lock makes each write (claim,
///   compare-and-set, finish) atomic across processes; a writer waits up
///   to the busy timeout for another's.
/// - **Threads**: one writer thread owns the write connection, fed by a
///   channel, and commits the writes waiting in its queue together (each
///   in its own savepoint, each answered after the commit); reads run on a
///   small pool of read connections (WAL lets them run beside the writer),
///   or on the writer with `readers(0)`. No SQLite call runs on a tokio
///   worker thread.
/// - **Faults**: a full disk, a read-only file or an I/O error fails the
///   request with [`StoreError::Unavailable`], rolls the transaction back
///   and leaves the store usable once the cause is gone.
///
/// `claim_expired` uses the caller's `now`; history retention uses the
/// system clock (a finished lease that ended more than the retention ago is
/// gone, for `get` and `history` alike).
pub struct SqliteStore {
    pub(crate) writer: Writer,
    /// `None`: reads run on the writer.
    readers: Option<Worker>,
    path: PathBuf,
    /// History retention in nanoseconds (saturating).
    retention: i64,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Opens a connection with the store's settings.
fn connect(config: &SqliteStoreConfig, flags: OpenFlags) -> Result<Connection, OpenError> {
    let path = config.path();
    let connection =
        Connection::open_with_flags(path, flags).map_err(|source| OpenError::Open {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
    connection
        .busy_timeout(config.busy_timeout)
        .map_err(|source| setup(path, "set the busy timeout", source))?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

fn setup(path: &Path, operation: &'static str, source: rusqlite::Error) -> OpenError {
    OpenError::Setup {
        path: path.to_owned(),
        operation,
        source: Box::new(source),
    }
}

/// Creates the file's directory if it is missing.
fn create_directory(path: &Path) -> Result<(), OpenError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| OpenError::CreateDirectory {
                path: parent.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Switches the file to the WAL journal and returns the mode SQLite kept.
/// A switch racing another process's first writes to a new file gets
/// `SQLITE_BUSY` at once (SQLite does not run its busy handler there), so
/// it is tried again, every 20 ms, for up to `patience`.
fn switch_to_wal(
    writer: &Connection,
    path: &Path,
    patience: Duration,
) -> Result<String, OpenError> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match writer.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        }) {
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => {
                return result.map_err(|source| setup(path, "switch to the WAL journal", source));
            }
        }
    }
}

/// Opens (and if needed creates and migrates) the database; blocking.
fn open_blocking(config: &SqliteStoreConfig) -> Result<SqliteStore, OpenError> {
    let path = config.path();
    create_directory(path)?;
    // Before SQLite touches the file: it would take a damaged header for an
    // empty database and write a new one over it.
    let found = schema::inspect_file(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut writer = connect(config, flags)?;
    if found == Found::Database {
        schema::verify(&writer, path, config.integrity_check)?;
        if let Some(namespace) = &config.namespace {
            // A file of the current schema can be checked before any write.
            if schema::current(&writer, path)? {
                schema::check_namespace(&writer, path, namespace)?;
            }
        }
    }
    // Only now write anything: the journal mode is kept in the file.
    let mode = switch_to_wal(&writer, path, config.busy_timeout)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Setup {
            path: path.to_owned(),
            operation: "switch to the WAL journal",
            source: format!("SQLite kept journal mode `{mode}`").into(),
        });
    }
    writer
        .execute_batch(&format!(
            "PRAGMA synchronous = {};",
            config.synchronous.pragma()
        ))
        .map_err(|source| setup(path, "set synchronous", source))?;
    schema::migrate(&mut writer, path)?;
    if let Some(namespace) = &config.namespace {
        schema::stamp_namespace(&mut writer, path, namespace)?;
    }

    let mut readers = Vec::with_capacity(config.readers);
    for _ in 0..config.readers {
        let reader = connect(
            config,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader
            .execute_batch("PRAGMA query_only = ON;")
            .map_err(|source| setup(path, "make a read connection", source))?;
        readers.push(reader);
    }
    let writer = Writer::spawn(writer).map_err(OpenError::Thread)?;
    let readers = if readers.is_empty() {
        None
    } else {
        Some(Worker::spawn("lease-sqlite-reader", readers).map_err(OpenError::Thread)?)
    };
    info!(
        path = %path.display(),
        synchronous = config.synchronous.pragma(),
        readers = config.readers,
        "lease store: SQLite"
    );
    Ok(SqliteStore {
        writer,
        readers,
        path: path.to_owned(),
        retention: i64::try_from(config.history_retention.as_nanos()).unwrap_or(i64::MAX),
    })
}

impl SqliteStore {
    /// Opens the database `config` names: creates the file (and its
    /// directory) if missing, migrates an older schema, and refuses, without
    /// writing to it, a file that is not a lease database, is damaged, or
    /// has a newer schema.
    pub async fn open(config: SqliteStoreConfig) -> Result<SqliteStore, OpenError> {
        match tokio::task::spawn_blocking(move || open_blocking(&config)).await {
            Ok(result) => result,
            Err(join) => Err(OpenError::Thread(std::io::Error::other(join))),
        }
    }

    /// [`SqliteStore::open`] with the defaults for `path`.
    pub async fn open_path(path: impl Into<PathBuf>) -> Result<SqliteStore, OpenError> {
        SqliteStore::open(SqliteStoreConfig::new(path)).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cutoff of history retention now, in nanoseconds.
    fn cutoff(&self) -> i64 {
        saturating_nanos(Utc::now()).saturating_sub(self.retention)
    }

    /// Runs a read on the read pool, or on the writer without one.
    pub(crate) async fn read<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.readers {
            Some(readers) => readers.run(move |connection| job(connection)).await,
            None => self.writer.read(move |connection| job(connection)).await,
        }
    }
}

/// The moment a claim made at `now` for `ttl` ends, in nanoseconds (saturating).
fn claim_end(now: DateTime<Utc>, ttl: Duration) -> i64 {
    let ttl = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
    saturating_nanos(now).saturating_add(ttl)
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.writer
            .read(|connection| {
                connection
                    .query_row("SELECT count(*) FROM usage LIMIT 1", [], |row| {
                        row.get::<_, i64>(0)
                    })
                    .during("ping")
                    .map(drop)
            })
            .await
    }

    async fn insert(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        let (lease, admission) = (lease.clone(), admission.clone());
        self.writer
            .write(move |connection| active::insert(connection, &lease, &admission))
            .await
    }

    async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError> {
        let (id, cutoff) = (id.clone(), self.cutoff());
        self.read(move |connection| active::get(connection, &id, cutoff))
            .await
    }

    async fn update(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        let (lease, admission) = (lease.clone(), admission.clone());
        self.writer
            .write(move |connection| active::update(connection, &lease, &admission))
            .await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
        let query = query.clone();
        self.read(move |connection| active::list(connection, &query))
            .await
    }

    async fn claim_expired(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        claim_ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let (now, end) = (saturating_nanos(now), claim_end(now, claim_ttl));
        self.writer
            .write(move |connection| active::claim(connection, now, limit, end))
            .await
    }

    async fn release(&self, id: &LeaseId, retry_at: DateTime<Utc>) -> Result<(), StoreError> {
        let (id, retry_at) = (id.clone(), saturating_nanos(retry_at));
        self.writer
            .write(move |connection| active::release(connection, &id, retry_at))
            .await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(active::next_due).await
    }

    async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let (lease, cutoff) = (lease.clone(), self.cutoff());
        self.writer
            .write(move |connection| history::finish(connection, &lease, cutoff))
            .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError> {
        let (query, cutoff) = (query.clone(), self.cutoff());
        self.read(move |connection| history::history(connection, &query, cutoff))
            .await
    }

    async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError> {
        let owner = owner.to_owned();
        self.read(move |connection| history::usage(connection, &owner))
            .await
    }

    async fn daily_stats(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError> {
        lease_core::stats::check_range(from, to)?;
        self.read(move |connection| history::daily_stats(connection, from, to))
            .await
    }

    async fn share_stats(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError> {
        lease_core::stats::check_range(from, to)?;
        self.read(move |connection| history::share_stats(connection, from, to))
            .await
    }

    async fn pool_add(&self, slot: &PoolSlot, target: usize) -> Result<bool, StoreError> {
        let slot = slot.clone();
        self.writer
            .write(move |connection| pool::add(connection, &slot, target))
            .await
    }

    async fn pool_ready(&self, slot_id: &str, container_id: &str) -> Result<bool, StoreError> {
        let (slot_id, container_id) = (slot_id.to_owned(), container_id.to_owned());
        self.writer
            .write(move |connection| pool::ready(connection, &slot_id, &container_id))
            .await
    }

    async fn pool_take(
        &self,
        offering: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<Taken>, StoreError> {
        let (offering, lease) = (offering.to_owned(), lease.clone());
        self.writer
            .write(move |connection| pool::take(connection, &offering, &lease, now))
            .await
    }

    async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        self.read(pool::slots).await
    }

    async fn pool_drop(&self, slot_id: &str, state: SlotState) -> Result<bool, StoreError> {
        let slot_id = slot_id.to_owned();
        self.writer
            .write(move |connection| pool::drop_slot(connection, &slot_id, state))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_end_saturates() {
        let now = Utc::now();
        assert_eq!(
            claim_end(now, Duration::from_millis(1500)),
            saturating_nanos(now + chrono::Duration::milliseconds(1500))
        );
        assert_eq!(claim_end(now, Duration::MAX), i64::MAX);
    }
}
