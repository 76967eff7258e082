//! Quotas and host capacity, as the engine applies them.
//!
//! The limits themselves are checked by the store, atomically with the
//! write ([`Admission`]); this module builds the [`Admission`] from the
//! [`ManagerConfig`](crate::ManagerConfig) and the clock, turns a store's
//! refusal into the engine's error, and sums an owner's spend today for
//! display.

use std::ops::ControlFlow;

use crate::admission::{Admission, Limit, start_of_day};
use crate::catalog::Catalog;
use crate::config::ManagerConfig;
use crate::error::{LeaseError, ValidationError};
use crate::lease::Lease;
use crate::manager::LeaseManager;
use crate::money::Money;
use crate::store::{HistoryQuery, LeaseStoreExt};

/// What the catalog's warm pools hold at their full size: containers,
/// nano-CPUs and MiB of memory, counted against the host's capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PoolReserve {
    pub(crate) containers: u64,
    pub(crate) nano_cpus: i64,
    pub(crate) memory_mb: u64,
}

impl PoolReserve {
    /// Σ over the offerings of `pool` × the offering's size.
    pub(crate) fn of(catalog: &Catalog) -> PoolReserve {
        catalog
            .offerings()
            .fold(PoolReserve::default(), |sum, offering| PoolReserve {
                containers: sum.containers + u64::from(offering.pool),
                nano_cpus: sum
                    .nano_cpus
                    .saturating_add(offering.nano_cpus.saturating_mul(i64::from(offering.pool))),
                memory_mb: sum.memory_mb + u64::from(offering.memory_mb) * u64::from(offering.pool),
            })
    }

    /// Refuses a configuration whose pools alone would fill a host limit
    /// (no lease could ever be admitted).
    pub(crate) fn check(self, config: &ManagerConfig) -> Result<(), ValidationError> {
        let too_big = config
            .max_leases
            .is_some_and(|max| self.containers >= u64::from(max))
            || config
                .max_nano_cpus
                .is_some_and(|max| self.nano_cpus >= max && self.nano_cpus > 0)
            || config
                .max_memory_mb
                .is_some_and(|max| self.memory_mb >= max && self.memory_mb > 0);
        if too_big {
            return Err(ValidationError::new(
                "pool",
                format!(
                    "the catalog's warm pools ({} containers, {} nano-CPUs, {} MiB) leave no room for leases within the host limits",
                    self.containers, self.nano_cpus, self.memory_mb
                ),
            ));
        }
        Ok(())
    }
}

impl LeaseManager {
    /// The limits of the configuration, with "today" from the clock. The
    /// host limits leave room for the warm pools: a pool of N holds up to N
    /// containers of its offering that leases do not count, so leases may
    /// use the host's capacity less [`PoolReserve`] of the catalog (pool
    /// containers + leases stay within the host's limits).
    pub(crate) fn admission(&self) -> Admission {
        let config = self.config();
        let reserve = PoolReserve::of(self.catalog());
        Admission {
            max_leases_per_owner: config.max_leases_per_owner,
            max_daily_spend: config.max_daily_spend,
            day_start: start_of_day(self.clock().now()),
            max_leases: config.max_leases.map(|max| {
                max.saturating_sub(u32::try_from(reserve.containers).unwrap_or(u32::MAX))
            }),
            max_nano_cpus: config
                .max_nano_cpus
                .map(|max| max.saturating_sub(reserve.nano_cpus).max(0)),
            max_memory_mb: config
                .max_memory_mb
                .map(|max| max.saturating_sub(reserve.memory_mb)),
        }
    }

    /// What `owner` has been charged ([`Lease::charge`]) for leases created
    /// today (UTC): live leases at their estimate, ended ones at what they
    /// cost. `active` is the owner's active leases, already read. For
    /// display: the limit itself is checked by the store.
    pub async fn spend_today(&self, owner: &str, active: &[Lease]) -> Result<Money, LeaseError> {
        let day_start = start_of_day(self.clock().now());
        let mut spent: Money = active
            .iter()
            .filter(|lease| lease.created_at >= day_start)
            .map(Lease::charge)
            .sum();
        let query = HistoryQuery {
            owner: Some(owner.to_owned()),
            ..HistoryQuery::default()
        };
        // History is newest ended first: stop at the first lease that ended
        // before today (it, and every older one, was created before today).
        self.store()
            .walk_history(&query, |lease| {
                if lease.ended_at.is_some_and(|ended| ended < day_start) {
                    return ControlFlow::Break(());
                }
                if lease.created_at >= day_start {
                    spent += lease.charge();
                }
                ControlFlow::Continue(())
            })
            .await?;
        Ok(spent)
    }
}

/// The engine's error for a store's refusal by `limit`: an owner's quota
/// ([`LeaseError::QuotaExceeded`]) or the host's capacity
/// ([`LeaseError::CapacityExhausted`]).
pub(crate) fn limit_error(limit: Limit, message: String) -> LeaseError {
    if limit.is_host() {
        LeaseError::CapacityExhausted {
            limit: limit.as_str(),
            message,
        }
    } else {
        LeaseError::QuotaExceeded {
            limit: limit.as_str(),
            message,
        }
    }
}
