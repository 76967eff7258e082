//! The container runtime port: what the engine needs from Docker (or any
//! other place containers run).
//!
//! Implementations must only ever touch containers that carry this
//! deployment's namespace label ([`labels::NAMESPACE`]); see DESIGN.md
//! invariant 3. Container references are ids or names, as the runtime takes
//! them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::pin::Pin;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWrite;

use crate::error::RuntimeError;
use crate::files::{ArchiveInput, ArchiveOut, CopyReport};
use crate::id::LeaseId;

/// Label keys every managed container carries (DESIGN.md invariant 1).
pub mod labels {
    /// `true` on every container ContainerLease creates.
    pub const MANAGED: &str = "io.containerlease.managed";
    /// The deployment's namespace; nothing without ours is ever touched.
    pub const NAMESPACE: &str = "io.containerlease.namespace";
    /// The lease's id.
    pub const LEASE_ID: &str = "io.containerlease.lease-id";
    /// The lease's owner.
    pub const OWNER: &str = "io.containerlease.owner";
    /// The lease's expiry, RFC 3339.
    pub const EXPIRES_AT: &str = "io.containerlease.expires-at";
    /// The lease's creation time, RFC 3339.
    pub const CREATED_AT: &str = "io.containerlease.created-at";
    /// The catalog offering's key.
    pub const IMAGE_TYPE: &str = "io.containerlease.image-type";
    /// On a warm-pool container: the offering whose pool it is in (a pool
    /// container has no lease id, owner or expiry label).
    pub const POOL: &str = "io.containerlease.pool";
    /// On a warm-pool container: its pool slot's id (see
    /// [`crate::pool`]); the store's slot record says whose it is.
    pub const POOL_SLOT: &str = "io.containerlease.pool-slot";
}

/// Whom a container is created for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BelongsTo {
    /// A lease: named [`container_name`] of it, labelled with its id.
    Lease(LeaseId),
    /// A warm-pool slot: named
    /// [`pool_container_name`](crate::pool::pool_container_name) of it,
    /// labelled [`labels::POOL_SLOT`] with its id and no lease id.
    PoolSlot(String),
}

impl BelongsTo {
    /// The container name this owner's container must have.
    pub fn container_name(&self) -> String {
        match self {
            BelongsTo::Lease(id) => container_name(id),
            BelongsTo::PoolSlot(slot) => crate::pool::pool_container_name(slot),
        }
    }
}

impl std::fmt::Display for BelongsTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BelongsTo::Lease(id) => write!(f, "lease {id}"),
            BelongsTo::PoolSlot(slot) => write!(f, "pool slot {slot}"),
        }
    }
}

/// Name of the container of a lease: `containerlease-<lease id>`.
pub fn container_name(id: &LeaseId) -> String {
    format!("containerlease-{id}")
}

/// Resource limits from the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU quota in billionths of a CPU.
    pub nano_cpus: i64,
    /// Memory limit in bytes.
    pub memory_bytes: i64,
    /// Process-count limit.
    pub pids: i64,
}

/// Which network a lease's container is on.
///
/// Every mode keeps leases apart: a lease can never open a connection to
/// another lease. What differs is what it can reach beyond that.
///
/// ```
/// use lease_core::runtime::NetworkMode;
/// assert_eq!(NetworkMode::default(), NetworkMode::Egress);
/// assert_eq!(NetworkMode::Isolated.to_string(), "isolated");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// No network interface but loopback: nothing in or out, the server
    /// cannot reach its ports either.
    None,
    /// The namespace's internal network: the server (the host) reaches the
    /// lease's ports, the lease has no route to anywhere else.
    Isolated,
    /// The namespace's outbound network: as `isolated`, plus outbound
    /// connections through the host's NAT (package installs, git clones).
    /// The default.
    #[default]
    Egress,
}

