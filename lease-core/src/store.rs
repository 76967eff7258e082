//! The lease store port: where leases live, shared by every replica that
//! uses the same store.
//!
//! A store keeps the *active* leases (everything not yet finished), a
//! *history* of finished ones, and per-owner usage totals. It never decides
//! anything about a lease's meaning: the engine checks transitions, the store
//! guarantees atomicity (compare-and-set on the revision, one claimer per
//! due lease).
//!
//! # The contract, beyond each method's docs
//!
//! - **Order of pages.** [`LeaseStore::list`] returns active leases oldest
//!   `created_at` first, leases created at the same instant by id
//!   ascending. [`LeaseStore::history`] returns finished leases in the exact
//!   reverse of (`ended_at`, id): newest `ended_at` first, leases that ended
//!   at the same instant by id *descending*. Ids compare as text
//!   ([`LeaseId`]'s `Ord`). A cursor names the position of the last item
//!   returned, so it stays valid when that lease leaves the set meanwhile.
//! - **Retention.** A store has a history retention R (default
//!   [`DEFAULT_HISTORY_RETENTION`]). A finished lease whose `ended_at` is
//!   earlier than the store's now − R is gone: neither `history` nor `get`
//!   returns it (`get` fails with [`StoreError::NotFound`]). One that ended
//!   within R is kept. The store's now is its own clock: a shared store's
//!   server time, a local store's system clock (or a [`Clock`](crate::Clock)
//!   it was given). [`UsageTotals`] count every finished lease forever.
//! - **Admission.** [`LeaseStore::insert`] and [`LeaseStore::update`] take
//!   an [`Admission`]: limits the store checks in the same atomic step as
//!   the write, so requests racing at a limit cannot all pass it (no
//!   read-then-write). A refused write stores nothing and fails with
//!   [`StoreError::LimitReached`] naming the first failing limit in
//!   [`Limit`](crate::Limit) order; [`Admission::check`] and
//!   [`Admission::check_update`] decide and word it from the figures the
//!   store gathers. The figures: the owner's and all owners' *active*
//!   leases (count, Σ [`Lease::nano_cpus`], Σ [`Lease::memory_mb`]), and the
//!   owner's *spend today*, Σ [`Lease::charge`] over the owner's leases,
//!   active and finished (in history), whose `created_at` is at or after
//!   [`Admission::day_start`]. [`LeaseStore::finish`] therefore keeps a
//!   finished lease counting at its final cost, and frees its owner and
//!   host slots. `Admission::default()` limits nothing.
//! - **Daily statistics.** [`LeaseStore::finish`] adds the finished
//!   lease's [`finish_contribution`](crate::stats::finish_contribution) to
//!   the rollup in the *same atomic step* as the move into history and the
//!   usage totals: a finish that fails (conflict, not found) adds nothing,
//!   and a finished lease is counted exactly once. The rollup has two parts
//!   (see [`stats`](crate::stats)): the day totals row of its creation day
//!   ([`day_total`](crate::stats::day_total): every counter), and the share
//!   rows ([`share_of`](crate::stats::share_of): a few counters) of its
//!   owner and offering in each [`spans_of`](crate::stats::spans_of) its
//!   creation day. The rows are integers summed per counter name; the store
//!   does not interpret the names. [`LeaseStore::daily_stats`] reads one
//!   row per day; [`LeaseStore::share_stats`] sums the few spans that
//!   [`cover`](crate::stats::cover) the window: neither grows with the
//!   number of leases, and the retention does not apply to them.
//! - **Warm pools.** The `pool_*` methods keep [`PoolSlot`] records (see
//!   [`pool`](crate::pool)). Each is atomic on its own;
//!   [`LeaseStore::pool_add`] checks the pool's size and
//!   [`LeaseStore::pool_take`] changes a slot and a lease in the same
//!   atomic step. A store that keeps no pools keeps the defaults, which
//!   answer [`StoreError::Unsupported`]; the engine then never pools (every
//!   provision takes the normal path). Their cases are
//!   `lease_core::testing::pool_conformance`.
//! - **Conformance.** `lease_core::testing::conformance` (feature
//!   `test-utils`) checks all of this; a store is done when it passes.

use std::fmt::Debug;
use std::ops::ControlFlow;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::admission::Admission;
use crate::error::StoreError;
use crate::id::LeaseId;
use crate::lease::{Lease, Status};
use crate::money::Money;
use crate::pool::{PoolSlot, SlotState, Taken};
use crate::stats::StatsRow;

/// Most leases one page holds.
pub const MAX_PAGE: usize = 1000;

/// How long stores keep a finished lease in history unless configured
/// otherwise: 7 days after its `ended_at`, by the store's clock. Usage
/// totals are kept forever.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Which active leases to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this owner's leases.
    pub owner: Option<String>,
    /// Only leases in one of these statuses (empty: any).
    pub statuses: Vec<Status>,
    /// Continue after this cursor (from a previous [`Page`]).
    pub cursor: Option<String>,
    /// At most this many (0 or above [`MAX_PAGE`] means [`MAX_PAGE`]).
    pub limit: usize,
}

