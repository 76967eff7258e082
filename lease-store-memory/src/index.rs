//! The store's state: leases and the ordered indexes over them.
//!
//! Everything here is synchronous and runs under the store's one lock, so
//! every operation is atomic. Index keys are a time in nanoseconds since
//! the epoch (cheap to compare; times outside 1677–2262 saturate, which only
//! loosens their order among themselves) and a [`LeaseId`], a cheap clone of
//! a shared string.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use chrono::{DateTime, NaiveDate, Utc};
use lease_core::stats::{self, Span, StatsKey, StatsRow, finish_contribution};
use lease_core::store::{HistoryQuery, ListQuery, Page, UsageTotals};
use lease_core::{Admission, AdmissionUsage, Lease, LeaseId, Money, StoreError, cursor};

/// An index key ordered by time, then id.
type TimeKey = (i64, LeaseId);
/// An index key in the exact reverse of (time, id): newest first, and
/// among equal times the greatest id first.
type NewestKey = Reverse<TimeKey>;

/// `at` in nanoseconds since the epoch, saturating: the time part of index keys.
pub(crate) fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// An active lease and its claim.
#[derive(Debug)]
struct Active {
    lease: Lease,
    /// Until when a reaper holds it (or when a released claim may be retried).
    claimed_until: Option<DateTime<Utc>>,
}

impl Active {
    /// When the lease can next be claimed: when it is due, or when the claim
    /// ends, whichever is later.
    fn claimable_at(&self) -> DateTime<Utc> {
        let due = self.lease.due_at();
        self.claimed_until.map_or(due, |until| until.max(due))
    }

    fn schedule_key(&self) -> TimeKey {
        (nanos(self.claimable_at()), self.lease.id.clone())
    }
}

/// Leases and indexes, kept consistent by every method.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    /// Active leases by id (boxed: the table's empty slots stay small).
    active: HashMap<LeaseId, Box<Active>>,
    /// Active leases by the time they can next be claimed.
    schedule: BTreeSet<TimeKey>,
    /// Active leases by creation time.
    created: BTreeSet<TimeKey>,
    /// Each owner's active leases by creation time.
    created_by_owner: HashMap<String, BTreeSet<TimeKey>>,
    /// Finished leases by id.
    finished: HashMap<LeaseId, Box<Lease>>,
    /// Finished leases, newest end first (ties: greatest id first).
    ended: BTreeSet<NewestKey>,
    /// Each owner's finished leases, in the same order.
    ended_by_owner: HashMap<String, BTreeSet<NewestKey>>,
    /// Each owner's finished leases (still in history) by creation time,
    /// for the spend of leases created today.
    finished_created_by_owner: HashMap<String, BTreeSet<TimeKey>>,
    /// Each owner's totals of finished leases.
    usage: HashMap<String, UsageTotals>,
    /// The daily statistics' day totals: finished leases' contributions
    /// summed per creation day (kept forever, like the usage totals).
    day_totals: BTreeMap<NaiveDate, StatsRow>,
    /// The share counters per (span, owner, offering) (see
    /// `lease_core::stats`).
    shares: BTreeMap<(Span, String, String), StatsRow>,
    /// Σ nano-CPUs of the active leases (the host's CPU use).
    active_nano_cpus: i64,
    /// Σ memory of the active leases in MiB (the host's memory use).
    active_memory_mb: u64,
    /// Warm-pool slot records by id (see `pool.rs`).
    pub(crate) pool: BTreeMap<String, lease_core::PoolSlot>,
}

/// When a finished lease ended, for ordering history.
fn ended_at(lease: &Lease) -> DateTime<Utc> {
    lease.ended_at.unwrap_or(lease.expires_at)
}

fn created_key(lease: &Lease) -> TimeKey {
    (nanos(lease.created_at), lease.id.clone())
}

fn ended_key(lease: &Lease) -> NewestKey {
    Reverse((nanos(ended_at(lease)), lease.id.clone()))
}

/// Adds `key` to `owner`'s set in `map`.
fn add_owned<K: Ord>(map: &mut HashMap<String, BTreeSet<K>>, owner: &str, key: K) {
    match map.get_mut(owner) {
        Some(set) => {
            set.insert(key);
        }
        None => {
            map.insert(owner.to_owned(), BTreeSet::from([key]));
        }
    }
}

/// Removes `key` from `owner`'s set in `map`, dropping the set once empty.
fn remove_owned<K: Ord>(map: &mut HashMap<String, BTreeSet<K>>, owner: &str, key: &K) {
    if let Some(set) = map.get_mut(owner) {
        set.remove(key);
        if set.is_empty() {
            map.remove(owner);
        }
    }
}

