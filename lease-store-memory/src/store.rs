//! [`MemoryStore`]: the [`LeaseStore`] port in process memory.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use lease_core::pool::Taken;
use lease_core::stats::{self, StatsRow};
use lease_core::store::{
    DEFAULT_HISTORY_RETENTION, HistoryQuery, LeaseStore, ListQuery, Page, UsageTotals,
};
use lease_core::{Admission, Clock, Lease, LeaseId, PoolSlot, SlotState, StoreError, SystemClock};

use crate::index::{Leases, nanos};

/// A [`LeaseStore`] in process memory, for one process.
///
/// Every operation takes one lock and is atomic. Active leases are indexed
/// by the time they can next be claimed (`max(due_at, claim end)`), so
/// [`LeaseStore::claim_expired`] costs O(log n + k) for k claimed leases and
/// [`LeaseStore::next_due`] O(log n); listing one owner's leases walks only
/// that owner's index. Nothing survives the process: after a restart the
/// engine's reconciler decides what to do with containers it no longer knows.
///
/// `claim_expired` uses the caller's `now`, so it works with a manual clock.
///
/// History is bounded by time: a finished lease whose `ended_at` is more
/// than the retention ([`DEFAULT_HISTORY_RETENTION`], 7 days, unless
/// [`MemoryStore::with_history_retention`] says otherwise) before the
/// store's now is gone from `history` and `get`; usage totals are kept
/// forever, and so are the daily statistics rows (one per day, owner and
/// offering, added to by `finish` under the same lock). The store's now is the system clock, or the clock given to
/// [`MemoryStore::with_clock`].
pub struct MemoryStore {
    leases: Mutex<Leases>,
    /// Browser sessions and personal tokens ([`lease_core::CredentialStore`]).
    pub(crate) credentials: Mutex<crate::credentials::Credentials>,
    /// History retention in nanoseconds (saturating).
    retention: i64,
    /// The store's now, for the history retention.
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_history_retention(DEFAULT_HISTORY_RETENTION)
    }
}

impl MemoryStore {
    /// An empty store keeping history for [`DEFAULT_HISTORY_RETENTION`].
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store keeping a finished lease in history until
    /// `retention` after its end.
    pub fn with_history_retention(retention: Duration) -> Self {
        MemoryStore {
            leases: Mutex::default(),
            credentials: Mutex::default(),
            retention: i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same store, counting the history retention back from `clock`'s
    /// now instead of the system clock's (a manual clock in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many leases are active (not finished).
    pub fn active_len(&self) -> usize {
        self.lock().active_len()
    }

    /// How many finished leases history holds.
    pub fn finished_len(&self) -> usize {
        self.pruned().finished_len()
    }

    fn lock(&self) -> MutexGuard<'_, Leases> {
        // No operation panics half-way through a change, so the state is
        // consistent even if a panic elsewhere poisoned the lock.
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The oldest end history keeps now, in nanoseconds since the epoch.
    fn history_cutoff(&self) -> i64 {
        nanos(self.clock.now()).saturating_sub(self.retention)
    }

    /// The state, locked, with history past the retention dropped.
    fn pruned(&self) -> MutexGuard<'_, Leases> {
        let cutoff = self.history_cutoff();
        let mut leases = self.lock();
        leases.prune_history(cutoff);
        leases
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let leases = self.lock();
        f.debug_struct("MemoryStore")
            .field("active", &leases.active_len())
            .field("finished", &leases.finished_len())
            .finish()
    }
}

/// The moment a claim made at `now` for `ttl` ends (saturating).
fn claim_end(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn insert(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        self.lock().insert(lease, admission)
    }

    async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError> {
        self.pruned().get(id)
    }

    async fn update(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        self.lock().update(lease, admission)
    }

    async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
        self.lock().list(query)
    }

    async fn claim_expired(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        claim_ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        Ok(self
            .lock()
            .claim_expired(now, limit, claim_end(now, claim_ttl)))
    }