impl ListQuery {
    /// All leases of `owner`.
    pub fn owner(owner: impl Into<String>) -> Self {
        ListQuery {
            owner: Some(owner.into()),
            ..ListQuery::default()
        }
    }

    /// The page size to use.
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 || self.limit > MAX_PAGE {
            MAX_PAGE
        } else {
            self.limit
        }
    }

    /// Whether `lease` passes the owner and status filters.
    pub fn matches(&self, lease: &Lease) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|owner| *owner == lease.owner)
            && (self.statuses.is_empty() || self.statuses.contains(&lease.status))
    }
}

/// Which finished leases to list (newest `ended_at` first, ties by id
/// descending; see the [module docs](self)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this owner's leases.
    pub owner: Option<String>,
    /// Continue after this cursor.
    pub cursor: Option<String>,
    /// At most this many (0 or above [`MAX_PAGE`] means [`MAX_PAGE`]).
    pub limit: usize,
}

impl HistoryQuery {
    /// The page size to use.
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 || self.limit > MAX_PAGE {
            MAX_PAGE
        } else {
            self.limit
        }
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the store's order (active: oldest `created_at` first,
    /// ties by id ascending; history: newest `ended_at` first, ties by id
    /// descending).
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Totals of one owner's finished leases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Finished leases.
    pub ended_count: u64,
    /// Sum of their final costs.
    pub ended_cost: Money,
}

