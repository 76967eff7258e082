//! ContainerLease's lease store in process memory.
//!
//! [`MemoryStore`] implements [`lease_core::LeaseStore`] for a single
//! process: no service to run, every operation atomic under one lock, and
//! indexes that keep reaping cheap at a million leases.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use chrono::Utc;
//! use lease_core::{Admission, Lease, LeaseId, LeaseStore, ListQuery, Money, Status};
//! use lease_store_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lease_core::StoreError> {
//! let store: Arc<dyn LeaseStore> = Arc::new(MemoryStore::new());
//!
//! let now = Utc::now();
//! // Two minutes of alpine at $0.01 an hour, and its time is up.
//! let rate = "0.01".parse().expect("a decimal amount");
//! let lease = Lease::new(LeaseId::generate(), "ada", "alpine", rate, now - chrono::Duration::minutes(2), now);
//! assert_eq!(lease.estimated_cost, Money::from_nanos(333_333));
//! let stored = store.insert(&lease, &Admission::default()).await?;
//! assert_eq!(stored.revision, 1);
//! assert_eq!(store.list(&ListQuery::owner("ada")).await?.items, [stored.clone()]);
//!
//! // A reaper claims the expired lease; nobody else can for 30 seconds.
//! let claimed = store.claim_expired(Utc::now(), 100, Duration::from_secs(30)).await?;
//! assert_eq!(claimed, [stored.clone()]);
//! assert!(store.claim_expired(Utc::now(), 100, Duration::from_secs(30)).await?.is_empty());
//!
//! // Its container is gone: the lease moves to history.
//! let mut done = claimed[0].clone();
//! done.status = Status::Deleted;
//! done.ended_at = Some(done.expires_at);
//! done.final_cost = Some(Money::from_nanos(333_333));
//! store.finish(&done).await?;
//! assert_eq!(store.usage("ada").await?.ended_cost, Money::from_nanos(333_333));
//! assert_eq!(store.next_due().await?, None);
//! # Ok(())
//! # }
//! ```
//!
//! The store passes the conformance suite of `lease-core` (feature
//! `test-utils`), directly and through `Arc<dyn LeaseStore>`.
#![forbid(unsafe_code)]

mod credentials;
mod index;
mod pool;
mod store;

pub use store::MemoryStore;
