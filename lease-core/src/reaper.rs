//! The reaper: ends expired leases and removes their containers.
//!
//! It sleeps until the earliest due lease (or the sweep interval, whichever
//! is sooner) and is woken early when a lease is created, extended or
//! deleted. Each due lease is claimed through the store, so across replicas
//! exactly one reaper works on it at a time (DESIGN invariant 5). A lease
//! leaves the active set only after its container's removal is confirmed
//! (invariant 2); a removal that keeps failing is retried — quickly with
//! exponential backoff, then once every sweep — and never dropped
//! (invariant 6).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::{LeaseError, RuntimeError, StoreError};
use crate::event::EventKind;
use crate::lease::{EndReason, Lease, Status};
use crate::manager::{CAS_ATTEMPTS, LeaseManager};
use crate::runtime::container_name;

/// Shortest pause between sweeps, so a store whose clock runs behind ours
/// cannot make the reaper spin.
const MIN_PAUSE: StdDuration = StdDuration::from_millis(10);
/// Pause after the store failed, before trying again.
const STORE_RETRY: StdDuration = StdDuration::from_secs(1);

/// What one reaping pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Leases claimed.
    pub claimed: usize,
    /// Leases whose container was removed and which were finished.
    pub finished: usize,
    /// Leases whose removal failed (kept, retried at the next sweep).
    pub failed: usize,
    /// Leases claimed but no longer due (extended meanwhile), or finished by someone else.
    pub skipped: usize,
}

/// How reaping one lease went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Finished,
    Failed,
    Skipped,
}

impl LeaseManager {
    /// Runs the reaper until `shutdown` is cancelled.
    pub async fn run_reaper(&self, shutdown: CancellationToken) {
        info!(namespace = %self.inner.config.namespace, "reaper started");
        loop {
            let pause = match self.reap_once().await {
                Ok(report) => {
                    if report.claimed > 0 {
                        debug!(
                            claimed = report.claimed,
                            finished = report.finished,
                            failed = report.failed,
                            "reap pass"
                        );
                    }
                    None
                }
                Err(error) => {
                    warn!(error = %crate::error::error_chain(&error), "reap pass failed; retrying");
                    Some(STORE_RETRY)
                }
            };
            let wake_at = self.next_wake(pause).await;
            let clock = self.inner.clock.clone();
            tokio::select! {
                () = clock.sleep_until(wake_at) => {}
                () = self.inner.wake_reaper.notified() => {}
                () = shutdown.cancelled() => break,
                () = self.inner.shutdown.cancelled() => break,
            }
        }
        info!("reaper stopped");
    }

    /// When the reaper should look again: the earliest claimable lease or the
    /// next sweep, whichever is sooner, but not before `MIN_PAUSE` (or
    /// `pause`, after a failure).
    async fn next_wake(&self, pause: Option<StdDuration>) -> DateTime<Utc> {
        let now = self.inner.clock.now();
        let min_pause = to_chrono(pause.unwrap_or(MIN_PAUSE));
        let sweep = now + to_chrono(self.inner.config.sweep_interval);
        let next_due = match pause {
            Some(_) => None,
            None => self.inner.store.next_due().await.ok().flatten(),
        };
        next_due
            .map_or(sweep, |due| due.min(sweep))
            .max(now + min_pause)
    }

    /// Claims every due lease (in batches) and reaps them, removing their
    /// containers concurrently up to the configured bound.
    pub async fn reap_once(&self) -> Result<ReapReport, LeaseError> {
        let config = &self.inner.config;
        let mut report = ReapReport::default();
        loop {
            let now = self.inner.clock.now();
            let claimed = self
                .inner
                .store
                .claim_expired(now, config.reap_batch, config.claim_ttl)
                .await?;
            let batch_full = claimed.len() >= config.reap_batch;
            report.claimed += claimed.len();
            let outcomes: Vec<Outcome> = futures::stream::iter(claimed)
                .map(|lease| self.reap_lease(lease))
                .buffer_unordered(config.max_concurrent_removals)
                .collect()
                .await;
            for outcome in outcomes {
                match outcome {
                    Outcome::Finished => report.finished += 1,
                    Outcome::Failed => report.failed += 1,
                    Outcome::Skipped => report.skipped += 1,
                }
            }
            if !batch_full {
                return Ok(report);
            }
        }
    }

    /// Reaps one claimed lease; store failures leave the claim to lapse so
    /// another pass (or replica) picks it up.
    async fn reap_lease(&self, lease: Lease) -> Outcome {
        let id = lease.id.clone();
        match self.try_reap(lease).await {
            Ok(outcome) => outcome,
            Err(error) => {
                warn!(lease_id = %id, error = %crate::error::error_chain(&error), "reaping failed; the claim will lapse and be retried");
                Outcome::Failed
            }
        }
    }

    async fn try_reap(&self, lease: Lease) -> Result<Outcome, LeaseError> {
        let Some(lease) = self.begin_deleting(lease).await? else {
            return Ok(Outcome::Skipped);
        };
        let handed_at = self.inner.clock.now();
        let lateness_ms = (handed_at - lease.due_at()).num_milliseconds().max(0);
        match self.remove_container(&lease).await {
            Ok(()) => {
                let finished = self.finish_lease(lease).await?;
                if let Some(finished) = finished {
                    info!(lease_id = %finished.id, owner = %finished.owner, lateness_ms, final_cost = %finished.final_cost.unwrap_or_default(), "lease finished");
                    self.emit_with_lateness(EventKind::Deleted, &finished, Some(lateness_ms));
                }
                Ok(Outcome::Finished)
            }
            Err((attempts, error)) => {
                self.record_removal_failure(lease, attempts, &error).await?;
                Ok(Outcome::Failed)
            }
        }
    }

