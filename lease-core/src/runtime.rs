//! The container runtime port: what the engine needs from Docker (or any
//! other place containers run).
//!
//! A runtime is scoped to one namespace and only ever touches units that
//! carry its namespace label ([`labels::NAMESPACE`]); see DESIGN.md
//! invariant 3 and [`ContainerRuntime`] for the port's shape. Unit
//! references are ids or names, as the runtime takes them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

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
    /// Where a cluster runtime may place the unit: placement constraints
    /// in Swarm's syntax (`node.labels.gpu==true`), from the offering's
    /// `constraints`. Empty: anywhere. Single-engine runtimes have one
    /// place only; their callers refuse a catalog with constraints
    /// ([`crate::Catalog::constrained`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement: Vec<String>,
}

/// Where a read-only container's scratch tmpfs is mounted.
pub const SCRATCH_PATH: &str = "/tmp";

/// Everything a runtime needs to create and start one lease's container.
/// Only the engine builds specs, from the catalog: users never choose an
/// image or a command.
///
/// The spec carries no namespace: the runtime is built for one
/// ([`ContainerRuntime::namespace`]) and adds the managed and namespace
/// labels itself (see [`ContainerSpec::unit_labels`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The lease or pool slot the container is created for.
    pub belongs_to: BelongsTo,
    /// Container name (see [`BelongsTo::container_name`]).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Keep-alive command.
    pub command: Vec<String>,
    /// The unit's own labels (lease id, owner, pool slot, …); the runtime
    /// adds [`labels::MANAGED`] and [`labels::NAMESPACE`].
    pub labels: BTreeMap<String, String>,
    /// Resource limits.
    pub limits: Limits,
    /// Network, filesystem, user and disk confinement.
    #[serde(default)]
    pub confinement: Confinement,
}

impl ContainerSpec {
    /// Every label the unit of this spec carries in `namespace`: the spec's
    /// labels plus `io.containerlease.managed=true` and the namespace label.
    ///
    /// A spec that sets either of those two itself to anything else is
    /// [`RuntimeError::Invalid`]: only the runtime says where a unit belongs.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use lease_core::runtime::{labels, BelongsTo, ContainerSpec, Limits};
    /// use lease_core::LeaseId;
    /// let id = LeaseId::generate();
    /// let spec = ContainerSpec {
    ///     name: lease_core::runtime::container_name(&id),
    ///     belongs_to: BelongsTo::Lease(id),
    ///     image: "busybox".into(),
    ///     command: vec!["sleep".into(), "infinity".into()],
    ///     labels: BTreeMap::from([(labels::NAMESPACE.to_owned(), "other".to_owned())]),
    ///     limits: Limits { nano_cpus: 1, memory_bytes: 1, pids: 1 },
    ///     confinement: Default::default(),
    /// };
    /// assert!(spec.unit_labels("dev").is_err());
    /// ```
    pub fn unit_labels(&self, namespace: &str) -> Result<BTreeMap<String, String>, RuntimeError> {
        let ours = [(labels::MANAGED, "true"), (labels::NAMESPACE, namespace)];
        let mut all = self.labels.clone();
        for (key, value) in ours {
            if let Some(given) = all.insert(key.to_owned(), value.to_owned())
                && given != value
            {
                return Err(RuntimeError::Invalid(format!(
                    "the spec of `{}` sets label {key}={given}; the runtime of namespace `{namespace}` sets it",
                    self.name
                )));
            }
        }
        Ok(all)
    }
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

/// Where [`ContainerRuntime::ensure_image`] sends pull progress: an owned
/// channel the runtime may send on (a send to a receiver that went away is
/// ignored) and drops when it returns.
pub type ProgressSender = tokio::sync::mpsc::UnboundedSender<PullProgress>;

/// Where a unit is in its life, as the runtime sees it.
///
/// Placement may be asynchronous: a unit just created can be
/// [`UnitState::Pending`] (a cluster looking for a node, an image being
/// fetched on a node) before it runs anywhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum UnitState {
    /// Created, not running yet; `reason` is the runtime's word on why,
    /// where it gives one (`no suitable node …`, `created`).
    Pending {
        /// Why it is not running yet.
        reason: Option<String>,
    },
    /// Its command is running.
    Running,
    /// Its command ended (a stopped container).
    Exited {
        /// The exit code, where known.
        code: Option<i64>,
    },
    /// The runtime gave up on it (rejected, dead): it will never run.
    Failed {
        /// The runtime's reason.
        reason: String,
    },
}

