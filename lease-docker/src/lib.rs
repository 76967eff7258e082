//! ContainerLease's container runtime on the Docker Engine API (bollard).
//!
//! ```no_run
//! use std::sync::Arc;
//! use lease_core::ContainerRuntime;
//! use lease_docker::DockerRuntime;
//!
//! # async fn run() -> Result<(), lease_core::RuntimeError> {
//! // Like the docker CLI: DOCKER_HOST (unix:// or tcp://), else /var/run/docker.sock;
//! // scoped to the namespace `prod`.
//! let docker = DockerRuntime::connect("prod").await?;
//! docker.ping().await?;
//!
//! // The engine (lease_core::LeaseManager) holds it behind the port…
//! let runtime: Arc<dyn ContainerRuntime> = Arc::new(docker);
//! // …and it only ever sees the containers of its own namespace.
//! for container in runtime.list_managed().await? {
//!     println!("{} {} {}", container.name, container.state, container.lease_id().map(|id| id.to_string()).unwrap_or_default());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What it does
//!
//! [`DockerRuntime`] implements [`lease_core::ContainerRuntime`]:
//!
//! - **images**: the local image if present, else a pull that reports
//!   layer and byte progress; a failed pull is
//!   [`lease_core::RuntimeError::ImageUnavailable`] naming the image and the
//!   engine's reason;
//! - **create** (and start: it runs when `create` returns) from the core's
//!   [`lease_core::ContainerSpec`], named
//!   `containerlease-<lease id>`, with the spec's labels, keep-alive command
//!   limits and confinement, hardened as described in [`hardening`], on the
//!   namespace's network for the offering's mode (see [`network`]: leases
//!   cannot reach each other, the host reaches them); idempotent by name,
//!   so a retried provisioning never makes a duplicate. The runtime adds the
//!   managed and namespace labels; a spec that sets them otherwise, or lacks
//!   its lease id, is refused, and so is a disk limit the engine's storage
//!   driver cannot enforce (see [`storage`]);
//! - **remove**: forced, with volumes; a container that does not exist, or
//!   whose removal is already in progress, counts as removed;
//! - **status** (a typed state, the address, the applied limits), **logs**
//!   (lines tagged stdout/stderr, tail, follow), **exec** (optional TTY and
//!   stdin; the session's handle resizes and reads the exit code), **copy**
//!   files in and out, and **list managed** (by namespace label, stopped
//!   containers included).
//!
//! A runtime is scoped to the namespace it was connected for: a container
//! without that namespace label is invisible to `status` and `list_managed`,
//! [`lease_core::RuntimeError::NotManaged`] to the rest, and never changed.
//! It passes lease-core's runtime conformance suite (`tests/conformance.rs`).
//!
//! # Errors
//!
//! Each Docker operation has its own private error (`cannot create container
//! … for lease …`, `cannot pull image …`) keeping bollard's error as its
//! source; they reach callers inside the core's
//! [`lease_core::RuntimeError`]: `Unavailable { endpoint }` when the engine
//! cannot be reached (socket missing, connection refused or cut, timeout),
//! `ImageUnavailable { image }`, `NotFound`, `NotManaged`, `Invalid`, or
//! `Operation { operation }` for the rest.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod connection;
mod container;
mod error;
mod exec;
mod files;
pub mod hardening;
mod image;
mod logs;
pub mod network;
mod runtime;
pub mod storage;
pub mod tls;

pub use connection::{ConnectOptions, DEFAULT_HOST, connect};
pub use container::is_engine_reference;
pub use logs::{MAX_LINE, lines};
pub use runtime::DockerRuntime;
pub use tls::CertFileError;
