//! ContainerLease's lease store on PostgreSQL: for teams that run several
//! servers and already run PostgreSQL.
//!
//! [`PostgresStore`] implements [`lease_core::LeaseStore`] and
//! [`lease_core::CredentialStore`] on one database: every server that
//! connects to it with the same namespace shares the leases, the claims of
//! the reaper (`FOR UPDATE SKIP LOCKED`, by the database's clock), usage
//! totals and credentials. Each namespace keeps its tables in its own
//! PostgreSQL schema (`containerlease_<namespace>`), created and migrated
//! at connect under an advisory lock. See the crate's README for when to
//! choose it over SQLite or Redis.
//!
//! ```
//! use std::time::Duration;
//!
//! use chrono::Utc;
//! use lease_core::{Admission, Lease, LeaseId, LeaseStore, Money, Status};
//! use lease_store_postgres::{PostgresStore, PostgresStoreConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The tests' database (scripts/postgres.sh starts one); skip without it.
//! let Ok(url) = std::env::var("LEASE_TEST_POSTGRES_URL") else { return Ok(()) };
//! let namespace = format!("doc_{}", LeaseId::generate().short(10).to_lowercase());
//! let store = PostgresStore::connect(PostgresStoreConfig::new(url).namespace(&namespace)).await?;
//!
//! let now = Utc::now();
//! let lease = Lease::new(LeaseId::generate(), "ada", "alpine", "0.01".parse()?,
//!                        now - chrono::Duration::minutes(2), now);
//! store.insert(&lease, &Admission::default()).await?;
//! // Due now by the database's clock: one reaper gets it, nobody else.
//! let claimed = store.claim_expired(Utc::now(), 100, Duration::from_secs(30)).await?;
//! assert_eq!(claimed.len(), 1);
//! assert!(store.claim_expired(Utc::now(), 100, Duration::from_secs(30)).await?.is_empty());
//!
//! // Finished: into history, and its cost into usage, in one statement.
//! let mut done = claimed[0].clone();
//! done.status = Status::Deleted;
//! done.ended_at = Some(Utc::now());
//! done.final_cost = Some(Money::from_nanos(333_333));
//! store.finish(&done).await?;
//! assert_eq!(store.usage("ada").await?.ended_cost, Money::from_nanos(333_333));
//! # lease_store_postgres::drop_schema(&store).await?;
//! # Ok(())
//! # }
//! ```
//!
//! TLS: the URL's `sslmode` (`disable`, `prefer` — the default —,
//! `require`, `verify-ca`, `verify-full`) and `sslrootcert=PATH` work as in
//! libpq, on rustls (see the README).
//!
//! Connection loss: every method fails with
//! [`lease_core::StoreError::Unavailable`] while the database is away, and
//! the pool reconnects by itself when it is back.
#![forbid(unsafe_code)]

mod active;
mod admission;
mod codec;
mod config;
mod credentials;
mod error;
mod history;
mod open_transaction;
mod pool;
mod schema;
mod store;
mod tls;
mod url;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HISTORY_RETENTION, DEFAULT_NAMESPACE, DEFAULT_POOL_SIZE,
    PostgresStoreConfig,
};
pub use error::PostgresError;
pub use schema::SCHEMA_VERSION;
pub use store::{PoolStatus, PostgresStore, drop_schema};
pub use url::{URL_SCHEMES, is_store_url, redact};
