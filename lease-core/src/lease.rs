//! The lease record and its status state machine.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::LeaseId;
use crate::money::Money;
use crate::pricing;

/// Where a lease is in its life.
///
/// ```text
/// pending ──> running ──> deleting ──> deleted
///    │           │            ^
///    └──> error ─┴──> exited ─┘        (error/exited leases are still reaped at expiry)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Stored; the container is being provisioned in the background.
    Pending,
    /// The container is up.
    Running,
    /// Provisioning failed (or the container failed); see the lease's error.
    Error,
    /// The container stopped or vanished while the lease was live.
    Exited,
    /// The lease has ended; its container is being removed.
    Deleting,
    /// The container is gone and the lease is in history.
    Deleted,
}

impl Status {
    /// Every status, in life order.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Running,
        Status::Error,
        Status::Exited,
        Status::Deleting,
        Status::Deleted,
    ];

    /// Whether the state machine allows moving from `self` to `next`.
    /// Staying in the same status (an update of other fields) is allowed for
    /// every status but `deleted`.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        if self == next {
            return self != Deleted;
        }
        matches!(
            (self, next),
            (Pending, Running | Error | Deleting)
                | (Running, Exited | Error | Deleting)
                | (Error, Exited | Deleting)
                | (Exited, Deleting)
                | (Deleting, Deleted)
        )
    }

    /// Whether the lease is still billable and its container wanted.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Pending | Status::Running)
    }

    /// The lowercase name used in JSON and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Error => "error",
            Status::Exited => "exited",
            Status::Deleting => "deleting",
            Status::Deleted => "deleted",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a lease status (pending, running, error, exited, deleting, deleted)")]
pub struct InvalidStatus(pub String);

impl FromStr for Status {
    type Err = InvalidStatus;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| InvalidStatus(text.to_owned()))
    }
}

/// How a lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// Its owner removed it early.
    Deleted,
    /// Its time ran out.
    Expired,
    /// Provisioning failed or timed out.
    Error,
    /// Its container stopped or vanished.
    Exited,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease {id} cannot go from {from} to {to}")]
pub struct InvalidTransition {
    /// The lease.
    pub id: LeaseId,
    /// Its current status.
    pub from: Status,
    /// The status asked for.
    pub to: Status,
}

/// One rented container's lease.
///
/// Every stored change is a compare-and-set on [`Lease::revision`]: a store
/// accepts an update only if the stored revision equals the one the caller
/// read, and then stores it with the revision plus one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The lease's id.
    pub id: LeaseId,
    /// Who rented it.
    pub owner: String,
    /// The catalog offering's key (the seed's `imageType`).
    pub offering: String,
    /// The runtime's container id, once known.
    pub container_id: Option<String>,
    /// Where the lease is in its life.
    pub status: Status,
    /// When it was asked for; billing starts here.
    pub created_at: DateTime<Utc>,
    /// When its time runs out.
    pub expires_at: DateTime<Utc>,
    /// When it first became `running` (its container up), by the engine's
    /// clock; `None` if it never did. Records written before it was kept
    /// read as `None`.
    #[serde(default)]
    pub running_at: Option<DateTime<Utc>>,
    /// When the engine moved it into history (its container's removal
    /// confirmed), by the engine's clock; `None` while active. Unlike
    /// `ended_at` it is not capped at the expiry: `finished_at - expires_at`
    /// is how late the reaper was. Records written before it was kept read
    /// as `None`.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// When billing stopped (deleted, expired, failed or exited); `None` while live.
    pub ended_at: Option<DateTime<Utc>>,
    /// How it ended, once it has.
    pub end_reason: Option<EndReason>,
    /// The offering's hourly rate when the lease was made (later price
    /// changes do not touch existing leases).
    pub hourly_rate: Money,
    /// Price for the whole booked duration, known up front.
    pub estimated_cost: Money,
    /// The offering's CPU share when the lease was made, in nano-CPUs
    /// (counts toward the host's CPU budget while the lease is active).
    /// Records written before sizes were kept read as 0.
    #[serde(default)]
    pub nano_cpus: i64,
    /// The offering's memory when the lease was made, in MiB (counts toward
    /// the host's memory budget while the lease is active). Records written
    /// before sizes were kept read as 0.
    #[serde(default)]
    pub memory_mb: u32,
    /// What was charged, fixed when the lease ends.
    pub final_cost: Option<Money>,
    /// The last error (provisioning failure, failing removal), if any.
    pub error: Option<String>,
    /// Provisioning attempts made so far.
    pub provision_attempts: u32,
    /// Failed container removals so far.
    pub removal_failures: u32,
    /// Compare-and-set revision; the store bumps it on every write.
    pub revision: u64,
}

