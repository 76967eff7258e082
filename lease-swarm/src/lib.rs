//! ContainerLease's container runtime on Docker Swarm: leases placed by the
//! cluster, on whichever node has room and matches the offering.
//!
//! ```no_run
//! use std::sync::Arc;
//! use lease_core::ContainerRuntime;
//! use lease_swarm::{NodeRoutes, SwarmOptions, SwarmRuntime};
//!
//! # async fn run() -> Result<(), lease_core::RuntimeError> {
//! // The manager like the docker CLI finds it (DOCKER_HOST, else the local
//! // socket); the engine of each other node for exec and files.
//! let routes: NodeRoutes = "worker-1=tcp://10.0.0.3:2375".parse()?;
//! let swarm = SwarmRuntime::connect("prod", SwarmOptions::from_env().routes(routes)).await?;
//! let runtime: Arc<dyn ContainerRuntime> = Arc::new(swarm);
//! for unit in runtime.list_managed().await? {
//!     println!("{} {:?}", unit.name, unit.state);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # A crate, not a mode of lease-docker
//!
//! Swarm shares the engine API with Docker, but almost nothing of a
//! runtime's logic: a lease is a *service* whose task the cluster places
//! (maybe later, maybe never: `no suitable node`), its state is a task
//! state, its logs come from the manager, its container lives on a node the
//! manager does not exec into, removal is asynchronous, and networks must
//! be swarm-scoped. As a mode, every method of lease-docker would branch on
//! it; as a crate, lease-docker stays the single-engine runtime it is and
//! this one *uses* it where Swarm ends: on the node that runs a task, exec,
//! files and the container's address go through lease-docker's
//! [`DockerRuntime`](lease_docker::DockerRuntime) on that node's engine
//! (the same connection code, hardening constants and log decoding). The
//! port's conformance suite runs on both, so neither can drift.
//!
//! # How a lease maps onto Swarm
//!
//! - **a service of one replica** named `containerlease-<lease id>` (the
//!   container name on Docker), restart condition `none` (an ended lease
//!   stays ended), labels on the service *and* its container spec (the
//!   managed and namespace labels added by the runtime), limits from the
//!   catalog and, unless [`SwarmOptions::overcommit`], the same
//!   reservations, so the scheduler never packs a node beyond its size;
//! - **placement constraints** per offering (`constraints =
//!   ["node.labels.gpu==true"]` in the catalog); a task no node can take
//!   stays pending with the cluster's reason, which the engine turns into
//!   the lease's error at its placement deadline;
//! - **state** from the service's current task: `new` … `starting` are
//!   pending (with the task's own message or error), `running` running,
//!   `complete`/`shutdown` exited, `failed`/`rejected`/`orphaned` failed
//!   with the task's error;
//! - **create** returns once the task runs, has ended, or is waiting for a
//!   node — or after 5 s, leaving the rest of the wait to the engine;
//! - **remove** deletes the service and waits until the task's container is
//!   gone from its node (bounded, [`SwarmOptions::removal_timeout`]);
//! - **list managed** lists the namespace's services cluster-wide (by
//!   label) with their tasks' states: the reconciler and orphan handling
//!   see every node;
//! - **logs** through the manager's service logs;
//! - **exec, files and the address** on the engine of the node running the
//!   task ([`NodeRoutes`]); the manager's own node goes through the manager
//!   connection by default. A node without a route is a [`NoRouteError`];
//! - **networks**: swarm-scoped bridges per namespace and mode, see
//!   [`network`]. `network = "none"` and `disk_mb` cannot be honoured by a
//!   service and are refused.
//!
//! # Hardening
//!
//! As lease-docker's ([`lease_docker::hardening`]) where a service spec
//! carries it: capabilities dropped but the same five, `init`, non-root
//! user, read-only root with its tmpfs scratch, pids/cpu/memory limits,
//! capped json-file logs, no published ports, no restart. Not carried by a
//! Swarm service spec: the private IPC mode (services get the engine's
//! default, `private` or `shareable`: never the host's), `MemorySwap` (the
//! engine's default, twice the limit, unless swap is off) and, on engines
//! before API 1.46 (Docker 25), `no-new-privileges` and the tmpfs's
//! `nosuid,nodev` (sent, ignored by older engines).
//!
//! # Errors
//!
//! The core's [`RuntimeError`](lease_core::RuntimeError): `Unavailable`
//! when the manager cannot be reached, `NotManaged` for a service of
//! another namespace, `Invalid` for what a service cannot honour, and
//! `Operation` with this crate's error (or a [`NoRouteError`]) as source.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod choice;
mod error;
mod logs;
pub mod network;
mod port;
mod routes;
mod runtime;
mod service;
mod task;
mod unit;

pub use choice::{RuntimeChoice, RuntimeSettings, connect_runtime};
pub use routes::{NoRouteError, NodeRoutes};
pub use runtime::{SwarmOptions, SwarmRuntime};
