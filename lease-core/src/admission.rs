//! Admission: the limits a store checks atomically with a write.
//!
//! Reading the store and then writing lets parallel requests all pass a
//! limit they jointly exceed. So the engine hands an [`Admission`] to
//! [`LeaseStore::insert`](crate::LeaseStore::insert) and
//! [`LeaseStore::update`](crate::LeaseStore::update), and the store checks
//! it inside the same atomic step as the write (under its lock, inside its
//! transaction, inside its script).
//!
//! A store gathers the figures ([`AdmissionUsage`]) however suits it; the
//! decision and the wording of the refusal live here, in
//! [`Admission::check`] and [`Admission::check_update`], so every
//! store refuses alike.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use lease_core::{Admission, AdmissionUsage, Lease, LeaseId, Limit, Money, StoreError};
//!
//! let now = Utc::now();
//! let lease = Lease::new(LeaseId::generate(), "ada", "alpine", Money::ZERO, now, now + Duration::hours(1));
//! let admission = Admission { max_leases_per_owner: Some(2), ..Admission::default() };
//! let usage = AdmissionUsage { owner_leases: 2, ..AdmissionUsage::default() };
//! match admission.check(&usage, &lease) {
//!     Err(StoreError::LimitReached { limit, .. }) => assert_eq!(limit, Limit::LeasesPerOwner),
//!     other => panic!("expected a refusal, got {other:?}"),
//! }
//! ```

use std::fmt;

use chrono::{DateTime, NaiveTime, Utc};

use crate::error::StoreError;
use crate::lease::Lease;
use crate::money::Money;

/// Limits a store checks atomically with a write. All `None` means
/// unlimited ([`Admission::default`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// Most active leases one owner may hold.
    pub max_leases_per_owner: Option<u32>,
    /// Most an owner may be charged ([`Lease::charge`]) for leases created
    /// at or after [`Admission::day_start`].
    pub max_daily_spend: Option<Money>,
    /// UTC midnight of the engine's "today" (from its clock): leases created
    /// at or after it count toward the daily spend.
    pub day_start: DateTime<Utc>,
    /// Most active leases of all owners together (the host).
    pub max_leases: Option<u32>,
    /// Most nano-CPUs the active leases may reserve together (the host).
    pub max_nano_cpus: Option<i64>,
    /// Most MiB of memory the active leases may reserve together (the host).
    pub max_memory_mb: Option<u64>,
}

/// Which limit refused a write. The order is the order of the checks: when
/// several limits fail, the first one here is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`Admission::max_leases_per_owner`].
    LeasesPerOwner,
    /// [`Admission::max_daily_spend`].
    DailySpend,
    /// [`Admission::max_leases`].
    Leases,
    /// [`Admission::max_nano_cpus`].
    Cpus,
    /// [`Admission::max_memory_mb`].
    Memory,
}

impl Limit {
    /// The limit's name as flags, logs and API errors spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::LeasesPerOwner => "max_leases_per_owner",
            Limit::DailySpend => "max_daily_spend",
            Limit::Leases => "max_leases",
            Limit::Cpus => "max_cpus",
            Limit::Memory => "max_memory",
        }
    }

    /// Whether the limit is the host's (all owners together) rather than
    /// one owner's quota.
    pub fn is_host(self) -> bool {
        matches!(self, Limit::Leases | Limit::Cpus | Limit::Memory)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is already in use, before the write being checked: the figures a
/// store gathers for [`Admission::check`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionUsage {
    /// The owner's active leases.
    pub owner_leases: u64,
    /// Σ [`Lease::charge`] over the owner's leases, active and finished,
    /// created at or after [`Admission::day_start`].
    pub owner_spend_today: Money,
    /// Active leases of all owners.
    pub leases: u64,
    /// Σ [`Lease::nano_cpus`] over all active leases.
    pub nano_cpus: i64,
    /// Σ [`Lease::memory_mb`] over all active leases.
    pub memory_mb: u64,
}

