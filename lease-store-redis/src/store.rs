//! [`RedisStore`]: the [`LeaseStore`] port on Redis.
//!
//! Each method is one request through [`Link::run`] — a script with its keys
//! and arguments, or a plain command — whose reply converts to a typed value:
//! an [`Outcome`] for the scripts that write a lease, records that
//! [`decode`] checks against their key, numbers.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lease_core::{
    HistoryQuery, Lease, LeaseId, LeaseStore, ListQuery, Money, Page, StoreError, UsageTotals,
};
use redis::Script;

use crate::config::RedisStoreConfig;
use crate::error::{RedisStoreError, other};
use crate::keys::{Keys, ceil_millis, due_time, member};
use crate::link::Link;
use crate::record::{ActiveFields, Outcome, counter, decode, encode};

mod paging;

use paging::Index;

/// The Lua scripts, loaded once per server and invoked by SHA.
struct Scripts {
    insert: Script,
    update: Script,
    finish: Script,
    claim: Script,
    release: Script,
    next_due: Script,
    page: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            insert: Script::new(include_str!("lua/insert.lua")),
            update: Script::new(include_str!("lua/update.lua")),
            finish: Script::new(include_str!("lua/finish.lua")),
            claim: Script::new(include_str!("lua/claim.lua")),
            release: Script::new(include_str!("lua/release.lua")),
            next_due: Script::new(include_str!("lua/next_due.lua")),
            page: Script::new(include_str!("lua/page.lua")),
        }
    }
}