/// Takes up to `limit` items from `items` into a page, with a cursor made by
/// `key` from the last item when more items follow.
fn page<'a>(
    mut items: impl Iterator<Item = &'a Lease>,
    limit: usize,
    key: impl Fn(&Lease) -> String,
) -> Page<Lease> {
    let page: Vec<Lease> = items.by_ref().take(limit).cloned().collect();
    let next_cursor = match (page.last(), items.next()) {
        (Some(last), Some(_)) => Some(key(last)),
        _ => None,
    };
    Page {
        items: page,
        next_cursor,
    }
}

/// The ids in `index` (keys by creation time) created at or after `start`
/// (nanoseconds since the epoch), newest first.
fn created_since(index: Option<&BTreeSet<TimeKey>>, start: i64) -> impl Iterator<Item = &LeaseId> {
    index
        .into_iter()
        .flat_map(|set| set.iter().rev())
        .take_while(move |(created, _)| *created >= start)
        .map(|(_, id)| id)
}

/// The part of `index` after the cursor's key (all of it without a cursor).
fn after<'a, K: Ord>(
    index: &'a BTreeSet<K>,
    cursor: Option<&K>,
) -> std::collections::btree_set::Range<'a, K> {
    match cursor {
        Some(key) => index.range((Bound::Excluded(key), Bound::Unbounded)),
        None => index.range::<K, _>(..),
    }
}

impl Leases {
    /// Active leases.
    pub(crate) fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Finished leases.
    pub(crate) fn finished_len(&self) -> usize {
        self.finished.len()
    }

    pub(crate) fn insert(
        &mut self,
        lease: &Lease,
        admission: &Admission,
    ) -> Result<Lease, StoreError> {
        if self.active.contains_key(&lease.id) || self.finished.contains_key(&lease.id) {
            return Err(StoreError::AlreadyExists(lease.id.clone()));
        }
        if admission.is_limited() {
            admission.check(&self.admission_usage(lease, admission), lease)?;
        }
        let stored = Lease {
            revision: 1,
            ..lease.clone()
        };
        let entry = Box::new(Active {
            lease: stored.clone(),
            claimed_until: None,
        });
        self.schedule.insert(entry.schedule_key());
        self.created.insert(created_key(&stored));
        add_owned(
            &mut self.created_by_owner,
            &stored.owner,
            created_key(&stored),
        );
        self.active.insert(stored.id.clone(), entry);
        self.add_size(&stored);
        Ok(stored)
    }

    /// What is in use before `lease` is added, as far as `admission` needs
    /// it (the owner's spend is summed only when a spend limit applies).
    fn admission_usage(&self, lease: &Lease, admission: &Admission) -> AdmissionUsage {
        let owner_spend_today =
            if admission.max_daily_spend.is_some() && admission.counts_today(lease) {
                self.spend_since(&lease.owner, admission.day_start)
            } else {
                Money::ZERO
            };
        AdmissionUsage {
            owner_leases: self
                .created_by_owner
                .get(&lease.owner)
                .map_or(0, |set| set.len() as u64),
            owner_spend_today,
            leases: self.active.len() as u64,
            nano_cpus: self.active_nano_cpus,
            memory_mb: self.active_memory_mb,
        }
    }

    /// Σ [`Lease::charge`] over `owner`'s active and finished leases
    /// created at or after `day_start`. Walks only those leases, newest
    /// first, through the owner's indexes by creation time.
    fn spend_since(&self, owner: &str, day_start: DateTime<Utc>) -> Money {
        let start = nanos(day_start);
        let active: Money = created_since(self.created_by_owner.get(owner), start)
            .filter_map(|id| self.active.get(id))
            .map(|entry| entry.lease.charge())
            .sum();
        let finished: Money = created_since(self.finished_created_by_owner.get(owner), start)
            .filter_map(|id| self.finished.get(id))
            .map(|lease| lease.charge())
            .sum();
        active + finished
    }

    /// Counts `lease`'s size toward the host's use.
    fn add_size(&mut self, lease: &Lease) {
        self.active_nano_cpus = self.active_nano_cpus.saturating_add(lease.nano_cpus);
        self.active_memory_mb = self
            .active_memory_mb
            .saturating_add(u64::from(lease.memory_mb));
    }

    /// Stops counting `lease`'s size toward the host's use.
    fn remove_size(&mut self, lease: &Lease) {
        self.active_nano_cpus = self.active_nano_cpus.saturating_sub(lease.nano_cpus);
        self.active_memory_mb = self
            .active_memory_mb
            .saturating_sub(u64::from(lease.memory_mb));
    }

