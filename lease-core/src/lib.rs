//! ContainerLease engine: leases of short-lived containers, priced up
//! front and removed when their time runs out.
//!
//! ```
//! use lease_core::{pricing, Catalog, LeaseId, Money};
//!
//! // Offerings are data: the built-in catalog mirrors the seed.
//! let catalog = Catalog::default();
//! let ubuntu = catalog.get("ubuntu").expect("built-in offering");
//! // Prices are exact to the nano-dollar: 2 hours of ubuntu cost $0.08.
//! assert_eq!(pricing::estimate(ubuntu.hourly_rate, 120), "0.08".parse::<Money>().unwrap());
//! // Lease ids are opaque and unguessable.
//! assert!(LeaseId::generate().as_str().starts_with("container-"));
//! ```
//!
//! The engine, [`LeaseManager`], works over two ports held as trait
//! objects: a [`LeaseStore`] (memory, Redis, …) and a [`ContainerRuntime`]
//! (Docker, …). A runtime is scoped to one namespace, the manager's (the
//! builder refuses a mismatch); its `create` may return before the unit
//! runs, and the engine waits for it with a deadline
//! ([`ManagerConfig::placement_timeout`]). Wiring it, with any store and
//! runtime:
//!
//! ```no_run
//! use std::sync::Arc;
//! use lease_core::{ContainerRuntime, LeaseManager, LeaseStore, ManagerConfig, ProvisionRequest};
//! use tokio_util::sync::CancellationToken;
//!
//! async fn rent(store: Arc<dyn LeaseStore>, runtime: Arc<dyn ContainerRuntime>) -> Result<(), lease_core::LeaseError> {
//!     let manager = LeaseManager::builder(store, runtime)
//!         .config(ManagerConfig::with_namespace("dev"))
//!         .build()?;
//!     let shutdown = CancellationToken::new();
//!     let background = manager.start(shutdown.clone()); // reaper + reconciler
//!     // Returns at once with a pending lease; the container comes up in the background.
//!     let lease = manager.provision(ProvisionRequest::new("alice", "alpine").minutes(2)).await?;
//!     println!("{} costs ${}", lease.id, lease.estimated_cost);
//!     shutdown.cancel();
//!     background.join().await;
//!     Ok(())
//! }
//! ```
//!
//! Modules by concept: [`lease`] (the record and its state machine),
//! [`pricing`] and [`money`], [`catalog`], [`clock`], the ports [`store`] and
//! [`runtime`], [`pool`] (warm pools: slot records and the invariants as
//! pools amend them), [`stats`] (daily rollup counters), [`admission`] (limits a store checks atomically with a
//! write), [`event`]s, [`config`]. The manager's provisioning task,
//! reaper and reconciler live in private modules and are reached through
//! [`LeaseManager`]. Feature `test-utils` adds `testing`: the store and
//! runtime conformance suites, the engine scenarios over any store, and a
//! fake runtime; and `runtime::MockContainerRuntime` (mockall).
#![forbid(unsafe_code)]

pub mod admission;
mod background;
mod cas;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod cursor;
pub mod error;
pub mod event;
pub mod files;
pub mod id;
pub mod lease;
mod manager;
pub mod money;
mod placement;
pub mod pool;
mod pool_fill;
pub mod pricing;
mod provision;
mod quota;
mod reaper;
mod reconcile_plan;
mod reconcile_pools;
mod reconciler;
pub mod runtime;
pub mod stats;
pub mod store;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use admission::{Admission, AdmissionUsage, Limit};
pub use background::BackgroundTasks;
pub use catalog::{Catalog, CatalogError, Offering};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ManagerConfig, OrphanPolicy};
pub use credentials::{CredentialError, CredentialStore, PersonalToken, WebSession};
pub use error::{BoxError, LeaseError, RuntimeError, StoreError, ValidationError};
pub use event::{EventKind, LeaseEvent};
pub use id::{InvalidLeaseId, LeaseId};
pub use lease::{EndReason, InvalidTransition, Lease, Status};
pub use manager::{LeaseManager, LeaseManagerBuilder, ProvisionRequest, Usage};
pub use money::Money;
pub use pool::{PoolSlot, SlotState};
pub use pool_fill::{PoolCounters, PoolStatus};
pub use provision::{container_spec, pool_container_spec};
pub use reaper::ReapReport;
pub use reconcile_plan::{PlannedChange, ReconcileAction, ReconcilePlan};
pub use reconciler::ReconcileReport;
pub use runtime::{ContainerRuntime, ContainerSpec, ExecHandle, RuntimeCapabilities, UnitState};
pub use stats::{Histogram, StatsKey, StatsRow, finish_contribution};
pub use store::{
    DEFAULT_HISTORY_RETENTION, HistoryQuery, LeaseStore, LeaseStoreExt, ListQuery, Page,
    UsageTotals,
};
