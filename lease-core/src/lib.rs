//! ContainerLease engine.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod clock;
pub mod error;
pub mod id;
pub mod lease;
pub mod money;
pub mod pricing;
pub mod runtime;
pub mod store;

pub use catalog::{Catalog, CatalogError, Offering};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BoxError, LeaseError, RuntimeError, StoreError, ValidationError};
pub use id::{InvalidLeaseId, LeaseId};
pub use lease::{EndReason, InvalidTransition, Lease, Status};
pub use money::Money;
pub use runtime::ContainerRuntime;
pub use store::LeaseStore;
