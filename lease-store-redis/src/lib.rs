//! A [`LeaseStore`](lease_core::LeaseStore) on Redis: shared, durable lease
//! state for several `lease-server` replicas and the CLI.
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{Duration, Utc};
//! use lease_core::{Admission, Lease, LeaseId, LeaseStore, ListQuery, Money, Status};
//! use lease_store_redis::{RedisStore, RedisStoreConfig};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! # let Ok(url) = std::env::var("LEASE_TEST_REDIS_URL") else { return Ok(()) };
//! # let prefix = format!("doctest-{}", LeaseId::generate().short(12));
//! // e.g. url = "redis://127.0.0.1:6379/0", prefix = "containerlease"
//! let config = RedisStoreConfig::new(url).prefix(prefix);
//! let store: Arc<dyn LeaseStore> = Arc::new(RedisStore::connect(config).await?);
//!
//! let now = Utc::now();
//! let rate = "0.01".parse()?;
//! let lease = Lease::new(LeaseId::generate(), "alice", "alpine", rate, now, now + Duration::minutes(5));
//! assert_eq!(lease.estimated_cost, Money::from_nanos(833_333));
//! let stored = store.insert(&lease, &Admission::default()).await?;
//! assert_eq!(stored.revision, 1);
//!
//! // Every change is a compare-and-set on the revision.
//! let mut running = stored.clone();
//! running.status = Status::Running;
//! let running = store.update(&running, &Admission::default()).await?;
//! assert_eq!(running.revision, 2);
//! assert!(store.update(&stored, &Admission::default()).await.is_err()); // stale revision: Conflict
//!
//! let page = store.list(&ListQuery::owner("alice")).await?;
//! assert_eq!(page.items, vec![running]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Key layout
//!
//! Every key starts with `{prefix}:` ([`RedisStoreConfig::prefix`], default
//! `containerlease`). The braces are a Redis Cluster hash tag: all keys of a
//! deployment live in one slot, so the Lua scripts that touch several keys
//! work on Cluster too.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}:lease:<id>` | hash | an active lease: `data` (JSON), `rev`, `due_ms`, `due_ns`, `idx`, `owner`, and its admission weights `charge`, `day`, `cpus`, `memory` |
//! | `{p}:due` | sorted set | active lease ids scored by *claimable time* (ms): max(due time, claim deadline) |
//! | `{p}:claims` | hash | lease id → claim deadline (ms) of leases a reaper holds |
//! | `{p}:active` | sorted set | `<created>:<id>` of every active lease (lexicographic; list paging) |
//! | `{p}:owner:<owner>` | sorted set | the same, for one owner |
//! | `{p}:history:<id>` | string | a finished lease (JSON), expiring at its `ended_at` + the retention |
//! | `{p}:ended` | sorted set | `<ended>:<id>` of finished leases, pruned by the retention |
//! | `{p}:ended-by:<owner>` | sorted set | the same, for one owner |
//! | `{p}:usage:<owner>` | hash | `count` and `cost` (nano-dollars) of the owner's finished leases |
//! | `{p}:capacity` | hash | `nano_cpus` and `memory_mb` summed over the active leases |
//! | `{p}:spend:<owner>` | hash | UTC day number → nano-dollars charged for the owner's leases created that day, active and finished |
//! | `{p}:stats:<day>` | hash | daily statistics of the finished leases created on that UTC day (`YYYY-MM-DD`): `<owner>\x1f<offering>\x1f<counter>` → value, added to by `finish.lua` (`HINCRBY`), never expiring |
//! | `{p}:layout` | string | `2` once the admission counters are kept |
//! | `{p}:session:<sha>` | hash | a browser session by the SHA-256 of its cookie: `data` (JSON), `owner`; expires (`PEXPIREAT`) with the session |
//! | `{p}:sessions-of:<owner>` | sorted set | the owner's session hashes scored by expiry (ms); expires with the owner's last session |
//! | `{p}:sessions` | sorted set | every session hash scored by expiry (ms), for purging |
//! | `{p}:token:<sha>` | hash | a personal token by the SHA-256 of the token: `data` (JSON), `id`, `owner`, `used` (ns, its last use) |
//! | `{p}:token-ids` | hash | personal token id → SHA-256 of the token |
//! | `{p}:tokens-of:<owner>` | sorted set | the owner's token ids scored by expiry (ms, `+inf` for none): the per-owner limit counts it |
//! | `{p}:token-expiry` | sorted set | ids of tokens that expire, scored by expiry (ms), for purging |
//!
//! `<created>`/`<ended>` are times written so that they sort as text (`p` and
//! 25 digits of nanoseconds since the epoch).
//!
//! # Atomicity and clocks
//!
//! Inserts, compare-and-set updates, claims, releases, finishes and page
//! reads are Lua scripts (`src/lua/*.lua`), loaded once and invoked by SHA. `claim_expired`
//! takes every lease whose claimable time has come by the **Redis server's
//! clock** (`TIME`), so replicas with skewed clocks agree, and re-scores it to
//! the claim deadline: a claim that is neither finished nor released by then
//! becomes claimable again, so a crashed replica's work is picked up by
//! another. A compare-and-set update re-scores a lease to max(new due time,
//! current claim deadline).
//!
//! History follows the server's clock too: a finished lease whose `ended_at`
//! is earlier than the server's now − the retention is gone from `history`
//! and `get` (its record expires at `ended_at` + retention, and the history
//! indexes are pruned by that cutoff on every finish and history read); usage
//! totals count every finished lease forever.
//!
//! Paging order: `list` returns the oldest `created_at` first, ties by id
//! ascending; `history` the newest `ended_at` first, ties by id descending.
//!
//! # Credentials
//!
//! [`RedisStore`] implements [`lease_core::CredentialStore`] too, on the
//! same prefix (the `session`/`token` keys above): a token's per-owner
//! limit is counted in the script that stores it, a revocation checks the
//! owner in the script that deletes, and neither a cookie nor a token is
//! stored, only its SHA-256. Sessions expire in Redis by themselves;
//! expired tokens stay listed until `purge_expired`.
//!
//! # Admission
//!
//! [`LeaseStore::insert`](lease_core::LeaseStore::insert) and
//! [`update`](lease_core::LeaseStore::update) check their
//! [`Admission`](lease_core::Admission) in the same script as the write, so
//! replicas racing at a limit cannot all pass it. The figures are counters
//! the write scripts keep: the owner's and all active leases are the sizes
//! of the `owner:<owner>` and `active` indexes, the host's CPUs and memory
//! the `capacity` hash, an owner's spend today the sum of the `spend:<owner>`
//! days from the admission's `day_start` on (whole UTC days: exact for the
//! engine's `day_start`, a UTC midnight). Each active lease keeps what it
//! added (its weights), so an update or finish moves exactly that out.
//! Arithmetic on nano-dollars and nano-CPUs is exact (Lua's doubles are
//! not used for it past 2^53).
//!
//! A database written by the previous version of this store has no
//! counters: the first [`RedisStore::connect`] (or first write) of this
//! version counts its active leases and the finished ones still in history
//! once, and marks the layout. Stop replicas of the previous version first:
//! what they write afterwards is not counted.
//!
//! # Errors
//!
//! Connection failures, timeouts, `LOADING`, `READONLY`, `MASTERDOWN` and
//! cluster-down replies are [`StoreError::Unavailable`](lease_core::StoreError::Unavailable);
//! the connection is re-established by itself, without restarting the store.
//! With a `redis+sentinel://` URL the store asks Sentinel for the primary and
//! asks again after a failover; on a direct URL, a primary demoted to replica
//! (`READONLY`) makes it reconnect (re-resolving the host name).
//! A record that does not decode is [`StoreError::Corrupt`](lease_core::StoreError::Corrupt)
//! with its key; `claim_expired` logs and skips such a record so the rest of
//! its batch is still reaped.
//!
//! See the crate's `README.md` for persistence settings and for running on
//! Sentinel, Cluster or a managed Redis.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod admission;
mod config;
mod error;
mod keys;
mod link;
mod record;
mod stats;
mod store;

pub use config::{
    DEFAULT_HISTORY_RETENTION, DEFAULT_PREFIX, RedisStoreConfig, URL_SCHEMES, is_store_url,
};
pub use store::RedisStore;
