//! Errors: [`PostgresError`] when a store cannot be set up, and the mapping
//! of the driver's and the pool's errors into the core's [`StoreError`]
//! (source kept).

use lease_core::StoreError;
use lease_core::error::BoxError;
use tokio_postgres::error::SqlState;

/// Why [`crate::PostgresStore::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The URL is not a PostgreSQL URL, or does not parse.
    #[error("`{url}` is not a usable PostgreSQL URL: {reason}")]
    Url {
        /// The URL, password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be reached (or refused the login).
    #[error("cannot connect to PostgreSQL at {url}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// The driver's or the pool's reason.
        #[source]
        source: BoxError,
    },
    /// Creating or upgrading the schema failed.
    #[error("cannot migrate the lease schema `{schema}` ({operation})")]
    Migrate {
        /// The PostgreSQL schema.
        schema: String,
        /// What was being done.
        operation: &'static str,
        /// The database's error.
        #[source]
        source: BoxError,
    },
    /// The schema was written by a newer ContainerLease; it was left
    /// untouched.
    #[error(
        "the lease schema `{schema}` has version {found}, newer than this build's {supported}; use a newer ContainerLease"
    )]
    NewerSchema {
        /// The PostgreSQL schema.
        schema: String,
        /// Its version.
        found: i32,
        /// The newest this build knows.
        supported: i32,
    },
}

/// SQLSTATEs that mean "try again later": the server is going away, not
/// there yet, out of connections, or the transaction lost a race.
fn is_transient(state: &SqlState) -> bool {
    let code = state.code();
    code.starts_with("08") // connection exception
        || code.starts_with("57P") // admin/crash shutdown, cannot connect now
        || code.starts_with("53") // insufficient resources (too many connections)
        || *state == SqlState::T_R_SERIALIZATION_FAILURE
        || *state == SqlState::T_R_DEADLOCK_DETECTED
}

/// A driver error as a [`StoreError`]: a lost or refused connection is
/// [`StoreError::Unavailable`] (the HTTP adapter answers 503), anything
/// else [`StoreError::Other`] naming `operation`.
pub(crate) fn store_error(operation: &'static str, error: tokio_postgres::Error) -> StoreError {
    let transient = match error.code() {
        Some(state) => is_transient(state),
        None => error.is_closed() || has_io_source(&error),
    };
    if transient {
        tracing::warn!(operation, error = %lease_core::error::error_chain(&error), "PostgreSQL unavailable");
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Other {
            operation: operation.to_owned(),
            source: Box::new(error),
        }
    }
}

/// Whether an I/O error is among the causes (the socket failed).
fn has_io_source(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A pool error (no connection within the timeout, connecting failed) as
/// [`StoreError::Unavailable`].
pub(crate) fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    tracing::warn!(error = %lease_core::error::error_chain(&error), "PostgreSQL pool: no connection");
    StoreError::Unavailable(Box::new(error))
}

/// Maps a driver result's error with [`store_error`].
pub(crate) trait During<T> {
    /// The result, its error mapped as a failure of `operation`.
    fn during(self, operation: &'static str) -> Result<T, StoreError>;
}

impl<T> During<T> for Result<T, tokio_postgres::Error> {
    fn during(self, operation: &'static str) -> Result<T, StoreError> {
        self.map_err(|error| store_error(operation, error))
    }
}

/// Whether the error is a unique-key violation (an id already taken).
pub(crate) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