impl NetworkMode {
    /// The catalog spelling: `none`, `isolated` or `egress`.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Isolated => "isolated",
            NetworkMode::Egress => "egress",
        }
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a container is confined beyond its resource [`Limits`]: its
/// network, its root filesystem, its user and its disk. From the catalog
/// offering; the default is the egress network and nothing else.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// Which network the container is on.
    pub network: NetworkMode,
    /// A read-only root filesystem; the container writes only to its
    /// scratch ([`Confinement::scratch_bytes`]).
    pub read_only_root: bool,
    /// Size of the writable scratch tmpfs mounted at [`SCRATCH_PATH`], in
    /// bytes; set exactly when the root is read-only.
    pub scratch_bytes: Option<i64>,
    /// Numeric `uid` or `uid:gid` the command and execs run as, instead of
    /// the image's user.
    pub user: Option<String>,
    /// Limit of the container's writable layer, in bytes, where the
    /// runtime's storage can enforce one (a runtime that cannot refuses the
    /// spec rather than ignore the limit).
    pub disk_bytes: Option<i64>,
}

/// Where a read-only container's scratch tmpfs is mounted.
pub const SCRATCH_PATH: &str = "/tmp";

/// Everything a runtime needs to create and start one lease's container.
/// Only the engine builds specs, from the catalog: users never choose an
/// image or a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The lease or pool slot the container is created for.
    pub belongs_to: BelongsTo,
    /// The namespace label's value.
    pub namespace: String,
    /// Container name (see [`BelongsTo::container_name`]).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Keep-alive command.
    pub command: Vec<String>,
    /// All labels, the namespace and managed labels included.
    pub labels: BTreeMap<String, String>,
    /// Resource limits.
    pub limits: Limits,
    /// Network, filesystem, user and disk confinement.
    #[serde(default)]
    pub confinement: Confinement,
}

/// Progress of an image pull, reported while a lease is pending.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    /// Layers seen so far.
    pub layers_total: u32,
    /// Layers fully downloaded (or already present).
    pub layers_done: u32,
    /// Bytes downloaded so far across layers.
    pub bytes_done: u64,
    /// Bytes to download across layers, where known.
    pub bytes_total: u64,
    /// The engine's latest status line.
    pub status: String,
}

/// A callback that receives pull progress.
pub type ProgressFn<'a> = &'a (dyn Fn(PullProgress) + Send + Sync);

/// What the runtime reports about one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Runtime's container id.
    pub id: String,
    /// Container name, without a leading `/`.
    pub name: String,
    /// Whether it is running.
    pub running: bool,
    /// The runtime's state word (`running`, `exited`, `created`, …).
    pub state: String,
    /// Exit code, once it has stopped.
    pub exit_code: Option<i64>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its address on the namespace's network (else on any network it is
    /// on), where the server reaches its ports; `None` without a network
    /// (`network = none`), when stopped, or when the runtime does not say
    /// (a listing).
    #[serde(default)]
    pub address: Option<IpAddr>,
}

impl ContainerInfo {
    /// The lease id from the labels, if present and valid.
    pub fn lease_id(&self) -> Option<LeaseId> {
        self.labels.get(labels::LEASE_ID)?.parse().ok()
    }

    /// The pool slot id from the labels, on a warm-pool container.
    pub fn pool_slot(&self) -> Option<&str> {
        self.labels.get(labels::POOL_SLOT).map(String::as_str)
    }

    /// A label's value parsed as an RFC 3339 time.
    pub fn label_time(&self, key: &str) -> Option<DateTime<Utc>> {
        let text = self.labels.get(key)?;
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Which output stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a container's output, without its line ending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// stdout or stderr.
    pub source: LogSource,
    /// The text.
    pub text: String,
}

/// How much of the logs to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep following new output until the container stops.
    pub follow: bool,
    /// Only the last `n` lines already written.
    pub tail: Option<u32>,
}

/// A stream of log lines.
pub type LogStream = BoxStream<'static, Result<LogLine, RuntimeError>>;

/// A command to run inside a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Allocate a terminal (for an interactive shell).
    pub tty: bool,
    /// Attach standard input.
    pub stdin: bool,
    /// Initial terminal size (columns, rows), with `tty`.
    pub size: Option<(u16, u16)>,
    /// Extra environment variables of the command, each `KEY=VALUE`.
    pub env: Vec<String>,
}

/// A chunk of an exec's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecChunk {
    /// stdout or stderr (always stdout with a TTY).
    pub source: LogSource,
    /// Raw bytes.
    pub bytes: Vec<u8>,
}

