//! How Redis failures map onto the core's [`StoreError`].

use lease_core::StoreError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Failures of this store that are not Redis's own errors.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisStoreError {
    /// A script answered something it never sends.
    #[error("unexpected script reply `{0}`")]
    UnexpectedReply(String),
    /// A decoded record is not the lease its key names.
    #[error("record holds lease {found}, not {expected}")]
    WrongId {
        /// The id in the key.
        expected: String,
        /// The id in the record.
        found: String,
    },
    /// A stored number did not parse.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// A daily statistics field is not `<owner>\x1f<offering>\x1f<name>`.
    #[error("`{0}` is not a daily statistics field")]
    StatsField(String),
    /// The revision cannot grow any more.
    #[error("revision {0} cannot be incremented")]
    RevisionOverflow(u64),
    /// The active leases kept changing while the admission counters were
    /// being started (a replica of the previous version still writing).
    #[error(
        "the active leases changed during each of {0} attempts; stop the replicas of the previous version"
    )]
    KeptMoving(u32),
}

/// Whether `error` means Redis cannot be reached or cannot serve right now
/// (connection refused or dropped, timeout, loading, failover in progress).
pub(crate) fn is_unavailable(error: &RedisError) -> bool {
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
    {
        return true;
    }
    match error.kind() {
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        ),
        ErrorKind::ClusterConnectionNotFound
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel => true,
        // Extension codes the crate does not name: a long-running script.
        _ => error.code() == Some("BUSY"),
    }
}

/// Maps a Redis error met while doing `operation`.
pub(crate) fn map_redis(operation: &str, error: RedisError) -> StoreError {
    if is_unavailable(&error) {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Other {
            operation: operation.to_owned(),
            source: Box::new(error),
        }
    }
}

/// A failure of this store's own logic while doing `operation`.
pub(crate) fn other(operation: &str, error: RedisStoreError) -> StoreError {
    StoreError::Other {
        operation: operation.to_owned(),
        source: Box::new(error),
    }
}

/// A record at `key` that did not decode.
pub(crate) fn corrupt(key: String, source: impl Into<lease_core::BoxError>) -> StoreError {
    StoreError::Corrupt {
        key,
        source: source.into(),
    }
}