    pub(crate) fn get(&self, id: &LeaseId) -> Result<Lease, StoreError> {
        self.active
            .get(id)
            .map(|entry| &entry.lease)
            .or_else(|| self.finished.get(id).map(|lease| &**lease))
            .cloned()
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    /// The active entry of `lease.id` if its revision is `lease.revision`.
    fn check(&mut self, lease: &Lease) -> Result<&mut Active, StoreError> {
        let entry = self
            .active
            .get_mut(&lease.id)
            .ok_or_else(|| StoreError::NotFound(lease.id.clone()))?;
        if entry.lease.revision == lease.revision {
            Ok(entry)
        } else {
            Err(StoreError::Conflict {
                id: lease.id.clone(),
                expected: lease.revision,
            })
        }
    }

    pub(crate) fn update(
        &mut self,
        lease: &Lease,
        admission: &Admission,
    ) -> Result<Lease, StoreError> {
        let current = &self.check(lease)?.lease;
        if admission.max_daily_spend.is_some()
            && lease.charge() > current.charge()
            && admission.counts_today(lease)
        {
            let current = current.clone();
            let spent = self.spend_since(&current.owner, admission.day_start);
            admission.check_update(spent, &current, lease)?;
        }
        let entry = self.check(lease)?;
        let old_schedule = entry.schedule_key();
        let stored = Lease {
            revision: lease.revision + 1,
            ..lease.clone()
        };
        let old = std::mem::replace(&mut entry.lease, stored.clone());
        // The claim stays: the lease is claimable at max(new due time, claim end).
        let new_schedule = entry.schedule_key();
        if old_schedule != new_schedule {
            self.schedule.remove(&old_schedule);
            self.schedule.insert(new_schedule);
        }
        self.remove_size(&old);
        self.add_size(&stored);
        if (old.created_at, &old.owner) != (stored.created_at, &stored.owner) {
            self.created.remove(&created_key(&old));
            self.created.insert(created_key(&stored));
            remove_owned(&mut self.created_by_owner, &old.owner, &created_key(&old));
            add_owned(
                &mut self.created_by_owner,
                &stored.owner,
                created_key(&stored),
            );
        }
        Ok(stored)
    }

    pub(crate) fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
        let cursor = query.cursor.as_deref().map(cursor::decode).transpose()?;
        let index = match &query.owner {
            Some(owner) => match self.created_by_owner.get(owner) {
                Some(index) => index,
                None => {
                    return Ok(Page {
                        items: Vec::new(),
                        next_cursor: None,
                    });
                }
            },
            None => &self.created,
        };
        let items = after(index, cursor.as_ref())
            .filter_map(|(_, id)| self.active.get(id))
            .map(|entry| &entry.lease)
            .filter(|lease| query.matches(lease));
        Ok(page(items, query.effective_limit(), |lease| {
            cursor::encode(nanos(lease.created_at), &lease.id)
        }))
    }

    pub(crate) fn claim_expired(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
        claimed_until: DateTime<Utc>,
    ) -> Vec<Lease> {
        let now = nanos(now);
        let mut claimed = Vec::with_capacity(limit.min(1024));
        let mut rescheduled = Vec::with_capacity(limit.min(1024));
        while claimed.len() < limit {
            match self.schedule.first() {
                Some((at, _)) if *at <= now => {}
                _ => break,
            }
            let Some((_, id)) = self.schedule.pop_first() else {
                break;
            };
            if let Some(entry) = self.active.get_mut(&id) {
                entry.claimed_until = Some(claimed_until);
                rescheduled.push(entry.schedule_key());
                claimed.push(entry.lease.clone());
            }
        }
        // Re-scheduled only now, so a claim that ends at once (`claim_ttl`
        // zero) is not handed out twice in one call.
        self.schedule.extend(rescheduled);
        claimed
    }

    pub(crate) fn release(
        &mut self,
        id: &LeaseId,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let entry = self
            .active
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let old_key = entry.schedule_key();
        entry.claimed_until = Some(retry_at);
        let new_key = entry.schedule_key();
        self.schedule.remove(&old_key);
        self.schedule.insert(new_key);
        Ok(())
    }

    pub(crate) fn next_due(&self) -> Option<DateTime<Utc>> {
        let (at, id) = self.schedule.first()?;
        // The entry's own time is exact even where the key saturated.
        Some(match self.active.get(id) {
            Some(entry) => entry.claimable_at(),
            None => DateTime::from_timestamp_nanos(*at),
        })
    }