impl UnitState {
    /// Whether the unit is running.
    pub fn is_running(&self) -> bool {
        matches!(self, UnitState::Running)
    }

    /// The exit code of an exited unit.
    pub fn exit_code(&self) -> Option<i64> {
        match self {
            UnitState::Exited { code } => *code,
            _ => None,
        }
    }

    /// One word: `pending`, `running`, `exited` or `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            UnitState::Pending { .. } => "pending",
            UnitState::Running => "running",
            UnitState::Exited { .. } => "exited",
            UnitState::Failed { .. } => "failed",
        }
    }
}

impl std::fmt::Display for UnitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnitState::Pending {
                reason: Some(reason),
            } => write!(f, "pending: {reason}"),
            UnitState::Exited { code: Some(code) } => write!(f, "exited with code {code}"),
            UnitState::Failed { reason } => write!(f, "failed: {reason}"),
            other => f.write_str(other.word()),
        }
    }
}

/// What the runtime reports about one unit (a container, or the unit a
/// cluster runs it in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// The runtime's id of the unit (what [`ContainerRuntime::create`]
    /// returned).
    pub id: String,
    /// Its name (the spec's), without a leading `/`.
    pub name: String,
    /// Where it is in its life.
    pub state: UnitState,
    /// Its labels, the managed and namespace labels included.
    pub labels: BTreeMap<String, String>,
    /// Its address on the namespace's network (else on any network it is
    /// on), where the server reaches its ports; `None` without a network
    /// (`network = none`), when not running, or when the runtime does not
    /// say (a listing).
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// The limits it runs under, where the runtime reports them (from
    /// [`ContainerRuntime::status`]; see
    /// [`RuntimeCapabilities::reports_limits`]).
    #[serde(default)]
    pub limits: Option<Limits>,
}

impl ContainerInfo {
    /// Whether it is running.
    pub fn running(&self) -> bool {
        self.state.is_running()
    }

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

/// The handle of a running exec: what stays useful after its output has
/// been taken. Cheap to clone ([`ExecHandle`]); a shell session registry
/// keeps it for the life of the session.
#[async_trait]
pub trait ExecControl: Send + Sync + Debug {
    /// Resizes the exec's terminal to `columns` × `rows` (an exec without
    /// a terminal may refuse with [`RuntimeError::Invalid`]).
    async fn resize(&self, columns: u16, rows: u16) -> Result<(), RuntimeError>;

    /// The exec's exit code once it has finished, `None` while it runs.
    async fn exit_code(&self) -> Result<Option<i64>, RuntimeError>;
}

/// A shared [`ExecControl`].
pub type ExecHandle = Arc<dyn ExecControl>;

/// A running exec: its output, its input if asked for, and its control.
pub struct ExecSession {
    /// Output until the command ends.
    pub output: BoxStream<'static, Result<ExecChunk, RuntimeError>>,
    /// Standard input, when requested. Dropping (or shutting down) it
    /// closes the command's input.
    pub input: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// Resize and exit code, usable for as long as anyone holds it.
    pub control: ExecHandle,
}

impl Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("control", &self.control)
            .field("input", &self.input.is_some())
            .finish_non_exhaustive()
    }
}

/// What a runtime can do beyond the port's required behaviour. The
/// conformance suite (`lease_core::testing::runtime_conformance`) skips a
/// case only when the runtime declares here that it cannot do it.
/// The default: neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeCapabilities {
    /// [`ContainerRuntime::copy_from`] and [`ContainerRuntime::copy_to`]
    /// work (else they answer [`RuntimeError::Invalid`]).
    pub copy_files: bool,
    /// [`ContainerRuntime::status`] fills [`ContainerInfo::limits`].
    pub reports_limits: bool,
}

