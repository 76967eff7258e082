//! [`RedisStore`]: the [`LeaseStore`] port on Redis.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lease_core::{
    HistoryQuery, Lease, LeaseId, LeaseStore, ListQuery, Money, Page, StoreError, UsageTotals,
};
use redis::Script;

use crate::config::RedisStoreConfig;
use crate::error::{RedisStoreError, corrupt, other};
use crate::keys::{Keys, ceil_millis, member, nanos, time_key};
use crate::link::{Conn, Link};

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
    retention_ms: u64,
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

/// What a compare-and-set script answered.
enum CasReply {
    Ok,
    NotFound,
    Conflict,
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
        let link = Link::new(&config)?;
        Ok(RedisStore {
            link,
            keys: Keys::new(&config.prefix),
            prefix: config.prefix,
            retention_ms: u64::try_from(config.history_retention.as_millis()).unwrap_or(u64::MAX),
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
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let pattern = format!("{}*", glob_escape(self.keys.base()));
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(|error| self.link.fail(generation, "scan keys", error))?;
            if !keys.is_empty() {
                let removed: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(|error| self.link.fail(generation, "delete keys", error))?;
                deleted += removed;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn decode(&self, key: String, data: &[u8], id: Option<&str>) -> Result<Lease, StoreError> {
        let lease: Lease = match serde_json::from_slice(data) {
            Ok(lease) => lease,
            Err(error) => return Err(corrupt(key, error)),
        };
        if let Some(expected) = id
            && lease.id.as_str() != expected
        {
            let found = lease.id.to_string();
            return Err(corrupt(
                key,
                RedisStoreError::WrongId {
                    expected: expected.to_owned(),
                    found,
                },
            ));
        }
        Ok(lease)
    }

    /// Runs a compare-and-set script's reply through the common mapping.
    fn cas_reply(script: &'static str, reply: Vec<String>) -> Result<CasReply, StoreError> {
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(CasReply::Ok),
            Some("notfound") => Ok(CasReply::NotFound),
            Some("conflict") => Ok(CasReply::Conflict),
            _ => Err(other(
                script,
                RedisStoreError::UnexpectedReply {
                    script,
                    reply: format!("{reply:?}"),
                },
            )),
        }
    }

    /// Fetches the `data` field of each lease hash (or each history record)
    /// in one round trip.
    async fn fetch_records(
        &self,
        ids: &[&str],
        history: bool,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            if history {
                pipe.cmd("GET").arg(self.keys.history(id));
            } else {
                pipe.cmd("HGET").arg(self.keys.lease(id)).arg("data");
            }
        }
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        pipe.query_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "read leases", error))
    }
}

/// Escapes the glob characters of a `SCAN MATCH` pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn encode(lease: &Lease) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(lease).map_err(|error| StoreError::Other {
        operation: "encode a lease".to_owned(),
        source: Box::new(error),
    })
}

fn next_revision(revision: u64) -> Result<u64, StoreError> {
    revision.checked_add(1).ok_or_else(|| {
        other(
            "update a lease",
            RedisStoreError::RevisionOverflow(revision),
        )
    })
}