/// A running exec: its output, its input if asked for, and its id for
/// [`ContainerRuntime::exec_resize`] and [`ContainerRuntime::exec_exit_code`].
pub struct ExecSession {
    /// The runtime's exec id.
    pub id: String,
    /// Output until the command ends.
    pub output: BoxStream<'static, Result<ExecChunk, RuntimeError>>,
    /// Standard input, when requested.
    pub input: Option<Pin<Box<dyn AsyncWrite + Send>>>,
}

impl Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The container runtime port.
///
/// All methods act only within `namespace`: a container without that
/// namespace label is reported as [`RuntimeError::NotManaged`] (or skipped
/// by [`ContainerRuntime::list_managed`]) and never changed.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + Debug + 'static {
    /// Whether the runtime can be reached (for readiness checks).
    async fn ping(&self) -> Result<(), RuntimeError>;

    /// Makes `image` available locally, pulling it if needed and reporting
    /// progress to `progress`.
    async fn ensure_image(&self, image: &str, progress: ProgressFn<'_>)
    -> Result<(), RuntimeError>;

    /// Creates and starts the container of `spec`, returning its id.
    ///
    /// Idempotent by name: if a container named `spec.name` already exists in
    /// the namespace, it is started if needed and its id returned (so a
    /// retried provisioning never makes a duplicate).
    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;

    /// Stops and removes a container (id or name) with its volumes.
    /// Idempotent: a container that does not exist counts as removed.
    async fn remove(&self, namespace: &str, container: &str) -> Result<(), RuntimeError>;

    /// Reports one container, or `None` if it does not exist.
    async fn inspect(
        &self,
        namespace: &str,
        container: &str,
    ) -> Result<Option<ContainerInfo>, RuntimeError>;

    /// Streams a container's log lines.
    async fn logs(
        &self,
        namespace: &str,
        container: &str,
        options: LogOptions,
    ) -> Result<LogStream, RuntimeError>;

    /// Starts a command inside a container.
    async fn exec(
        &self,
        namespace: &str,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError>;

    /// Resizes the terminal of an exec (in a container of `namespace`) to
    /// `columns` × `rows`.
    async fn exec_resize(
        &self,
        namespace: &str,
        exec_id: &str,
        columns: u16,
        rows: u16,
    ) -> Result<(), RuntimeError>;

    /// An exec's exit code (in a container of `namespace`), once it has
    /// finished (`None` while it runs).
    async fn exec_exit_code(
        &self,
        namespace: &str,
        exec_id: &str,
    ) -> Result<Option<i64>, RuntimeError>;

    /// Streams `path` (absolute, see [`crate::files::check_container_path`];
    /// a file or a directory tree) of a container as a tar archive.
    ///
    /// [`RuntimeError::PathNotFound`] when it does not exist,
    /// [`RuntimeError::PathNotAllowed`] when it cannot be read. The default
    /// answers [`RuntimeError::Invalid`]: a runtime that cannot copy files.
    async fn copy_from(
        &self,
        namespace: &str,
        container: &str,
        path: &str,
    ) -> Result<ArchiveOut, RuntimeError> {
        let _ = (namespace, container, path);
        Err(RuntimeError::Invalid(
            "this container runtime cannot copy files".to_owned(),
        ))
    }

    /// Unpacks the tar archive `archive` into the directory `dir` (absolute)
    /// of a container, streaming, as the container's user. All or nothing:
    /// when the archive fails (an `Err` item, a bad archive, a full disk)
    /// nothing of it is left in `dir`.
    ///
    /// [`RuntimeError::PathNotFound`] when `dir` does not exist,
    /// [`RuntimeError::PathNotAllowed`] when it is not a directory or cannot
    /// be written (read-only filesystem, permissions). The default answers
    /// [`RuntimeError::Invalid`]: a runtime that cannot copy files.
    async fn copy_to(
        &self,
        namespace: &str,
        container: &str,
        dir: &str,
        archive: ArchiveInput,
    ) -> Result<CopyReport, RuntimeError> {
        let _ = (namespace, container, dir, archive);
        Err(RuntimeError::Invalid(
            "this container runtime cannot copy files".to_owned(),
        ))
    }

    /// Every container carrying `namespace`'s label, stopped ones included.
    async fn list_managed(&self, namespace: &str) -> Result<Vec<ContainerInfo>, RuntimeError>;
}