impl Lease {
    /// A new `pending` lease of `owner` for `offering`, booked from
    /// `created_at` until `expires_at` at `hourly_rate` and priced up front
    /// for the booked whole minutes. Nothing else is set yet; revision 0
    /// (a store ignores it on insert).
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use lease_core::{Lease, LeaseId, Money, Status};
    ///
    /// let now = Utc::now();
    /// let rate: Money = "0.04".parse().expect("a decimal amount");
    /// let lease = Lease::new(LeaseId::generate(), "ada", "ubuntu", rate, now, now + Duration::hours(2));
    /// assert_eq!(lease.status, Status::Pending);
    /// assert_eq!(lease.estimated_cost, "0.08".parse().expect("a decimal amount"));
    /// ```
    pub fn new(
        id: LeaseId,
        owner: impl Into<String>,
        offering: impl Into<String>,
        hourly_rate: Money,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Lease {
        let minutes = (expires_at - created_at).num_minutes().max(0);
        Lease {
            id,
            owner: owner.into(),
            offering: offering.into(),
            container_id: None,
            status: Status::Pending,
            created_at,
            expires_at,
            running_at: None,
            finished_at: None,
            ended_at: None,
            end_reason: None,
            hourly_rate,
            estimated_cost: pricing::estimate(
                hourly_rate,
                u32::try_from(minutes).unwrap_or(u32::MAX),
            ),
            nano_cpus: 0,
            memory_mb: 0,
            final_cost: None,
            error: None,
            provision_attempts: 0,
            removal_failures: 0,
            revision: 0,
        }
    }

    /// The same lease sized `nano_cpus` / `memory_mb` (its offering's size).
    pub fn with_size(mut self, nano_cpus: i64, memory_mb: u32) -> Lease {
        self.nano_cpus = nano_cpus;
        self.memory_mb = memory_mb;
        self
    }

    /// What the lease counts toward its owner's daily spend: its final cost
    /// once fixed; else, once billing has stopped, the cost accrued until
    /// then; else the estimate for the whole booking.
    pub fn charge(&self) -> Money {
        match (self.final_cost, self.ended_at) {
            (Some(final_cost), _) => final_cost,
            (None, Some(ended_at)) => self.accrued_cost(ended_at),
            (None, None) => self.estimated_cost,
        }
    }

    /// Moves to `next`, or refuses if the state machine forbids it.
    pub fn transition(&mut self, next: Status) -> Result<(), InvalidTransition> {
        if self.status.can_become(next) {
            self.status = next;
            Ok(())
        } else {
            Err(InvalidTransition {
                id: self.id.clone(),
                from: self.status,
                to: next,
            })
        }
    }

    /// Stops billing at `at` (capped to the expiry) with `reason`, if not stopped yet.
    pub fn end_billing(&mut self, at: DateTime<Utc>, reason: EndReason) {
        if self.ended_at.is_none() {
            self.ended_at = Some(at.min(self.expires_at).max(self.created_at));
            self.end_reason = Some(reason);
        }
    }

    /// When the reaper should pick the lease up: at expiry, or at once when
    /// it is already `deleting`.
    pub fn due_at(&self) -> DateTime<Utc> {
        match self.status {
            Status::Deleting => self
                .ended_at
                .unwrap_or(self.expires_at)
                .min(self.expires_at),
            _ => self.expires_at,
        }
    }

    /// Whether the lease is due for reaping at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.due_at() <= now
    }

    /// Seconds of booked time left at `now` (zero once expired), as the
    /// seed's `expiresIn`.
    pub fn expires_in(&self, now: DateTime<Utc>) -> i64 {
        (self.expires_at - now).num_seconds().max(0)
    }

    /// The cost so far: rate × time held, up to `now` or the end of billing.
    pub fn accrued_cost(&self, now: DateTime<Utc>) -> Money {
        if let Some(final_cost) = self.final_cost {
            return final_cost;
        }
        let until = self.ended_at.unwrap_or(now).min(self.expires_at);
        pricing::accrued(self.hourly_rate, until - self.created_at)
    }

    /// The booked duration in whole minutes.
    pub fn booked_minutes(&self) -> i64 {
        (self.expires_at - self.created_at).num_minutes()
    }
}