impl Admission {
    /// An admission with no limit whose "today" starts at UTC midnight of
    /// `now`'s day.
    pub fn today(now: DateTime<Utc>) -> Self {
        Admission {
            day_start: start_of_day(now),
            ..Admission::default()
        }
    }

    /// Whether any limit is set (a store may skip gathering figures when
    /// none is).
    pub fn is_limited(&self) -> bool {
        self.max_leases_per_owner.is_some()
            || self.max_daily_spend.is_some()
            || self.max_leases.is_some()
            || self.max_nano_cpus.is_some()
            || self.max_memory_mb.is_some()
    }

    /// Whether `lease` counts toward its owner's spend today (created at or
    /// after [`Admission::day_start`]).
    pub fn counts_today(&self, lease: &Lease) -> bool {
        lease.created_at >= self.day_start
    }

    /// Decides whether `lease` may be inserted when `usage` is already in
    /// use: refuses with [`StoreError::LimitReached`] naming the first limit
    /// (in [`Limit`] order) that counting the new lease would exceed.
    pub fn check(&self, usage: &AdmissionUsage, lease: &Lease) -> Result<(), StoreError> {
        let owner = &lease.owner;
        if let Some(max) = self.max_leases_per_owner
            && usage.owner_leases >= u64::from(max)
        {
            let used = usage.owner_leases;
            return Err(refusal(
                Limit::LeasesPerOwner,
                format!("{owner} has {used} active lease(s); the limit is {max}"),
            ));
        }
        if self.counts_today(lease) {
            self.check_spend(owner, usage.owner_spend_today, lease.charge())?;
        }
        if let Some(max) = self.max_leases
            && usage.leases >= u64::from(max)
        {
            let used = usage.leases;
            return Err(refusal(
                Limit::Leases,
                format!("the host has {used} active lease(s); the limit is {max}"),
            ));
        }
        if let Some(max) = self.max_nano_cpus
            && i128::from(usage.nano_cpus) + i128::from(lease.nano_cpus) > i128::from(max)
        {
            let (used, needed, max) = (cpus(usage.nano_cpus), cpus(lease.nano_cpus), cpus(max));
            return Err(refusal(
                Limit::Cpus,
                format!(
                    "the host's active leases reserve {used} CPUs; this lease needs {needed} more and the limit is {max}"
                ),
            ));
        }
        if let Some(max) = self.max_memory_mb
            && u128::from(usage.memory_mb) + u128::from(lease.memory_mb) > u128::from(max)
        {
            let (used, needed) = (usage.memory_mb, lease.memory_mb);
            return Err(refusal(
                Limit::Memory,
                format!(
                    "the host's active leases reserve {used} MiB of memory; this lease needs {needed} MiB more and the limit is {max} MiB"
                ),
            ));
        }
        Ok(())
    }

    /// Decides whether `stored` may be replaced by `next` when the owner's
    /// spend today (including `stored`'s charge) is `owner_spend_today`.
    /// Only a rise of the charge of a lease created today is checked, against
    /// [`Admission::max_daily_spend`]; the other limits do not apply to
    /// updates (owner and size do not change).
    pub fn check_update(
        &self,
        owner_spend_today: Money,
        stored: &Lease,
        next: &Lease,
    ) -> Result<(), StoreError> {
        let (before, after) = (stored.charge(), next.charge());
        if after > before && self.counts_today(next) {
            self.check_spend(&next.owner, owner_spend_today, after - before)?;
        }
        Ok(())
    }

