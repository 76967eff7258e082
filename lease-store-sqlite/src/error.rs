//! Errors: [`OpenError`] when a database cannot be opened, and the mapping
//! of SQLite's errors into the core's [`StoreError`] (source kept).

use std::path::PathBuf;

use lease_core::StoreError;
use lease_core::error::BoxError;
use rusqlite::ErrorCode;

/// Why a database file could not be opened. Whenever the file exists but is
/// refused, it has not been written to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory for the file could not be created.
    #[error("cannot create the directory {path}")]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be opened or created (missing permission, a
    /// read-only file system, a directory in the way, …).
    #[error("cannot open or create the lease database {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's or the system's reason.
        #[source]
        source: BoxError,
    },
    /// The file is not a ContainerLease database (another program's file or
    /// SQLite database); it was left untouched.
    #[error("{path} is not a ContainerLease lease database ({reason}); refusing to use it")]
    NotALeaseDatabase {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The file is a lease database but damaged (truncated or failing
    /// SQLite's integrity check); it was left untouched. Restore a backup.
    #[error("the lease database {path} is damaged ({reason}); refusing to use it")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by a newer ContainerLease with a schema this
    /// one does not know; it was left untouched.
    #[error(
        "the lease database {path} has schema version {found}, newer than this build's {supported}; use a newer ContainerLease"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The file's schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The file holds another namespace's leases (see
    /// [`crate::SqliteStoreConfig::namespace`]); it was left untouched.
    #[error(
        "the lease database {path} holds the leases of namespace `{found}`, not `{wanted}`; give each namespace its own file (--store sqlite:///…/leases-{wanted}.db)"
    )]
    OtherNamespace {
        /// The file.
        path: PathBuf,
        /// The namespace written in the file.
        found: String,
        /// The namespace asked for.
        wanted: String,
    },
    /// Setting up the connection or the schema failed.
    #[error("cannot prepare the lease database {path} ({operation})")]
    Setup {
        /// The file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// SQLite's reason.
        #[source]
        source: BoxError,
    },
    /// A thread for the database could not be started.
    #[error("cannot start the lease database's threads")]
    Thread(#[source] std::io::Error),
}

impl From<OpenError> for StoreError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Corrupt { ref path, .. } | OpenError::NotALeaseDatabase { ref path, .. } => {
                StoreError::Corrupt {
                    key: path.display().to_string(),
                    source: Box::new(error),
                }
            }
            other => StoreError::Unavailable(Box::new(other)),
        }
    }
}

/// Whether SQLite's error means "the storage cannot take this now" (disk
/// full, read-only, I/O error, locked past the busy timeout): the request
/// fails as unavailable and a later one may succeed.
fn is_unavailable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed
    )
}

/// SQLite's error during `operation` as the core's [`StoreError`].
pub(crate) fn store_error(operation: &'static str, error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _) if is_unavailable(failure.code) => {
            StoreError::Unavailable(Box::new(error))
        }
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.code,
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase
            ) =>
        {
            StoreError::Corrupt {
                key: format!("the database file (during {operation})"),
                source: Box::new(error),
            }
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt {
            key: format!("a lease row (during {operation})"),
            source: Box::new(error),
        },
        _ => StoreError::Other {
            operation: operation.to_owned(),
            source: Box::new(error),
        },
    }
}

/// One SQLite error shared by every write of a batch it failed.
#[derive(Debug)]
struct BatchFailed(std::sync::Arc<rusqlite::Error>);

impl std::fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the write transaction failed")
    }
}

impl std::error::Error for BatchFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A shared SQLite error during `operation` as the core's [`StoreError`],
/// classified as [`store_error`] does.
pub(crate) fn shared_store_error(
    operation: &'static str,
    error: std::sync::Arc<rusqlite::Error>,
) -> StoreError {
    let unavailable = matches!(
        &*error,
        rusqlite::Error::SqliteFailure(failure, _)
            if is_unavailable(failure.code) || failure.code == ErrorCode::OperationAborted
    );
    let source = Box::new(BatchFailed(error));
    if unavailable {
        StoreError::Unavailable(source)
    } else {
        StoreError::Other {
            operation: operation.to_owned(),
            source,
        }
    }
}

/// Names the operation of a failed SQLite call.
pub(crate) trait During<T> {
    /// The error as a [`StoreError`] of `operation`.
    fn during(self, operation: &'static str) -> Result<T, StoreError>;
}

impl<T> During<T> for rusqlite::Result<T> {
    fn during(self, operation: &'static str) -> Result<T, StoreError> {
        self.map_err(|error| store_error(operation, error))
    }
}

/// The store's threads are gone (the store is being dropped, or one panicked).
pub(crate) fn worker_gone() -> StoreError {
    StoreError::Unavailable("the SQLite store's thread has stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn storage_trouble_is_unavailable() {
        for code in [
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_CANTOPEN,
        ] {
            let error = store_error("insert", failure(code));
            assert!(
                matches!(error, StoreError::Unavailable(_)),
                "{code}: {error:?}"
            );
            assert!(std::error::Error::source(&error).is_some(), "source kept");
        }
    }

    #[test]
    fn damage_is_corrupt_and_the_rest_other() {
        let error = store_error("get", failure(rusqlite::ffi::SQLITE_CORRUPT));
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        let error = store_error("get", failure(rusqlite::ffi::SQLITE_NOTADB));
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        let error = store_error("update", failure(rusqlite::ffi::SQLITE_MISMATCH));
        match error {
            StoreError::Other { operation, .. } => assert_eq!(operation, "update"),
            other => panic!("{other:?}"),
        }
    }
}
