//! Starting the admission counters on a database written by a version of
//! this store that kept none (see `admission.rs`).
//!
//! Once per store, before its first write: if the layout version key is
//! missing, read every active lease and every finished one still in history,
//! compute their weights here (the charge needs lease-core's pricing), and
//! hand them to `upgrade.lua`, which adds them up and sets the version in
//! one step — or answers `retry` if the active set moved since it was read
//! (a replica of the previous version still writing), and we read again.
//! Two replicas upgrading at once are fine: the second finds the version.
//!
//! Replicas of the previous version keep no counters: stop them before
//! starting this one (a lease they insert or finish afterwards is missing
//! from, or stays in, the host's totals).

use chrono::Utc;
use lease_core::{Lease, StoreError};
use redis::ToRedisArgs;

use super::RedisStore;
use super::paging::Index;
use crate::admission::{SPEND_DAYS_KEPT, Weights, utc_day};
use crate::error::{RedisStoreError, other};

/// Reads before giving up when the active set keeps moving.
const ATTEMPTS: u32 = 10;

/// What `upgrade.lua` answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upgraded {
    Done,
    Retry,
}

impl redis::FromRedisValue for Upgraded {
    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        match String::from_redis_value(value)?.as_str() {
            "done" => Ok(Upgraded::Done),
            "retry" => Ok(Upgraded::Retry),
            text => Err(format!("unexpected script reply `{text}`").into()),
        }
    }
}

impl RedisStore {
    /// Makes sure the admission counters are kept (see the module docs);
    /// every write waits for it once.
    pub(super) async fn counters_ready(&self) -> Result<(), StoreError> {
        self.upgraded
            .get_or_try_init(|| self.upgrade())
            .await
            .map(|_| ())
    }

    async fn upgrade(&self) -> Result<(), StoreError> {
        let exists = redis::cmd("EXISTS").arg(self.keys.layout()).take();
        if self
            .link
            .run::<u64>("read the layout version", &exists)
            .await?
            == 1
        {
            return Ok(());
        }
        for _ in 0..ATTEMPTS {
            let active = self.read_all(Index::Active).await?;
            let oldest_day = utc_day(Utc::now()) - SPEND_DAYS_KEPT;
            let finished: Vec<Lease> = self
                .read_all(Index::History)
                .await?
                .into_iter()
                .filter(|lease| utc_day(lease.created_at) >= oldest_day)
                .collect();
            let mut args = (self.keys.base(), active.len(), finished.len()).to_redis_args();
            for lease in &active {
                let (id, owner) = (lease.id.as_str(), &lease.owner);
                args.extend((id, lease.revision, owner, Weights::of(lease)).to_redis_args());
            }
            for lease in &finished {
                let (charge, day) = Weights::of(lease).spend();
                args.extend((&lease.owner, charge, day).to_redis_args());
            }
            let keys = (self.keys.layout(), self.keys.active(), self.keys.capacity());
            let upgraded: Upgraded = self
                .link
                .run_script(
                    "start the admission counters",
                    &self.scripts.upgrade,
                    keys,
                    args,
                )
                .await?;
            if upgraded == Upgraded::Done {
                tracing::info!(
                    prefix = %self.prefix,
                    active = active.len(),
                    finished = finished.len(),
                    "admission counters ready"
                );
                return Ok(());
            }
        }
        Err(other(
            "start the admission counters",
            RedisStoreError::KeptMoving(ATTEMPTS),
        ))
    }

    /// Every lease of `index` (all owners), page by page.
    async fn read_all(&self, index: Index) -> Result<Vec<Lease>, StoreError> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .read_page(
                    index,
                    None,
                    cursor.as_deref(),
                    lease_core::store::MAX_PAGE,
                    |_| true,
                )
                .await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }
}