    /// Moves `lease` to history, then drops history entries that ended
    /// before `cutoff` (nanoseconds since the epoch).
    pub(crate) fn finish(&mut self, lease: &Lease, cutoff: i64) -> Result<Lease, StoreError> {
        self.check(lease)?;
        let Some(entry) = self.active.remove(&lease.id) else {
            return Err(StoreError::NotFound(lease.id.clone()));
        };
        let old = &entry.lease;
        self.schedule.remove(&entry.schedule_key());
        self.created.remove(&created_key(old));
        remove_owned(&mut self.created_by_owner, &old.owner, &created_key(old));
        self.remove_size(old);

        let stored = Lease {
            revision: lease.revision + 1,
            ..lease.clone()
        };
        self.ended.insert(ended_key(&stored));
        add_owned(&mut self.ended_by_owner, &stored.owner, ended_key(&stored));
        add_owned(
            &mut self.finished_created_by_owner,
            &stored.owner,
            created_key(&stored),
        );
        let totals = match self.usage.get_mut(&stored.owner) {
            Some(totals) => totals,
            None => self.usage.entry(stored.owner.clone()).or_default(),
        };
        totals.ended_count += 1;
        totals.ended_cost += stored.final_cost.unwrap_or_default();
        self.add_stats(finish_contribution(&stored));
        self.finished
            .insert(stored.id.clone(), Box::new(stored.clone()));
        self.prune_history(cutoff);
        Ok(stored)
    }

    /// Drops finished leases that ended before `cutoff` (nanoseconds since
    /// the epoch; their usage totals stay). Each call removes only what
    /// expired, oldest first: O(1) when nothing did, O(k log n) for k dropped.
    pub(crate) fn prune_history(&mut self, cutoff: i64) {
        while let Some(Reverse((ended, _))) = self.ended.last() {
            if *ended >= cutoff {
                break;
            }
            let Some(key) = self.ended.pop_last() else {
                break;
            };
            if let Some(lease) = self.finished.remove(&key.0.1) {
                remove_owned(&mut self.ended_by_owner, &lease.owner, &key);
                remove_owned(
                    &mut self.finished_created_by_owner,
                    &lease.owner,
                    &created_key(&lease),
                );
            }
        }
    }

    pub(crate) fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError> {
        let cursor = query
            .cursor
            .as_deref()
            .map(cursor::decode)
            .transpose()?
            .map(Reverse);
        let index = match &query.owner {
            Some(owner) => match self.ended_by_owner.get(owner) {
                Some(index) => index,
                None => {
                    return Ok(Page {
                        items: Vec::new(),
                        next_cursor: None,
                    });
                }
            },
            None => &self.ended,
        };
        let items = after(index, cursor.as_ref())
            .filter_map(|Reverse((_, id))| self.finished.get(id))
            .map(|lease| &**lease);
        Ok(page(items, query.effective_limit(), |lease| {
            cursor::encode(nanos(ended_at(lease)), &lease.id)
        }))
    }

    /// Adds a finished lease's contribution to its day totals and to its
    /// share rows of every span holding its creation day.
    fn add_stats(&mut self, contribution: StatsRow) {
        let key = &contribution.key;
        self.day_totals
            .entry(key.day)
            .or_insert_with(|| StatsRow::new(StatsKey::totals(key.day)))
            .absorb(&contribution);
        let share = stats::share_of(&contribution);
        for span in stats::spans_of(key.day) {
            self.shares
                .entry((span, key.owner.clone(), key.offering.clone()))
                .or_insert_with(|| StatsRow::new(key.clone()))
                .absorb(&share);
        }
    }

    /// The day totals of the days `from..=to` (already checked): a range of
    /// the ordered map, never a scan of leases.
    pub(crate) fn daily_stats(&self, from: NaiveDate, to: NaiveDate) -> Vec<StatsRow> {
        self.day_totals
            .range(from..=to)
            .map(|(_, row)| row.clone())
            .collect()
    }

    /// The share counters of `from..=to` (already checked) per owner and
    /// offering: the rows of the spans covering the window.
    pub(crate) fn share_stats(&self, from: NaiveDate, to: NaiveDate) -> Vec<StatsRow> {
        let rows = stats::cover(from, to).into_iter().flat_map(|span| {
            self.shares
                .range((span, String::new(), String::new())..)
                .take_while(move |((of, _, _), _)| *of == span)
                .map(|(_, row)| row.clone())
        });
        stats::sum_shares(from, rows)
    }

    pub(crate) fn usage(&self, owner: &str) -> UsageTotals {
        self.usage.get(owner).copied().unwrap_or_default()
    }
}
