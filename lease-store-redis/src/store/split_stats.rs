//! Moving the statistics of the layout before the split (one hash per day
//! with every counter per owner and offering, `{p}:stats:<day>`) into the
//! day totals and span shares (see `stats.rs`).
//!
//! Once per store, before its first statistics read: unless the marker key
//! `{p}:rollup:split` exists, `SCAN` for the old hashes and hand each to
//! `split_stats.lua`, which adds its counters to the new hashes and deletes
//! it in one step (two replicas upgrading at once move each hash once: the
//! second finds it gone), then set the marker. The move is additive, so
//! leases finished meanwhile (written to the new hashes) are not disturbed.
//! Replicas of the previous version write old hashes: stop them before
//! starting this one (what they write after the marker is set is not read).

use chrono::NaiveDate;
use lease_core::StoreError;
use lease_core::stats::{self, SHARE_COUNTERS};

use super::RedisStore;
use crate::error::{RedisStoreError, corrupt};

impl RedisStore {
    /// Makes sure old statistics hashes were moved (see the module docs).
    pub(super) async fn stats_ready(&self) -> Result<(), StoreError> {
        self.stats_split
            .get_or_try_init(|| self.split_stats())
            .await
            .map(|_| ())
    }

    async fn split_stats(&self) -> Result<(), StoreError> {
        let marker = self.keys.stats_split();
        let exists = redis::cmd("EXISTS").arg(&marker).take();
        if self
            .link
            .run::<u64>("read the statistics layout", &exists)
            .await?
            == 1
        {
            return Ok(());
        }
        let pattern = self.keys.legacy_stats_pattern();
        let (mut cursor, mut moved) = (0_u64, 0_u64);
        loop {
            let scan = redis::cmd("SCAN")
                .arg((cursor, "MATCH", &pattern, "COUNT", 1000))
                .take();
            let (next, keys): (u64, Vec<String>) =
                self.link.run("scan old statistics", &scan).await?;
            for key in keys {
                moved += self.split_one(&key).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let set = redis::cmd("SET").arg((&marker, 1)).take();
        self.link
            .run::<()>("mark the statistics layout", &set)
            .await?;
        tracing::info!(prefix = %self.prefix, fields = moved, "statistics moved to the split rollup");
        Ok(())
    }

    /// Moves one old day hash; returns how many fields it held.
    async fn split_one(&self, key: &str) -> Result<u64, StoreError> {
        let day: NaiveDate = key
            .rsplit(':')
            .next()
            .and_then(|day| day.parse().ok())
            .ok_or_else(|| corrupt(key.to_owned(), RedisStoreError::StatsField(key.to_owned())))?;
        let mut keys = vec![key.to_owned(), self.keys.stats_day(day)];
        keys.extend(
            stats::spans_of(day)
                .into_iter()
                .map(|span| self.keys.stats_span(span)),
        );
        self.link
            .run_script(
                "move old statistics",
                &self.scripts.split_stats,
                keys,
                SHARE_COUNTERS.as_slice(),
            )
            .await
    }
}