    async fn release(&self, id: &LeaseId, retry_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock().release(id, retry_at)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock().next_due())
    }

    async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let cutoff = self.history_cutoff();
        self.lock().finish(lease, cutoff)
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError> {
        self.pruned().history(query)
    }

    async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError> {
        Ok(self.lock().usage(owner))
    }

    async fn daily_stats(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError> {
        stats::check_range(from, to)?;
        Ok(self.lock().daily_stats(from, to))
    }

    async fn share_stats(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError> {
        stats::check_range(from, to)?;
        Ok(self.lock().share_stats(from, to))
    }

    async fn pool_add(&self, slot: &PoolSlot, target: usize) -> Result<bool, StoreError> {
        Ok(self.lock().pool_add(slot, target))
    }

    async fn pool_ready(&self, slot_id: &str, container_id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().pool_ready(slot_id, container_id))
    }

    async fn pool_take(
        &self,
        offering: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<Taken>, StoreError> {
        self.lock().pool_take(offering, lease, now)
    }

    async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        Ok(self.lock().pool_slots())
    }

    async fn pool_drop(&self, slot_id: &str, state: SlotState) -> Result<bool, StoreError> {
        Ok(self.lock().pool_drop(slot_id, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_end_saturates() {
        let now = Utc::now();
        assert_eq!(
            claim_end(now, Duration::from_millis(1500)),
            now + chrono::Duration::milliseconds(1500)
        );
        assert_eq!(claim_end(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }

    #[tokio::test]
    async fn times_past_the_nanosecond_range_keep_working() {
        use lease_core::testing::conformance::sample_lease;
        let store = MemoryStore::new();
        let mut far = sample_lease("far", chrono::Duration::hours(1));
        far.expires_at = DateTime::<Utc>::MAX_UTC;
        far.created_at = "3000-01-01T00:00:00Z".parse().unwrap();
        let far = store.insert(&far, &Admission::default()).await.unwrap();
        let due = store
            .insert(
                &sample_lease("far", chrono::Duration::minutes(-1)),
                &Admission::default(),
            )
            .await
            .unwrap();

        let listed = store.list(&ListQuery::owner("far")).await.unwrap();
        assert_eq!(listed.items, [due.clone(), far.clone()], "oldest first");
        let claimed = store
            .claim_expired(Utc::now(), 10, Duration::MAX)
            .await
            .unwrap();
        assert_eq!(claimed, [due]);
        assert_eq!(
            store.next_due().await.unwrap(),
            Some(DateTime::<Utc>::MAX_UTC)
        );
        assert!(
            store
                .claim_expired(Utc::now(), 10, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn history_keeps_only_the_retention_by_its_clock_and_usage_keeps_all() {
        use lease_core::testing::conformance::{finished, sample_lease};
        use lease_core::{HistoryQuery, ManualClock, Money};
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(start + chrono::Duration::minutes(90)));
        let store = MemoryStore::with_history_retention(Duration::from_secs(3600))
            .with_clock(clock.clone());
        let mut ids = Vec::new();
        // Ends at 0 h, 0.5 h, 1 h and 1.5 h, and now is 1.5 h: the one at
        // 0 h (1.5 h before now) goes and the one at 0.5 h (exactly the
        // retention before now) stays.
        for (minutes, owner) in [(0, "ada"), (30, "bob"), (60, "ada"), (90, "ada")] {
            let lease = store
                .insert(
                    &sample_lease(owner, chrono::Duration::hours(1)),
                    &Admission::default(),
                )
                .await
                .unwrap();
            let end = start + chrono::Duration::minutes(minutes);
            store
                .finish(&finished(&lease, end, Money::from_nanos(5)))
                .await
                .unwrap();
            ids.push(lease.id);
        }

        assert_eq!(store.finished_len(), 3);
        assert!(matches!(
            store.get(&ids[0]).await,
            Err(StoreError::NotFound(_))
        ));
        let ada = store
            .history(&HistoryQuery {
                owner: Some("ada".into()),
                ..HistoryQuery::default()
            })
            .await
            .unwrap();
        let ada: Vec<_> = ada.items.into_iter().map(|lease| lease.id).collect();
        assert_eq!(ada, [ids[3].clone(), ids[2].clone()], "newest first");
        let all = store.history(&HistoryQuery::default()).await.unwrap();
        assert_eq!(all.items.len(), 3);
        let usage = store.usage("ada").await.unwrap();
        assert_eq!(usage.ended_count, 3, "totals count pruned leases too");
        assert_eq!(usage.ended_cost, Money::from_nanos(15));

        // Time passes with nothing finished: the store's now alone ages
        // history out.
        clock.advance(chrono::Duration::minutes(1));
        assert!(matches!(
            store.get(&ids[1]).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.get(&ids[3]).await.unwrap().id, ids[3]);
        assert_eq!(store.finished_len(), 2);
        assert_eq!(store.usage("bob").await.unwrap().ended_count, 1);
    }

    #[test]
    fn debug_shows_counts_not_leases() {
        assert_eq!(
            format!("{:?}", MemoryStore::new()),
            "MemoryStore { active: 0, finished: 0 }"
        );
    }
}
