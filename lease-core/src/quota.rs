//! Per-owner quotas: concurrent leases and estimated spend per UTC day.
//!
//! Checked before a lease is stored or extended. The check reads the store
//! and then writes, so two requests racing at the very limit may both pass;
//! the quota is a guard against sprawl, not a billing ledger.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};

use crate::error::LeaseError;
use crate::lease::Lease;
use crate::manager::LeaseManager;
use crate::money::Money;
use crate::store::{HistoryQuery, LeaseStoreExt, ListQuery};

impl LeaseManager {
    /// Refuses when `owner` would exceed a quota by adding a lease
    /// (`new_lease`) and `extra` estimated spend.
    pub(crate) async fn check_quota(
        &self,
        owner: &str,
        extra: Money,
        new_lease: bool,
    ) -> Result<(), LeaseError> {
        let config = self.config();
        if config.max_leases_per_owner.is_none() && config.max_daily_spend.is_none() {
            return Ok(());
        }
        let active = self.list_all(&ListQuery::owner(owner)).await?;
        if let Some(max) = config.max_leases_per_owner
            && new_lease
            && active.len() >= max as usize
        {
            return Err(LeaseError::QuotaExceeded {
                limit: "max_leases_per_owner",
                message: format!(
                    "{owner} has {} active lease(s); the limit is {max}",
                    active.len()
                ),
            });
        }
        if let Some(max) = config.max_daily_spend {
            let spent = self.spend_today(owner, &active).await?;
            if spent + extra > max {
                return Err(LeaseError::QuotaExceeded {
                    limit: "max_daily_spend",
                    message: format!(
                        "{owner} has ${spent} estimated spend today; this needs ${extra} more and the limit is ${max}"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Estimated spend of `owner`'s leases created today (UTC): live leases
    /// at their estimate, ended ones at what they cost.
    pub async fn spend_today(&self, owner: &str, active: &[Lease]) -> Result<Money, LeaseError> {
        let now = self.clock().now();
        let day_start = start_of_day(now);
        let mut spent: Money = active
            .iter()
            .filter(|lease| lease.created_at >= day_start)
            .map(|lease| {
                if lease.status.is_live() {
                    lease.estimated_cost
                } else {
                    lease.accrued_cost(now)
                }
            })
            .sum();
        let query = HistoryQuery {
            owner: Some(owner.to_owned()),
            ..HistoryQuery::default()
        };
        // History is newest ended first: stop at the first lease that ended
        // before today.
        self.store()
            .walk_history(&query, |lease| {
                if lease.ended_at.is_some_and(|ended| ended < day_start) {
                    return ControlFlow::Break(());
                }
                if lease.created_at >= day_start {
                    spent += lease.final_cost.unwrap_or_default();
                }
                ControlFlow::Continue(())
            })
            .await?;
        Ok(spent)
    }
}

/// Midnight UTC of `at`'s day.
fn start_of_day(at: DateTime<Utc>) -> DateTime<Utc> {
    at.date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(at, |midnight| midnight.and_utc())
}