/// The lease store port.
///
/// Conformance: `lease_core::testing::conformance` (feature `test-utils`)
/// holds the suite every store must pass.
#[async_trait]
pub trait LeaseStore: Send + Sync + Debug + 'static {
    /// Whether the store can be reached (for readiness checks).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new lease. Its `revision` is ignored and stored as 1.
    /// Returns the stored lease; [`StoreError::AlreadyExists`] if the id is
    /// taken.
    ///
    /// Atomically with the write, refuses with [`StoreError::LimitReached`]
    /// (storing nothing) if, counting the new lease, the owner's active
    /// leases would exceed [`Admission::max_leases_per_owner`], the owner's
    /// spend today plus [`Lease::charge`] (when the lease is created at or
    /// after [`Admission::day_start`]) [`Admission::max_daily_spend`], all
    /// active leases [`Admission::max_leases`], their Σ nano-CPUs
    /// [`Admission::max_nano_cpus`] or their Σ memory
    /// [`Admission::max_memory_mb`] — checked in that order, see
    /// [`Admission::check`].
    async fn insert(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError>;

    /// An active lease, or else a finished one still in history (within the
    /// retention); [`StoreError::NotFound`] otherwise.
    async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError>;

    /// Compare-and-set: replaces the active lease `lease.id` if its stored
    /// revision equals `lease.revision`, storing it with revision + 1, and
    /// returns what was stored. [`StoreError::Conflict`] if the revision
    /// moved, [`StoreError::NotFound`] if the lease is not active.
    ///
    /// When `lease.charge()` is above the stored record's, atomically with
    /// the write, refuses with [`StoreError::LimitReached`]
    /// ([`Limit::DailySpend`](crate::Limit::DailySpend)), leaving the record
    /// unchanged, if the owner's spend today plus the rise would exceed
    /// [`Admission::max_daily_spend`] (see [`Admission::check_update`]).
    /// The other limits do not apply to updates. Most callers pass
    /// `&Admission::default()`.
    async fn update(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError>;

    /// Active leases, filtered and paged: oldest `created_at` first, ties by
    /// id ascending.
    async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError>;

    /// Atomically claims up to `limit` active leases that are due
    /// ([`Lease::due_at`] ≤ now) and not claimed by anyone else, marking each
    /// claimed for `claim_ttl`. A claim that is not finished or released by
    /// then lapses and the lease becomes claimable again. Stores that share
    /// state across machines may use their own clock for "now"; `now` is the
    /// caller's.
    async fn claim_expired(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        claim_ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError>;

    /// Gives up a claim: the lease becomes claimable again at `retry_at`
    /// (or at its due time, whichever is later).
    async fn release(&self, id: &LeaseId, retry_at: DateTime<Utc>) -> Result<(), StoreError>;

    /// The earliest moment an active lease will become claimable, if any: the
    /// reaper sleeps until then.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Compare-and-set like [`LeaseStore::update`], and then atomically moves
    /// the lease out of the active set into history, dropping any claim,
    /// adding its `final_cost` to its owner's [`UsageTotals`] and its
    /// [`finish_contribution`](crate::stats::finish_contribution) to the
    /// daily statistics (see the [module docs](self)).
    async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError>;

    /// Finished leases within the retention, paged: newest `ended_at`
    /// first, ties by id descending.
    async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError>;

    /// Totals of an owner's finished leases, all of them (the retention
    /// does not apply).
    async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError>;

    /// Day totals of the finished leases created on the UTC days
    /// `from..=to`: one [`day_total`](crate::stats::day_total) row per day
    /// that has any (owner and offering empty), oldest first, each counter
    /// summed. The retention does not apply (like [`LeaseStore::usage`]).
    /// At most [`MAX_DAYS`](crate::stats::MAX_DAYS) days and `from` not
    /// after `to`, else [`StoreError::InvalidRange`] (checked by
    /// [`stats::check_range`](crate::stats::check_range)) before anything
    /// is read.
    async fn daily_stats(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError>;

    /// The [`share_of`](crate::stats::share_of) counters of the finished
    /// leases created on the UTC days `from..=to`, summed per (owner,
    /// offering) over the whole window: one row per pair that has any, key
    /// day = `from`, ordered by owner and offering
    /// ([`sum_shares`](crate::stats::sum_shares) of the share rows of the
    /// spans that [`cover`](crate::stats::cover) the window). The same range
    /// rules as [`LeaseStore::daily_stats`].
    async fn share_stats(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError>;

    /// Stores `slot` (state [`SlotState::Filling`], as given) if its
    /// offering has fewer than `target` slots filling or ready, all in one
    /// atomic step; `Ok(false)` stores nothing. A slot id already stored is
    /// an `Ok(false)` too.
    async fn pool_add(&self, slot: &PoolSlot, target: usize) -> Result<bool, StoreError> {
        let _ = (slot, target);
        Err(StoreError::Unsupported {
            operation: "keep warm pools",
        })
    }

    /// Marks a filling slot ready with its started container's id.
    /// `Ok(false)` (nothing changed) if the slot is not stored or not
    /// filling: the caller then removes the container it made.
    async fn pool_ready(&self, slot_id: &str, container_id: &str) -> Result<bool, StoreError> {
        let _ = (slot_id, container_id);
        Err(StoreError::Unsupported {
            operation: "keep warm pools",
        })
    }

    /// In one atomic step: picks the ready slot of `offering` stored
    /// first (oldest `created_at`, ties by id), marks it
    /// [`taken_slot`](crate::pool::taken_slot) by `lease`, and stores
    /// `lease` as [`taken_lease`](crate::pool::taken_lease) on the slot's
    /// container at `now`. `lease` is the active lease as read: if its
    /// stored revision moved, [`StoreError::Conflict`]; if it is not
    /// active, [`StoreError::NotFound`]; either way nothing changes.
    /// `Ok(None)` when no slot of `offering` is ready (nothing changes).
    async fn pool_take(
        &self,
        offering: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<Taken>, StoreError> {
        let _ = (offering, lease, now);
        Err(StoreError::Unsupported {
            operation: "keep warm pools",
        })
    }

    /// Every slot record, ordered by offering, `created_at`, id.
    async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        Err(StoreError::Unsupported {
            operation: "keep warm pools",
        })
    }

    /// Deletes slot `slot_id` if it is in `state`; `Ok(false)` (nothing
    /// changed) otherwise. Dropping a ready slot can therefore never race
    /// a take: one of them wins.
    async fn pool_drop(&self, slot_id: &str, state: SlotState) -> Result<bool, StoreError> {
        let _ = (slot_id, state);
        Err(StoreError::Unsupported {
            operation: "keep warm pools",
        })
    }
}

/// Conveniences over any [`LeaseStore`], built on its required methods
/// (blanket-implemented, so a store never implements them itself).
///
/// ```
/// # async fn demo(store: std::sync::Arc<dyn lease_core::LeaseStore>) -> Result<(), lease_core::StoreError> {
/// use lease_core::store::{LeaseStoreExt, ListQuery};
/// let every_lease_of_ada = store.list_all(&ListQuery::owner("ada")).await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait LeaseStoreExt: LeaseStore {
    /// Every active lease matching `query`, following the cursors from
    /// `query.cursor` to the last page, in the store's order.
    async fn list_all(&self, query: &ListQuery) -> Result<Vec<Lease>, StoreError> {
        let mut query = query.clone();
        let mut all = Vec::new();
        loop {
            let page = self.list(&query).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(all),
            }
        }
    }

    /// Every finished lease matching `query` still in history, following
    /// the cursors to the last page, newest ended first.
    async fn history_all(&self, query: &HistoryQuery) -> Result<Vec<Lease>, StoreError> {
        let mut all = Vec::new();
        self.walk_history(query, |lease| {
            all.push(lease.clone());
            ControlFlow::Continue(())
        })
        .await?;
        Ok(all)
    }

    /// Walks the finished leases matching `query`, newest ended first,
    /// page by page, handing each to `visit` until it returns
    /// [`ControlFlow::Break`] or history ends.
    async fn walk_history<F>(&self, query: &HistoryQuery, mut visit: F) -> Result<(), StoreError>
    where
        F: FnMut(&Lease) -> ControlFlow<()> + Send,
    {
        let mut query = query.clone();
        loop {
            let page = self.history(&query).await?;
            if page.items.iter().any(|lease| visit(lease).is_break()) {
                return Ok(());
            }
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(()),
            }
        }
    }
}

impl<S: LeaseStore + ?Sized> LeaseStoreExt for S {}
