//! Errors of the ports and of the engine.
//!
//! Backends keep their own private error types and map them into
//! [`RuntimeError`] / [`StoreError`], keeping the source.

use crate::catalog::CatalogError;
use crate::id::{InvalidLeaseId, LeaseId};
use crate::lease::InvalidTransition;

/// A boxed foreign error kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong talking to the container runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The runtime cannot be reached.
    #[error("container runtime unavailable at {endpoint}")]
    Unavailable {
        /// Where it tried to connect.
        endpoint: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// The image is not there and could not be pulled.
    #[error("image {image} is not available")]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// The engine's reason.
        #[source]
        source: BoxError,
    },
    /// The container does not exist.
    #[error("container {container} not found")]
    NotFound {
        /// Id or name asked for.
        container: String,
    },
    /// The container exists but is not in this deployment's namespace; it was not touched.
    #[error("container {container} is not managed by namespace {namespace}")]
    NotManaged {
        /// Id or name asked for.
        container: String,
        /// Our namespace.
        namespace: String,
    },
    /// A path inside a container does not exist (copying files).
    #[error("{path} does not exist in the container")]
    PathNotFound {
        /// The path asked for.
        path: String,
    },
    /// A path inside a container cannot be read or written as asked
    /// (read-only filesystem, permissions, not a directory).
    #[error("{path}: {reason}")]
    PathNotAllowed {
        /// The path asked for.
        path: String,
        /// Why, in words.
        reason: String,
    },
    /// A created unit did not come to run: the runtime gave up on it (its
    /// reason, e.g. `no suitable node …`), it stopped, or it was still
    /// pending at the placement deadline.
    #[error("container {container} was not placed: {reason}")]
    Placement {
        /// Id or name of the unit.
        container: String,
        /// The runtime's reason, or what the engine saw.
        reason: String,
    },
    /// The request is invalid for the runtime (bad spec, bad exec request).
    #[error("invalid runtime request: {0}")]
    Invalid(String),
    /// Any other failure of an operation.
    #[error("container runtime failed to {operation}")]
    Operation {
        /// What was being done (`create container`, `remove container`, …).
        operation: String,
        /// The runtime's error.
        #[source]
        source: BoxError,
    },
}

impl RuntimeError {
    /// A failure of `operation` with its source.
    pub fn operation(operation: impl Into<String>, source: impl Into<BoxError>) -> Self {
        RuntimeError::Operation {
            operation: operation.into(),
            source: source.into(),
        }
    }

    /// The whole chain of messages, for storing on a lease.
    pub fn chain(&self) -> String {
        error_chain(self)
    }
}

/// What went wrong talking to the lease store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No active (or, for `get`, finished) lease has this id.
    #[error("lease {0} not found")]
    NotFound(LeaseId),
    /// A lease with this id already exists.
    #[error("lease {0} already exists")]
    AlreadyExists(LeaseId),
    /// The lease's revision moved since it was read.
    #[error("lease {id} changed concurrently (expected revision {expected})")]
    Conflict {
        /// The lease.
        id: LeaseId,
        /// The revision the caller read.
        expected: u64,
    },
    /// An [`Admission`](crate::Admission) limit refused the write; nothing
    /// was stored.
    #[error("limit {limit} reached: {message}")]
    LimitReached {
        /// The limit that refused.
        limit: crate::admission::Limit,
        /// The owner (for per-owner limits), what is in use and the limit.
        message: String,
    },
    /// A page cursor that this store did not hand out (the caller's mistake).
    #[error("`{0}` is not a valid page cursor")]
    InvalidCursor(String),
    /// A range of days that [`LeaseStore::daily_stats`](crate::LeaseStore::daily_stats)
    /// refuses (the caller's mistake): `from` after `to`, or more than
    /// [`MAX_DAYS`](crate::stats::MAX_DAYS) days.
    #[error(transparent)]
    InvalidRange(#[from] crate::stats::DayRangeError),
    /// The store cannot be reached.
    #[error("lease store unavailable")]
    Unavailable(#[source] BoxError),
    /// A stored record could not be decoded.
    #[error("corrupt record at {key}")]
    Corrupt {
        /// Where the record lives.
        key: String,
        /// Why it did not decode.
        #[source]
        source: BoxError,
    },
    /// The store does not implement this (optional) part of the port,
    /// such as warm pools.
    #[error("this lease store cannot {operation}")]
    Unsupported {
        /// What was asked for.
        operation: &'static str,
    },
    /// Any other store failure.
    #[error("lease store failed to {operation}")]
    Other {
        /// What was being done.
        operation: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
}

/// An invalid field in a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct ValidationError {
    /// The request field (`imageType`, `durationMinutes`, `minutes`, `owner`, `id`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// An error about `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        ValidationError {
            field,
            message: message.into(),
        }
    }
}

/// What the engine ([`crate::LeaseManager`]) reports to its callers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The request is invalid; nothing was changed.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No such lease (or not the caller's).
    #[error("lease {0} not found")]
    NotFound(LeaseId),
    /// The lease cannot do that in its current state (e.g. extend an ended lease).
    #[error("lease {id} is {status}: {message}")]
    WrongState {
        /// The lease.
        id: LeaseId,
        /// Its status.
        status: crate::Status,
        /// Why the request was refused.
        message: String,
    },
    /// An owner's quota would be exceeded; nothing was changed.
    #[error("quota {limit} exceeded: {message}")]
    QuotaExceeded {
        /// The limit's name (`max_leases_per_owner`, `max_daily_spend`;
        /// see [`Limit::as_str`](crate::Limit::as_str)).
        limit: &'static str,
        /// The limit and the current figure.
        message: String,
    },
    /// The host has no room for the lease (all owners' leases together
    /// reach a capacity limit); nothing was changed. Retrying later may
    /// succeed.
    #[error("capacity {limit} exhausted: {message}")]
    CapacityExhausted {
        /// The limit's name (`max_leases`, `max_cpus`, `max_memory`; see
        /// [`Limit::as_str`](crate::Limit::as_str)).
        limit: &'static str,
        /// The limit and what is in use.
        message: String,
    },
    /// The state machine refused a transition.
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The catalog is invalid.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl From<StoreError> for LeaseError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => LeaseError::NotFound(id),
            StoreError::LimitReached { limit, message } => {
                crate::quota::limit_error(limit, message)
            }
            other => LeaseError::Store(other),
        }
    }
}

impl From<InvalidLeaseId> for LeaseError {
    fn from(error: InvalidLeaseId) -> Self {
        LeaseError::Invalid(ValidationError::new("id", error.to_string()))
    }
}

/// Joins an error and its sources with `: `.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