    /// Refuses when `spent` plus `extra` is above the daily spend limit.
    fn check_spend(&self, owner: &str, spent: Money, extra: Money) -> Result<(), StoreError> {
        match self.max_daily_spend {
            Some(max) if spent + extra > max => Err(refusal(
                Limit::DailySpend,
                format!(
                    "{owner} has been charged ${spent} for leases created today; this needs ${extra} more and the limit is ${max}"
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// A refusal by `limit`.
fn refusal(limit: Limit, message: String) -> StoreError {
    StoreError::LimitReached { limit, message }
}

/// Nano-CPUs as a decimal number of CPUs, exactly (`1500000000` → `1.5`).
fn cpus(nano_cpus: i64) -> Money {
    // Money is an exact nine-decimal number; its text has no currency sign.
    Money::from_nanos(nano_cpus)
}

/// Midnight UTC of `at`'s day.
pub fn start_of_day(at: DateTime<Utc>) -> DateTime<Utc> {
    at.date_naive().and_time(NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::id::LeaseId;

    fn lease(owner: &str, created_at: DateTime<Utc>, cost: &str) -> Lease {
        let mut lease = Lease::new(
            LeaseId::generate(),
            owner,
            "alpine",
            Money::ZERO,
            created_at,
            created_at + Duration::hours(1),
        );
        lease.estimated_cost = cost.parse().expect("a decimal amount");
        lease.nano_cpus = 500_000_000;
        lease.memory_mb = 256;
        lease
    }

    fn limit_of(result: Result<(), StoreError>) -> Option<Limit> {
        match result {
            Ok(()) => None,
            Err(StoreError::LimitReached { limit, .. }) => Some(limit),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0)
            .single()
            .expect("a valid time")
    }

    #[test]
    fn unlimited_admits_anything() {
        let usage = AdmissionUsage {
            owner_leases: u64::MAX,
            owner_spend_today: Money::from_nanos(i64::MAX),
            leases: u64::MAX,
            nano_cpus: i64::MAX,
            memory_mb: u64::MAX,
        };
        let admission = Admission::today(noon());
        assert!(!admission.is_limited());
        assert_eq!(
            limit_of(admission.check(&usage, &lease("ada", noon(), "1"))),
            None
        );
    }

    #[test]
    fn each_limit_refuses_exactly_past_its_boundary() {
        let new = lease("ada", noon(), "0.10");
        let base = Admission::today(noon());
        let cases = [
            (
                Admission {
                    max_leases_per_owner: Some(2),
                    ..base.clone()
                },
                AdmissionUsage {
                    owner_leases: 1,
                    ..AdmissionUsage::default()
                },
                AdmissionUsage {
                    owner_leases: 2,
                    ..AdmissionUsage::default()
                },
                Limit::LeasesPerOwner,
            ),
            (
                Admission {
                    max_daily_spend: Some("0.30".parse().expect("amount")),
                    ..base.clone()
                },
                AdmissionUsage {
                    owner_spend_today: "0.20".parse().expect("amount"),
                    ..AdmissionUsage::default()
                },
                AdmissionUsage {
                    owner_spend_today: "0.200000001".parse().expect("amount"),
                    ..AdmissionUsage::default()
                },
                Limit::DailySpend,
            ),
            (
                Admission {
                    max_leases: Some(3),
                    ..base.clone()
                },
                AdmissionUsage {
                    leases: 2,
                    ..AdmissionUsage::default()
                },
                AdmissionUsage {
                    leases: 3,
                    ..AdmissionUsage::default()
                },
                Limit::Leases,
            ),
            (
                Admission {
                    max_nano_cpus: Some(2_000_000_000),
                    ..base.clone()
                },
                AdmissionUsage {
                    nano_cpus: 1_500_000_000,
                    ..AdmissionUsage::default()
                },
                AdmissionUsage {
                    nano_cpus: 1_500_000_001,
                    ..AdmissionUsage::default()
                },
                Limit::Cpus,
            ),
            (
                Admission {
                    max_memory_mb: Some(1024),
                    ..base.clone()
                },
                AdmissionUsage {
                    memory_mb: 768,
                    ..AdmissionUsage::default()
                },
                AdmissionUsage {
                    memory_mb: 769,
                    ..AdmissionUsage::default()
                },
                Limit::Memory,
            ),
        ];
        for (admission, fits, over, limit) in cases {
            assert_eq!(limit_of(admission.check(&fits, &new)), None, "{limit}");
            assert_eq!(
                limit_of(admission.check(&over, &new)),
                Some(limit),
                "{limit}"
            );
        }
    }

    #[test]
    fn first_failing_limit_in_enum_order_is_reported() {
        let admission = Admission {
            max_leases_per_owner: Some(1),
            max_daily_spend: Some(Money::ZERO),
            max_leases: Some(1),
            max_nano_cpus: Some(1),
            max_memory_mb: Some(1),
            ..Admission::today(noon())
        };
        let full = AdmissionUsage {
            owner_leases: 1,
            leases: 1,
            ..AdmissionUsage::default()
        };
        let new = lease("ada", noon(), "0.10");
        assert_eq!(
            limit_of(admission.check(&full, &new)),
            Some(Limit::LeasesPerOwner)
        );
        let host_full = AdmissionUsage {
            leases: 1,
            ..AdmissionUsage::default()
        };
        assert_eq!(
            limit_of(admission.check(&host_full, &new)),
            Some(Limit::DailySpend)
        );
        let no_spend = Admission {
            max_daily_spend: None,
            ..admission
        };
        assert_eq!(
            limit_of(no_spend.check(&host_full, &new)),
            Some(Limit::Leases)
        );
    }

    #[test]
    fn a_lease_created_before_today_does_not_count_toward_spend() {
        let admission = Admission {
            max_daily_spend: Some(Money::ZERO),
            ..Admission::today(noon())
        };
        let yesterday = lease("ada", noon() - Duration::days(1), "5");
        assert_eq!(
            limit_of(admission.check(&AdmissionUsage::default(), &yesterday)),
            None
        );
    }

    #[test]
    fn update_checks_only_a_rise_of_the_charge() {
        let admission = Admission {
            max_daily_spend: Some("1".parse().expect("amount")),
            max_leases_per_owner: Some(0),
            ..Admission::today(noon())
        };
        let stored = lease("ada", noon(), "0.50");
        let mut cheaper = stored.clone();
        cheaper.estimated_cost = "0.10".parse().expect("amount");
        let spent: Money = "0.90".parse().expect("amount");
        assert_eq!(
            limit_of(admission.check_update(spent, &stored, &cheaper)),
            None
        );
        let mut pricier = stored.clone();
        pricier.estimated_cost = "0.60".parse().expect("amount");
        assert_eq!(
            limit_of(admission.check_update(spent, &stored, &pricier)),
            None,
            "0.90 + 0.10 is exactly the limit"
        );
        pricier.estimated_cost = "0.600000001".parse().expect("amount");
        assert_eq!(
            limit_of(admission.check_update(spent, &stored, &pricier)),
            Some(Limit::DailySpend)
        );
    }

    #[test]
    fn messages_name_owner_use_and_limit() {
        let admission = Admission {
            max_nano_cpus: Some(4_500_000_000),
            ..Admission::today(noon())
        };
        let usage = AdmissionUsage {
            nano_cpus: 4_250_000_000,
            ..AdmissionUsage::default()
        };
        match admission.check(&usage, &lease("ada", noon(), "0")) {
            Err(StoreError::LimitReached { message, .. }) => {
                assert!(message.contains("4.25 CPUs"), "{message}");
                assert!(message.contains("0.5 more"), "{message}");
                assert!(message.contains("limit is 4.5"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn start_of_day_is_utc_midnight() {
        let midnight = Utc
            .with_ymd_and_hms(2026, 3, 4, 0, 0, 0)
            .single()
            .expect("a valid time");
        assert_eq!(start_of_day(noon()), midnight);
        assert_eq!(start_of_day(midnight), midnight);
    }
}
