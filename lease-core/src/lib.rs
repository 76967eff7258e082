//! ContainerLease engine.
#![forbid(unsafe_code)]

mod background;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod id;
pub mod lease;
mod manager;
pub mod money;
pub mod pricing;
mod provision;
mod reaper;
mod reconciler;
pub mod runtime;
pub mod store;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use background::BackgroundTasks;
pub use catalog::{Catalog, CatalogError, Offering};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ManagerConfig, OrphanPolicy};
pub use error::{BoxError, LeaseError, RuntimeError, StoreError, ValidationError};
pub use event::{EventKind, LeaseEvent};
pub use id::{InvalidLeaseId, LeaseId};
pub use lease::{EndReason, InvalidTransition, Lease, Status};
pub use manager::{LeaseManager, LeaseManagerBuilder, ProvisionRequest, Usage};
pub use money::Money;
pub use provision::container_spec;
pub use reaper::ReapReport;
pub use reconciler::ReconcileReport;
pub use runtime::{ContainerRuntime, ContainerSpec};
pub use store::{HistoryQuery, LeaseStore, ListQuery, Page, UsageTotals};
