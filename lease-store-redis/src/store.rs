//! [`RedisStore`]: the [`LeaseStore`] port on Redis.
//!
//! Each method is one request through [`Link::run`] — a script with its keys
//! and arguments, or a plain command — whose reply converts to a typed value:
//! an [`Outcome`] for the scripts that write a lease, records that
//! [`decode`] checks against their key, numbers.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use lease_core::stats::{self as rollup, StatsRow, day_of, finish_contribution};
use lease_core::{
    Admission, HistoryQuery, Lease, LeaseId, LeaseStore, ListQuery, Money, Page, PoolSlot,
    SlotState, StoreError, UsageTotals,
};
use redis::Script;
use tokio::sync::OnceCell;

use crate::admission::{
    Admitted, InsertLimits, Weights, insert_refusal, update_limits, update_refusal,
};
use crate::config::RedisStoreConfig;
use crate::error::{RedisStoreError, other};
use crate::keys::{Keys, ceil_millis, due_time, member};
use crate::link::Link;
use crate::record::{ActiveFields, Outcome, counter, decode, encode};
use crate::stats;

mod credentials;
mod paging;
mod pool;
mod split_stats;
mod upgrade;

use credentials::CredentialScripts;
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
    upgrade: Script,
    split_stats: Script,
}

/// A script that keeps the admission counters: `lua/lib/admission.lua`
/// (Lua has no `require` in Redis), then its own file.
macro_rules! admitting_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/lib/admission.lua"),
            include_str!($file)
        ))
    };
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            insert: admitting_script!("lua/insert.lua"),
            update: admitting_script!("lua/update.lua"),
            finish: admitting_script!("lua/finish.lua"),
            claim: Script::new(include_str!("lua/claim.lua")),
            release: Script::new(include_str!("lua/release.lua")),
            next_due: Script::new(include_str!("lua/next_due.lua")),
            page: Script::new(include_str!("lua/page.lua")),
            upgrade: Script::new(include_str!("lua/upgrade.lua")),
            split_stats: Script::new(include_str!("lua/split_stats.lua")),
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
    /// The scripts of [`lease_core::CredentialStore`] (`credentials.rs`).
    credential_scripts: CredentialScripts,
    /// Set once the admission counters are known to be kept (`upgrade.rs`).
    upgraded: OnceCell<()>,
    /// Set once old statistics hashes were moved (`store/split_stats.rs`).
    stats_split: OnceCell<()>,
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
    /// [`StoreError::Unavailable`] if it cannot be reached. On a database
    /// written by a version of this store that kept no admission counters,
    /// starts them (see the crate docs).
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let store = Self::connect_lazy(config)?;
        store.ping().await?;
        store.counters_ready().await?;
        store.stats_ready().await?;
        Ok(store)
    }

    /// Prepares the store without connecting: the first call connects (and
    /// fails with [`StoreError::Unavailable`] while Redis is down), and the
    /// first write starts the admission counters if needed. Must be called
    /// inside a Tokio runtime.
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
            credential_scripts: CredentialScripts::new(),
            upgraded: OnceCell::new(),
            stats_split: OnceCell::new(),
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
            let scan = redis::cmd("SCAN")
                .arg((cursor, "MATCH", &pattern, "COUNT", 500))
                .take();
            let (next, keys): (u64, Vec<String>) = self.link.run("scan keys", &scan).await?;
            if !keys.is_empty() {
                let unlink = redis::cmd("UNLINK").arg(&keys).take();
                deleted += self.link.run::<u64>("delete keys", &unlink).await?;
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

    async fn insert(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        self.counters_ready().await?;
        let stored = Lease {
            revision: 1,
            ..lease.clone()
        };
        let (k, id, owner) = (&self.keys, stored.id.as_str(), &stored.owner);
        let keys = (
            k.active_lease(id, owner),
            k.history(id),
            (k.capacity(), k.spend(owner), k.layout()),
        );
        let args = (
            id,
            ActiveFields::of(&stored)?,
            Weights::of(&stored),
            InsertLimits::new(admission, &stored),
        );
        let admitted: Admitted = self
            .link
            .run_script("insert a lease", &self.scripts.insert, keys, args)
            .await?;
        match admitted {
            Admitted::Outcome(outcome) => outcome.check(&stored.id, None)?,
            Admitted::Refused(figures) => {
                let error = insert_refusal(&figures, admission, &stored);
                tracing::debug!(lease_id = %stored.id, owner = %stored.owner, %error, "lease refused");
                return Err(error);
            }
        }
        tracing::debug!(lease_id = %stored.id, owner = %stored.owner, "lease stored");
        Ok(stored)
    }

    async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError> {
        let lease_key = self.keys.lease(id.as_str());
        let history_key = self.keys.history(id.as_str());
        let mut read = redis::pipe();
        read.hget(&lease_key, "data").get(&history_key);
        let records: (Option<Vec<u8>>, Option<Vec<u8>>) =
            self.link.run("read a lease", &read).await?;
        match records {
            (Some(data), _) => decode(lease_key, &data, id.as_str()),
            (None, Some(data)) => decode(history_key, &data, id.as_str()),
            (None, None) => Err(StoreError::NotFound(id.clone())),
        }
    }

    async fn update(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        self.counters_ready().await?;
        let stored = next_revision(lease)?;
        let (k, id, owner) = (&self.keys, stored.id.as_str(), &stored.owner);
        let keys = (k.active_lease(id, owner), k.capacity(), k.spend(owner));
        let args = (
            (id, lease.revision, ActiveFields::of(&stored)?, k.base()),
            Weights::of(&stored),
            update_limits(admission, &stored),
        );
        let admitted: Admitted = self
            .link
            .run_script("update a lease", &self.scripts.update, keys, args)
            .await?;
        match admitted {
            Admitted::Outcome(outcome) => outcome.check(&stored.id, Some(lease.revision))?,
            Admitted::Refused(figures) => {
                return Err(update_refusal(&figures, admission, k.lease(id), lease));
            }
        }
        Ok(stored)
    }

    async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
        let (owner, cursor) = (query.owner.as_deref(), query.cursor.as_deref());
        let limit = query.effective_limit();
        self.read_page(Index::Active, owner, cursor, limit, |lease| {
            query.matches(lease)
        })
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
        let keys = (self.keys.due(), self.keys.claims());
        let args = (limit, ttl_millis(claim_ttl), self.keys.base());
        let records: Vec<(Vec<u8>, Vec<u8>)> = self
            .link
            .run_script("claim due leases", &self.scripts.claim, keys, args)
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
        let k = &self.keys;
        let keys = (k.lease(id.as_str()), k.due(), k.claims());
        let args = (id.as_str(), ceil_millis(retry_at));
        let outcome: Outcome = self
            .link
            .run_script("release a claim", &self.scripts.release, keys, args)
            .await?;
        outcome.check(id, None)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (keys, args) = (self.keys.due(), self.keys.base());
        let first: Option<(i64, Option<String>)> = self
            .link
            .run_script("read the next due time", &self.scripts.next_due, keys, args)
            .await?;
        Ok(first.map(|(score_ms, due_ns)| due_time(score_ms, due_ns.as_deref())))
    }

    async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError> {
        self.counters_ready().await?;
        let stored = next_revision(lease)?;
        let (k, id, owner) = (&self.keys, stored.id.as_str(), &stored.owner);
        let ended = stored.ended_at.unwrap_or_else(Utc::now);
        // The history record is kept until its end + the retention.
        let kept_until_ms = ceil_millis(ended).saturating_add(self.retention_ms);
        let cost = stored.final_cost.unwrap_or(Money::ZERO).nanos();
        let keys = (
            (k.lease(id), k.due(), k.claims(), k.active()),
            (k.history(id), k.ended(), k.ended_by(owner), k.usage(owner)),
            (
                k.capacity(),
                k.spend(owner),
                k.stats_day(day_of(stored.created_at)),
            ),
            rollup::spans_of(day_of(stored.created_at))
                .into_iter()
                .map(|span| k.stats_span(span))
                .collect::<Vec<_>>(),
        );
        let json = encode(&stored)?;
        let record = (json, member(ended, &stored.id), cost, kept_until_ms);
        let spend = Weights::of(&stored).spend();
        let args = (
            id,
            lease.revision,
            record,
            self.retention_ms,
            k.base(),
            spend,
            stats::finish_args(&finish_contribution(&stored)),
        );
        let outcome: Outcome = self
            .link
            .run_script("finish a lease", &self.scripts.finish, keys, args)
            .await?;
        outcome.check(&stored.id, Some(lease.revision))?;
        tracing::debug!(lease_id = %stored.id, owner = %stored.owner, "lease finished");
        Ok(stored)
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError> {
        let (owner, cursor) = (query.owner.as_deref(), query.cursor.as_deref());
        let limit = query.effective_limit();
        self.read_page(Index::History, owner, cursor, limit, |_| true)
            .await
    }

    async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError> {
        let key = self.keys.usage(owner);
        let read = redis::cmd("HMGET").arg((&key, "count", "cost")).take();
        let (count, cost): (Option<String>, Option<String>) =
            self.link.run("read usage totals", &read).await?;
        Ok(UsageTotals {
            ended_count: counter(&key, count)?,
            ended_cost: Money::from_nanos(counter(&key, cost)?),
        })
    }

    async fn daily_stats(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError> {
        rollup::check_range(from, to)?;
        self.stats_ready().await?;
        let days: Vec<NaiveDate> = rollup::days(from, to).collect();
        let mut pipeline = redis::pipe();
        for day in &days {
            pipeline.cmd("HGETALL").arg(self.keys.stats_day(*day));
        }
        let hashes: Vec<BTreeMap<String, String>> = self
            .link
            .run("read the daily statistics", &pipeline)
            .await?;
        let mut rows = Vec::new();
        for (day, hash) in days.into_iter().zip(hashes) {
            if !hash.is_empty() {
                rows.push(stats::day_totals(&self.keys.stats_day(day), day, hash)?);
            }
        }
        Ok(rows)
    }

    async fn share_stats(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError> {
        rollup::check_range(from, to)?;
        self.stats_ready().await?;
        let keys: Vec<String> = rollup::cover(from, to)
            .into_iter()
            .map(|span| self.keys.stats_span(span))
            .collect();
        let mut pipeline = redis::pipe();
        for key in &keys {
            pipeline.cmd("HGETALL").arg(key);
        }
        let hashes: Vec<BTreeMap<String, String>> = self
            .link
            .run("read the statistics shares", &pipeline)
            .await?;
        let mut rows = Vec::new();
        for (key, hash) in keys.iter().zip(hashes) {
            rows.extend(stats::rows_of_hash(key, from, hash)?);
        }
        Ok(rollup::sum_shares(from, rows))
    }

    async fn pool_add(&self, slot: &PoolSlot, target: usize) -> Result<bool, StoreError> {
        self.add_slot(slot, target).await
    }

    async fn pool_ready(&self, slot_id: &str, container_id: &str) -> Result<bool, StoreError> {
        self.ready_slot(slot_id, container_id).await
    }

    async fn pool_take(
        &self,
        offering: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<lease_core::pool::Taken>, StoreError> {
        self.counters_ready().await?;
        self.take_slot(offering, lease, now).await
    }

    async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        self.all_slots().await
    }

    async fn pool_drop(&self, slot_id: &str, state: SlotState) -> Result<bool, StoreError> {
        self.drop_slot(slot_id, state).await
    }
}