/// The container runtime port: where lease containers run (one Docker
/// engine, a Swarm cluster, …).
///
/// # Shape
///
/// - **Scoped once.** A runtime is built for one namespace
///   ([`ContainerRuntime::namespace`]) and no method takes one. It adds the
///   managed and namespace labels to what it creates
///   ([`ContainerSpec::unit_labels`]) and only ever acts on units carrying
///   its namespace (DESIGN invariant 3): another namespace's unit is
///   [`RuntimeError::NotManaged`] (or `None` from
///   [`ContainerRuntime::status`]; skipped by
///   [`ContainerRuntime::list_managed`]) and never changed.
/// - **Units.** A unit is referenced by the id [`ContainerRuntime::create`]
///   returned or by its name; what runs it (a container, a service's task)
///   is the runtime's business.
/// - **Placement may be asynchronous.** [`ContainerRuntime::create`] may
///   return before the unit runs anywhere; [`ContainerRuntime::status`]
///   says when it is [`UnitState::Running`] or why it is not. The engine
///   waits for `Running` with a deadline
///   ([`crate::ManagerConfig::placement_timeout`]).
/// - **Exec is a session** ([`ExecSession`]) owning its output, input and
///   control ([`ExecHandle`]: resize, exit code); no exec ids go around.
/// - **Progress is an owned channel** ([`ProgressSender`]).
///
/// Every runtime passes the conformance suite
/// (`lease_core::runtime_conformance_tests!`, feature `test-utils`).
#[cfg_attr(feature = "test-utils", mockall::automock)]
#[async_trait]
pub trait ContainerRuntime: Send + Sync + Debug + 'static {
    /// The namespace this runtime is scoped to.
    fn namespace(&self) -> &str;

    /// What it can do beyond the required behaviour.
    fn capabilities(&self) -> RuntimeCapabilities {
        RuntimeCapabilities::default()
    }

    /// Whether the runtime can be reached (for readiness checks).
    async fn ping(&self) -> Result<(), RuntimeError>;

    /// Makes `image` available where units will run, pulling it if needed
    /// and sending progress to `progress` (dropped when this returns).
    async fn ensure_image(&self, image: &str, progress: ProgressSender)
    -> Result<(), RuntimeError>;

    /// Creates the unit of `spec` and asks for it to run, returning its id.
    ///
    /// It may return before the unit runs anywhere (see
    /// [`ContainerRuntime::status`]); a runtime that starts it synchronously
    /// (Docker) returns once it runs.
    ///
    /// Idempotent by name: if a unit named `spec.name` already exists in
    /// the namespace, its id is returned (started if needed), so a retried
    /// provisioning never makes a duplicate.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;

    /// Reports one unit (id or name), with its state and address, or
    /// `None` if it does not exist or is not of this namespace.
    async fn status(&self, container: &str) -> Result<Option<ContainerInfo>, RuntimeError>;

    /// Stops and removes a unit (id or name) with its volumes, and returns
    /// once it is gone: afterwards [`ContainerRuntime::status`] answers
    /// `None` and [`ContainerRuntime::list_managed`] does not list it.
    /// Idempotent: a unit that does not exist counts as removed; one of
    /// another namespace is [`RuntimeError::NotManaged`] and left alone.
    async fn remove(&self, container: &str) -> Result<(), RuntimeError>;

    /// Streams a unit's log lines.
    async fn logs(&self, container: &str, options: LogOptions) -> Result<LogStream, RuntimeError>;

    /// Starts a command inside a running unit.
    async fn exec(
        &self,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError>;

    /// Streams `path` (absolute, see [`crate::files::check_container_path`];
    /// a file or a directory tree) of a unit as a tar archive.
    ///
    /// [`RuntimeError::PathNotFound`] when it does not exist,
    /// [`RuntimeError::PathNotAllowed`] when it cannot be read. The default
    /// answers [`RuntimeError::Invalid`]: a runtime that cannot copy files
    /// (and says so in [`RuntimeCapabilities::copy_files`]).
    async fn copy_from(&self, container: &str, path: &str) -> Result<ArchiveOut, RuntimeError> {
        let _ = (container, path);
        Err(RuntimeError::Invalid(
            "this container runtime cannot copy files".to_owned(),
        ))
    }

    /// Unpacks the tar archive `archive` into the directory `dir` (absolute)
    /// of a unit, streaming, as the unit's user. All or nothing: when the
    /// archive fails (an `Err` item, a bad archive, a full disk) nothing of
    /// it is left in `dir`.
    ///
    /// [`RuntimeError::PathNotFound`] when `dir` does not exist,
    /// [`RuntimeError::PathNotAllowed`] when it is not a directory or cannot
    /// be written (read-only filesystem, permissions). The default answers
    /// [`RuntimeError::Invalid`]: a runtime that cannot copy files.
    async fn copy_to(
        &self,
        container: &str,
        dir: &str,
        archive: ArchiveInput,
    ) -> Result<CopyReport, RuntimeError> {
        let _ = (container, dir, archive);
        Err(RuntimeError::Invalid(
            "this container runtime cannot copy files".to_owned(),
        ))
    }

    /// Every unit of the namespace, wherever it runs (cluster-wide), stopped
    /// ones included. Listings need not carry addresses or limits.
    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError>;
}
