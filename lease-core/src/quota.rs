//! Quotas and host capacity, as the engine applies them.
//!
//! The limits themselves are checked by the store, atomically with the
//! write ([`Admission`]); this module builds the [`Admission`] from the
//! [`ManagerConfig`](crate::ManagerConfig) and the clock, turns a store's
//! refusal into the engine's error, and sums an owner's spend today for
//! display.

use std::ops::ControlFlow;

use crate::admission::{Admission, Limit, start_of_day};
use crate::error::LeaseError;
use crate::lease::Lease;
use crate::manager::LeaseManager;
use crate::money::Money;
use crate::store::{HistoryQuery, LeaseStoreExt};

impl LeaseManager {
    /// The limits of the configuration, with "today" from the clock.
    pub(crate) fn admission(&self) -> Admission {
        let config = self.config();
        Admission {
            max_leases_per_owner: config.max_leases_per_owner,
            max_daily_spend: config.max_daily_spend,
            day_start: start_of_day(self.clock().now()),
            max_leases: config.max_leases,
            max_nano_cpus: config.max_nano_cpus,
            max_memory_mb: config.max_memory_mb,
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
