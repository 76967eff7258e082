//! What can go wrong, and the exit code each failure gets.

use std::process::ExitCode;

use lease_core::{CatalogError, LeaseError, RuntimeError, StoreError};

/// A failed command. Printed to stderr as `lease: <message>: <causes…>`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line asks for something that cannot work.
    #[error("{0}")]
    Usage(String),
    /// A command that needs shared state was given the memory store.
    #[error(
        "`lease {command}` needs leases shared with other processes, and the memory store \
         lives only inside one command. Use the default SQLite store (--store sqlite://PATH, \
         the same file as your lease-server on this host), --store redis://HOST:6379/0 \
         or --store postgres://USER@HOST/DB (or LEASE_STORE) with the same Redis or PostgreSQL \
         and --namespace as your lease-server"
    )]
    NeedsSharedStore {
        /// The command's name.
        command: &'static str,
    },
    /// No lease matches what was typed.
    #[error("no lease `{0}` (see `lease ls --all`)")]
    UnknownLease(String),
    /// A full id of a lease that belongs to someone else.
    #[error("lease {id} belongs to `{owner}`; pass --owner {owner} to act on it")]
    OtherOwner {
        /// The lease.
        id: String,
        /// Its owner.
        owner: String,
    },
    /// Several leases start with what was typed.
    #[error("`{prefix}` matches several leases: {matches}; type more of the id")]
    AmbiguousLease {
        /// What was typed.
        prefix: String,
        /// The candidates.
        matches: String,
    },
    /// The catalog has no such offering.
    #[error("unknown offering `{offering}`; choose one of: {known} (see `lease prices`)")]
    UnknownOffering {
        /// What was asked for.
        offering: String,
        /// The catalog's keys.
        known: String,
    },
    /// The lease ended or failed before it was running.
    #[error("lease {id} is {status}{}", .error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NotRunning {
        /// The lease.
        id: String,
        /// Its status.
        status: lease_core::Status,
        /// Its error message, if any.
        error: Option<String>,
    },
    /// Docker could not be reached.
    #[error("cannot reach Docker (is it running? is DOCKER_HOST right?)")]
    Docker(#[source] RuntimeError),
    /// The store could not be opened.
    #[error("cannot open the lease store {store}")]
    OpenStore {
        /// The store (URL without password).
        store: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The catalog could not be loaded.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The engine refused or failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// A terminal or file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The lease-server refused or failed a call.
    #[error(transparent)]
    Remote(#[from] lease_client::ClientError),
    /// The lease-server refused the token (or there is none).
    #[error(
        "the lease-server at {server} refused the request: {message}; set LEASE_TOKEN or run \
         `lease login --server {server}`"
    )]
    Unauthorized {
        /// The server.
        server: String,
        /// What it said.
        message: String,
    },
    /// An operator command was pointed at a lease-server.
    #[error(
        "`lease {command}` is an operator command: it works on the store, Docker and tokens \
         of the host it runs on and never goes through a lease-server; run it there without \
         --server (and LEASE_SERVER)"
    )]
    LocalOnly {
        /// The command's name.
        command: &'static str,
    },
    /// Signing in to a lease-server did not finish (refused, timed out,
    /// a mismatched answer).
    #[error("sign-in failed: {0}")]
    SignIn(String),
    /// Ctrl-C or a termination signal.
    #[error("interrupted")]
    Interrupted,
    /// Some of several operations failed; each was reported already.
    #[error("{0}")]
    Partial(String),
    /// Writing to stdout failed because the reader went away (`| head`).
    #[error("broken pipe")]
    BrokenPipe,
}

impl CliError {
    /// An I/O failure while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            what: what.into(),
            source,
        }
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) | CliError::LocalOnly { .. } => ExitCode::from(2),
            CliError::Interrupted => ExitCode::from(130),
            CliError::BrokenPipe => ExitCode::SUCCESS,
            _ => ExitCode::from(1),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        CliError::Lease(error.into())
    }
}

impl From<RuntimeError> for CliError {
    fn from(error: RuntimeError) -> Self {
        CliError::Lease(error.into())
    }
}
