//! ContainerLease's lease store on SQLite: the durable default.
//!
//! [`SqliteStore`] implements [`lease_core::LeaseStore`] on one database
//! file: it survives restarts and crashes (WAL, `synchronous=FULL`), needs
//! no service (SQLite is compiled in), and several processes of one host
//! (a `lease-server` and `lease` commands) can use the same file at once.
//! For several hosts, use the Redis store.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use chrono::Utc;
//! use lease_core::{Admission, Lease, LeaseId, LeaseStore, ListQuery, Money, Status};
//! use lease_store_sqlite::{SqliteStore, SqliteStoreConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("state/leases.db"); // the directory is created
//! let store: Arc<dyn LeaseStore> = Arc::new(SqliteStore::open(SqliteStoreConfig::new(&path)).await?);
//!
//! let now = Utc::now();
//! // Two minutes booked at $0.01/h, and its time is up.
//! let lease = Lease::new(
//!     LeaseId::generate(),
//!     "ada",
//!     "alpine",
//!     "0.01".parse()?,
//!     now - chrono::Duration::minutes(2),
//!     now,
//! );
//! let stored = store.insert(&lease, &Admission::default()).await?;
//! assert_eq!(stored.revision, 1);
//!
//! // A reaper claims the expired lease; nobody else can for 30 seconds.
//! let claimed = store.claim_expired(Utc::now(), 100, Duration::from_secs(30)).await?;
//! assert_eq!(claimed, [stored.clone()]);
//! assert!(store.claim_expired(Utc::now(), 100, Duration::from_secs(30)).await?.is_empty());
//!
//! // Its container is gone: the lease moves to history, in one transaction
//! // with its owner's usage totals.
//! let mut done = claimed[0].clone();
//! done.status = Status::Deleted;
//! done.ended_at = Some(Utc::now());
//! done.final_cost = Some(Money::from_nanos(333_333));
//! store.finish(&done).await?;
//! drop(store);
//!
//! // Everything is still there after a restart.
//! let store = SqliteStore::open(SqliteStoreConfig::new(&path)).await?;
//! assert_eq!(store.usage("ada").await?.ended_cost, Money::from_nanos(333_333));
//! assert_eq!(store.get(&lease.id).await?.status, Status::Deleted);
//! assert!(store.list(&ListQuery::owner("ada")).await?.items.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! Where the file lives: whatever [`SqliteStoreConfig::new`] says; the
//! binaries default to [`default_path`]
//! (`$XDG_STATE_HOME/containerlease/leases.db`, else
//! `~/.local/state/containerlease/leases.db`) and accept `sqlite:` URLs
//! ([`config_from_url`]). The store passes the conformance suite of
//! `lease-core` (feature `test-utils`), directly and through
//! `Arc<dyn LeaseStore>`.
//!
//! The same file keeps the credentials of people who sign in with an
//! identity provider: [`SqliteStore`] implements
//! [`lease_core::CredentialStore`] too (browser sessions and personal
//! tokens, schema version 3), and passes its conformance suite.
#![forbid(unsafe_code)]

mod active;
mod admission;
mod codec;
mod config;
mod credentials;
mod error;
mod history;
mod pool;
mod schema;
mod store;
mod url;
mod worker;
mod writer;

pub use config::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_HISTORY_RETENTION, DEFAULT_READERS, SqliteStoreConfig,
    Synchronous,
};
pub use error::OpenError;
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;
pub use url::{
    URL_SCHEME, UrlError, config_from_url, default_path, default_store_url, is_store_url, url_for,
};