/// A millisecond timestamp as a time.
fn from_millis(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A nanosecond timestamp as a time, if in range.
fn from_nanos(ns: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(ns.rem_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, sub)
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl LeaseStore for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "ping", error))?;
        Ok(())
    }

    async fn insert(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let mut stored = lease.clone();
        stored.revision = 1;
        let data = encode(&stored)?;
        let id = stored.id.as_str();
        let due = stored.due_at();
        let idx = member(stored.created_at, &stored.id);
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let reply: String = self
            .scripts
            .insert
            .key(self.keys.lease(id))
            .key(self.keys.history(id))
            .key(self.keys.due())
            .key(self.keys.active())
            .key(self.keys.owner(&stored.owner))
            .key(self.keys.claims())
            .arg(id)
            .arg(data)
            .arg(stored.revision)
            .arg(ceil_millis(due))
            .arg(nanos(due).to_string())
            .arg(idx)
            .arg(&stored.owner)
            .invoke_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "insert a lease", error))?;
        match reply.as_str() {
            "ok" => {
                tracing::debug!(lease_id = %stored.id, owner = %stored.owner, "lease stored");
                Ok(stored)
            }
            "exists" => Err(StoreError::AlreadyExists(stored.id)),
            _ => Err(other(
                "insert a lease",
                RedisStoreError::UnexpectedReply {
                    script: "insert",
                    reply,
                },
            )),
        }
    }

    async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError> {
        let lease_key = self.keys.lease(id.as_str());
        let history_key = self.keys.history(id.as_str());
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let (active, finished): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::pipe()
            .cmd("HGET")
            .arg(&lease_key)
            .arg("data")
            .cmd("GET")
            .arg(&history_key)
            .query_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "read a lease", error))?;
        match (active, finished) {
            (Some(data), _) => self.decode(lease_key, &data, Some(id.as_str())),
            (None, Some(data)) => self.decode(history_key, &data, Some(id.as_str())),
            (None, None) => Err(StoreError::NotFound(id.clone())),
        }
    }

    async fn update(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let mut stored = lease.clone();
        stored.revision = next_revision(lease.revision)?;
        let data = encode(&stored)?;
        let id = stored.id.as_str();
        let due = stored.due_at();
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let reply: Vec<String> = self
            .scripts
            .update
            .key(self.keys.lease(id))
            .key(self.keys.due())
            .key(self.keys.claims())
            .key(self.keys.active())
            .key(self.keys.owner(&stored.owner))
            .arg(id)
            .arg(lease.revision)
            .arg(stored.revision)
            .arg(data)
            .arg(ceil_millis(due))
            .arg(nanos(due).to_string())
            .arg(member(stored.created_at, &stored.id))
            .arg(&stored.owner)
            .arg(self.keys.base())
            .invoke_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "update a lease", error))?;
        match Self::cas_reply("update", reply)? {
            CasReply::Ok => Ok(stored),
            CasReply::NotFound => Err(StoreError::NotFound(stored.id)),
            CasReply::Conflict => Err(StoreError::Conflict {
                id: stored.id,
                expected: lease.revision,
            }),
        }
    }

    async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
        let index = match &query.owner {
            Some(owner) => self.keys.owner(owner),
            None => self.keys.active(),
        };
        let cursor = query.cursor.as_deref();
        let limit = query.effective_limit();
        self.read_page(Index::Active, &index, cursor, limit, |lease| {
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
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let reply: Vec<Vec<u8>> = self
            .scripts
            .claim
            .key(self.keys.due())
            .key(self.keys.claims())
            .arg(limit)
            .arg(ttl_millis(claim_ttl))
            .arg(self.keys.base())
            .invoke_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "claim due leases", error))?;
        let mut claimed = Vec::with_capacity(reply.len() / 2);
        for pair in reply.chunks(2) {
            let [id, data] = pair else { continue };
            let id = String::from_utf8_lossy(id);
            let key = self.keys.lease(&id);
            match self.decode(key.clone(), data, Some(&id)) {
                Ok(lease) => claimed.push(lease),
                // Stays claimed until the claim lapses, then shows up (and is
                // reported) again; the other leases of the batch go on.
                Err(error) => tracing::error!(
                    lease_id = %id,
                    key = %key,
                    error = %lease_core::error::error_chain(&error),
                    "skipping a corrupt lease record"
                ),
            }
        }
        if !claimed.is_empty() {
            tracing::debug!(count = claimed.len(), "claimed due leases");
        }
        Ok(claimed)
    }

    async fn release(&self, id: &LeaseId, retry_at: DateTime<Utc>) -> Result<(), StoreError> {
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let reply: String = self
            .scripts
            .release
            .key(self.keys.lease(id.as_str()))
            .key(self.keys.due())
            .key(self.keys.claims())
            .arg(id.as_str())
            .arg(ceil_millis(retry_at))
            .invoke_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "release a claim", error))?;
        match reply.as_str() {
            "ok" => Ok(()),
            "notfound" => Err(StoreError::NotFound(id.clone())),
            _ => Err(other(
                "release a claim",
                RedisStoreError::UnexpectedReply {
                    script: "release",
                    reply,
                },
            )),
        }
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let reply: Option<Vec<String>> = self
            .scripts
            .next_due
            .key(self.keys.due())
            .arg(self.keys.base())
            .invoke_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "read the next due time", error))?;
        let Some(reply) = reply else { return Ok(None) };
        let [score, due_ns] = reply.as_slice() else {
            return Err(other(
                "read the next due time",
                RedisStoreError::UnexpectedReply {
                    script: "next_due",
                    reply: format!("{reply:?}"),
                },
            ));
        };
        let score: f64 = score.parse().map_err(|_| {
            other(
                "read the next due time",
                RedisStoreError::NotANumber(score.clone()),
            )
        })?;
        // Scores are whole milliseconds well inside f64's exact range.
        #[allow(clippy::cast_possible_truncation)]
        let score_ms = score as i64;
        // The exact due time when the score is that time rounded up (no
        // claim pushed it later); otherwise the score itself.
        let exact = due_ns
            .parse::<i128>()
            .ok()
            .and_then(from_nanos)
            .filter(|due| ceil_millis(*due) == score_ms);
        Ok(Some(exact.unwrap_or_else(|| from_millis(score_ms))))
    }

    async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let mut stored = lease.clone();
        stored.revision = next_revision(lease.revision)?;
        let data = encode(&stored)?;
        let id = stored.id.as_str();
        let ended = stored.ended_at.unwrap_or_else(Utc::now);
        let cost = stored.final_cost.unwrap_or(Money::ZERO);
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let reply: Vec<String> = self
            .scripts
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
            .arg(data)
            .arg(member(ended, &stored.id))
            .arg(cost.nanos())
            .arg(self.retention_ms)
            .arg(self.keys.base())
            .invoke_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "finish a lease", error))?;
        match Self::cas_reply("finish", reply)? {
            CasReply::Ok => {
                tracing::debug!(lease_id = %stored.id, owner = %stored.owner, "lease finished");
                Ok(stored)
            }
            CasReply::NotFound => Err(StoreError::NotFound(stored.id)),
            CasReply::Conflict => Err(StoreError::Conflict {
                id: stored.id,
                expected: lease.revision,
            }),
        }
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError> {
        let index = match &query.owner {
            Some(owner) => self.keys.ended_by(owner),
            None => self.keys.ended(),
        };
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        // Entries that ended before the retention window are dropped first
        // (their records expire on their own).
        let retention =
            chrono::Duration::milliseconds(i64::try_from(self.retention_ms).unwrap_or(i64::MAX));
        if let Some(cutoff) = Utc::now().checked_sub_signed(retention) {
            let _: u64 = redis::cmd("ZREMRANGEBYLEX")
                .arg(&index)
                .arg("-")
                .arg(format!("({}", time_key(cutoff)))
                .query_async(&mut conn)
                .await
                .map_err(|error| self.link.fail(generation, "prune history", error))?;
        }
        let cursor = query.cursor.as_deref();
        let limit = query.effective_limit();
        self.read_page(Index::History, &index, cursor, limit, |_| true)
            .await
    }

    async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError> {
        let key = self.keys.usage(owner);
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        let (count, cost): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&key)
            .arg("count")
            .arg("cost")
            .query_async(&mut conn)
            .await
            .map_err(|error| self.link.fail(generation, "read usage totals", error))?;
        let ended_count = match count {
            Some(text) => text
                .parse()
                .map_err(|_| corrupt(key.clone(), RedisStoreError::NotANumber(text)))?,
            None => 0,
        };
        let ended_cost = match cost {
            Some(text) => Money::from_nanos(
                text.parse()
                    .map_err(|_| corrupt(key.clone(), RedisStoreError::NotANumber(text)))?,
            ),
            None => Money::ZERO,
        };
        Ok(UsageTotals {
            ended_count,
            ended_cost,
        })
    }
}