/// A [`LeaseStore`] on Redis, shared by every replica that uses the same
/// Redis and key prefix.
///
/// Cheap to share behind an `Arc`; one multiplexed connection, re-established
/// automatically after Redis restarts or the network drops (calls made while
/// it is down fail with [`StoreError::Unavailable`]). See the crate docs for
/// the key layout and the durability each Redis persistence setting gives.
pub struct RedisStore {
    link: Link,
    keys: Keys,
    prefix: String,
    /// How long a finished lease stays in history after its `ended_at`.
    retention_ms: i64,
    scripts: Scripts,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("retention_ms", &self.retention_ms)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to Redis and checks it answers; fails with
    /// [`StoreError::Unavailable`] if it cannot be reached.
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let store = Self::connect_lazy(config)?;
        store.ping().await?;
        Ok(store)
    }

    /// Prepares the store without connecting: the first call connects (and
    /// fails with [`StoreError::Unavailable`] while Redis is down). Must be
    /// called inside a Tokio runtime.
    pub fn connect_lazy(config: RedisStoreConfig) -> Result<Self, StoreError> {
        config.validate().map_err(|error| StoreError::Other {
            operation: "configure the Redis store".to_owned(),
            source: Box::new(error),
        })?;
        Ok(RedisStore {
            link: Link::new(&config)?,
            keys: Keys::new(&config.prefix),
            retention_ms: i64::try_from(config.history_retention.as_millis()).unwrap_or(i64::MAX),
            prefix: config.prefix,
            scripts: Scripts::new(),
        })
    }

    /// The key prefix (every key starts with `{prefix}:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key of this store's prefix (with `SCAN`, in batches).
    /// For tests and for decommissioning a deployment; not atomic.
    pub async fn delete_all(&self) -> Result<u64, StoreError> {
        let pattern = self.keys.all();
        let (mut cursor, mut deleted) = (0_u64, 0_u64);
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .link
                .run(
                    "scan keys",
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500),
                )
                .await?;
            if !keys.is_empty() {
                let unlinked: u64 = self
                    .link
                    .run("delete keys", redis::cmd("UNLINK").arg(&keys))
                    .await?;
                deleted += unlinked;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// `lease` as a compare-and-set stores it: with the next revision.
fn next_revision(lease: &Lease) -> Result<Lease, StoreError> {
    let revision = lease.revision.checked_add(1).ok_or_else(|| {
        other(
            "update a lease",
            RedisStoreError::RevisionOverflow(lease.revision),
        )
    })?;
    Ok(Lease {
        revision,
        ..lease.clone()
    })
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl LeaseStore for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.link.run("ping", &redis::cmd("PING")).await?;
        Ok(())
    }

    async fn insert(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let stored = Lease {
            revision: 1,
            ..lease.clone()
        };
        let id = stored.id.as_str();
        let outcome: Outcome = self
            .link
            .run(
                "insert a lease",
                self.scripts
                    .insert
                    .key(self.keys.lease(id))
                    .key(self.keys.history(id))
                    .key(self.keys.due())
                    .key(self.keys.active())
                    .key(self.keys.owner(&stored.owner))
                    .key(self.keys.claims())
                    .arg(id)
                    .arg(ActiveFields::of(&stored)?),
            )
            .await?;
        outcome.check(&stored.id, None)?;
        tracing::debug!(lease_id = %stored.id, owner = %stored.owner, "lease stored");
        Ok(stored)
    }

    async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError> {
        let lease_key = self.keys.lease(id.as_str());
        let history_key = self.keys.history(id.as_str());
        let records: (Option<Vec<u8>>, Option<Vec<u8>>) = self
            .link
            .run(
                "read a lease",
                redis::pipe()
                    .cmd("HGET")
                    .arg(&lease_key)
                    .arg("data")
                    .cmd("GET")
                    .arg(&history_key),
            )
            .await?;
        match records {
            (Some(data), _) => decode(lease_key, &data, id.as_str()),
            (None, Some(data)) => decode(history_key, &data, id.as_str()),
            (None, None) => Err(StoreError::NotFound(id.clone())),
        }
    }

    async fn update(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let stored = next_revision(lease)?;
        let id = stored.id.as_str();
        let outcome: Outcome = self
            .link
            .run(
                "update a lease",
                self.scripts
                    .update
                    .key(self.keys.lease(id))
                    .key(self.keys.due())
                    .key(self.keys.claims())
                    .key(self.keys.active())
                    .key(self.keys.owner(&stored.owner))
                    .arg(id)
                    .arg(lease.revision)
                    .arg(ActiveFields::of(&stored)?)
                    .arg(self.keys.base()),
            )
            .await?;
        outcome.check(&stored.id, Some(lease.revision))?;
        Ok(stored)
    }

    async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
        let index = match &query.owner {
            Some(owner) => self.keys.owner(owner),
            None => self.keys.active(),
        };
        let limit = query.effective_limit();
        self.read_page(
            Index::Active,
            &index,
            query.cursor.as_deref(),
            limit,
            |lease| query.matches(lease),
        )
        .await
    }

    async fn claim_expired(
        &self,
        _now: DateTime<Utc>,
        limit: usize,
        claim_ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let records: Vec<(Vec<u8>, Vec<u8>)> = self
            .link
            .run(
                "claim due leases",
                self.scripts
                    .claim
                    .key(self.keys.due())
                    .key(self.keys.claims())
                    .arg(limit)
                    .arg(ttl_millis(claim_ttl))
                    .arg(self.keys.base()),
            )
            .await?;
        let claimed: Vec<Lease> = records
            .into_iter()
            .filter_map(|(id, data)| {
                let id = String::from_utf8_lossy(&id);
                let key = self.keys.lease(&id);
                decode(key.clone(), &data, &id)
                    // Stays claimed until the claim lapses, then shows up
                    // (and is reported) again; the rest of the batch goes on.
                    .inspect_err(|error| {
                        tracing::error!(
                            lease_id = %id,
                            key = %key,
                            error = %lease_core::error::error_chain(error),
                            "skipping a corrupt lease record"
                        );
                    })
                    .ok()
            })
            .collect();
        if !claimed.is_empty() {
            tracing::debug!(count = claimed.len(), "claimed due leases");
        }
        Ok(claimed)
    }

    async fn release(&self, id: &LeaseId, retry_at: DateTime<Utc>) -> Result<(), StoreError> {
        let outcome: Outcome = self
            .link
            .run(
                "release a claim",
                self.scripts
                    .release
                    .key(self.keys.lease(id.as_str()))
                    .key(self.keys.due())
                    .key(self.keys.claims())
                    .arg(id.as_str())
                    .arg(ceil_millis(retry_at)),
            )
            .await?;
        outcome.check(id, None)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let first: Option<(i64, Option<String>)> = self
            .link
            .run(
                "read the next due time",
                self.scripts
                    .next_due
                    .key(self.keys.due())
                    .arg(self.keys.base()),
            )
            .await?;
        Ok(first.map(|(score_ms, due_ns)| due_time(score_ms, due_ns.as_deref())))
    }

    async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let stored = next_revision(lease)?;
        let id = stored.id.as_str();
        let ended = stored.ended_at.unwrap_or_else(Utc::now);
        let outcome: Outcome = self
            .link
            .run(
                "finish a lease",
                self.scripts
                    .finish
                    .key(self.keys.lease(id))
                    .key(self.keys.due())
                    .key(self.keys.claims())
                    .key(self.keys.active())
                    .key(self.keys.history(id))
                    .key(self.keys.ended())
                    .key(self.keys.ended_by(&stored.owner))
                    .key(self.keys.usage(&stored.owner))
                    .arg(id)
                    .arg(lease.revision)
                    .arg(encode(&stored)?)
                    .arg(member(ended, &stored.id))
                    .arg(stored.final_cost.unwrap_or(Money::ZERO).nanos())
                    .arg(ceil_millis(ended).saturating_add(self.retention_ms))
                    .arg(self.retention_ms)
                    .arg(self.keys.base()),
            )
            .await?;
        outcome.check(&stored.id, Some(lease.revision))?;
        tracing::debug!(lease_id = %stored.id, owner = %stored.owner, "lease finished");
        Ok(stored)
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError> {
        let index = match &query.owner {
            Some(owner) => self.keys.ended_by(owner),
            None => self.keys.ended(),
        };
        let limit = query.effective_limit();
        self.read_page(
            Index::History,
            &index,
            query.cursor.as_deref(),
            limit,
            |_| true,
        )
        .await
    }

    async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError> {
        let key = self.keys.usage(owner);
        let (count, cost): (Option<String>, Option<String>) = self
            .link
            .run(
                "read usage totals",
                redis::cmd("HMGET").arg(&key).arg("count").arg("cost"),
            )
            .await?;
        Ok(UsageTotals {
            ended_count: counter(&key, count)?,
            ended_cost: Money::from_nanos(counter(&key, cost)?),
        })
    }
}