    /// Moves a claimed lease to `deleting` (billing ends at expiry), or
    /// releases it if it is no longer due. `None`: nothing to reap.
    async fn begin_deleting(&self, mut lease: Lease) -> Result<Option<Lease>, LeaseError> {
        // The store decided the lease was due (by its own clock, which may
        // differ from ours): trust it, unless the lease has since been
        // extended past the time it was claimed at.
        let claimed_due = lease.due_at();
        for _ in 0..CAS_ATTEMPTS {
            if lease.status == Status::Deleted {
                return Ok(None);
            }
            if lease.due_at() > claimed_due && !lease.is_due(self.inner.clock.now()) {
                self.inner.store.release(&lease.id, lease.due_at()).await?;
                return Ok(None);
            }
            if lease.status == Status::Deleting {
                return Ok(Some(lease));
            }
            // Expired: billing ends exactly at expiry, whatever our clock says.
            lease.end_billing(lease.expires_at, EndReason::Expired);
            lease.transition(Status::Deleting)?;
            match self.inner.store.update(&lease).await {
                Ok(stored) => return Ok(Some(stored)),
                Err(StoreError::Conflict { .. }) => lease = self.inner.store.get(&lease.id).await?,
                Err(StoreError::NotFound(_)) => return Ok(None),
                Err(other) => return Err(other.into()),
            }
        }
        Ok(None)
    }

    /// Removes a lease's container: one attempt, plus quick retries with
    /// exponential backoff the first time round. On failure, the attempts
    /// made and the last error.
    async fn remove_container(&self, lease: &Lease) -> Result<(), (u32, RuntimeError)> {
        let config = &self.inner.config;
        let target = lease
            .container_id
            .clone()
            .unwrap_or_else(|| container_name(&lease.id));
        let retries = if lease.removal_failures == 0 {
            config.quick_retries
        } else {
            0
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.inner.runtime.remove(&config.namespace, &target).await {
                Ok(()) => return Ok(()),
                Err(RuntimeError::NotManaged {
                    container,
                    namespace,
                }) => {
                    warn!(lease_id = %lease.id, container = %container, namespace = %namespace, "container is not ours; leaving it alone");
                    return Ok(());
                }
                Err(error) if attempts > retries => return Err((attempts, error)),
                Err(error) => {
                    debug!(lease_id = %lease.id, attempt = attempts, error = %error.chain(), "removal failed; retrying");
                    let backoff = config
                        .quick_retry_base
                        .saturating_mul(2u32.saturating_pow(attempts - 1));
                    tokio::time::sleep(backoff.min(config.sweep_interval)).await;
                }
            }
        }
    }

    /// Keeps a lease whose removal failed, records why, and hands it back to
    /// the store to be claimed again at the next sweep.
    async fn record_removal_failure(
        &self,
        mut lease: Lease,
        attempts: u32,
        error: &RuntimeError,
    ) -> Result<(), LeaseError> {
        lease.removal_failures += attempts;
        let message = format!(
            "container removal failed {} times: {}",
            lease.removal_failures,
            error.chain()
        );
        warn!(lease_id = %lease.id, failures = lease.removal_failures, error = %error.chain(), "container removal failed; will retry");
        if lease.end_reason != Some(EndReason::Error) {
            lease.error = Some(message);
        }
        let stored = match self.inner.store.update(&lease).await {
            Ok(stored) => stored,
            // Someone changed it meanwhile: keep theirs; the retry still happens.
            Err(StoreError::Conflict { .. }) => lease,
            Err(other) => return Err(other.into()),
        };
        self.emit(EventKind::ReapFailed, &stored);
        let retry_at = self.inner.clock.now() + to_chrono(self.inner.config.sweep_interval);
        self.inner.store.release(&stored.id, retry_at).await?;
        Ok(())
    }

    /// Fixes the final cost and moves the lease into history.
    async fn finish_lease(&self, mut lease: Lease) -> Result<Option<Lease>, LeaseError> {
        for _ in 0..CAS_ATTEMPTS {
            if lease.status == Status::Deleted {
                return Ok(None);
            }
            let now = self.inner.clock.now();
            lease.end_billing(now, EndReason::Expired);
            if lease.removal_failures > 0 && lease.end_reason != Some(EndReason::Error) {
                lease.error = None;
            }
            lease.final_cost = Some(lease.accrued_cost(now));
            lease.transition(Status::Deleted)?;
            match self.inner.store.finish(&lease).await {
                Ok(stored) => return Ok(Some(stored)),
                Err(StoreError::Conflict { .. }) => lease = self.inner.store.get(&lease.id).await?,
                Err(StoreError::NotFound(_)) => return Ok(None),
                Err(other) => return Err(other.into()),
            }
        }
        Ok(None)
    }
}

/// A std duration as a chrono one (saturating).
pub(crate) fn to_chrono(duration: StdDuration) -> Duration {
    Duration::from_std(duration).unwrap_or(Duration::MAX)
}
