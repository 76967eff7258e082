//! The reaper: ends expired leases and removes their containers.
//!
//! It sleeps until the earliest due lease (or the sweep interval, whichever
//! is sooner) and is woken early when a lease is deleted, or created or
//! extended with a due time before the moment it will look anyway (a lease
//! due later is found by that look: most new leases wake nothing, which
//! spares the store a claim and a `next_due` per provision). Each due lease is claimed through the store, so across replicas
//! exactly one reaper works on it at a time (DESIGN invariant 5). A lease
//! leaves the active set only after its container's removal is confirmed
//! (invariant 2); a removal that keeps failing is retried — quickly with
//! exponential backoff, then once every sweep — and never dropped
//! (invariant 6).

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::cas::{CompareAndSet, Outcome, Step, is_conflict};
use crate::clock::Clock;
use crate::config::ManagerConfig;
use crate::error::{LeaseError, RuntimeError};
use crate::event::{EventKind, EventSink};
use crate::lease::{EndReason, Lease, Status};
use crate::runtime::{ContainerRuntime, container_name};
use crate::store::LeaseStore;

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
enum Reaped {
    Finished,
    Failed,
    Skipped,
}

/// The reaper's settings, taken from [`ManagerConfig`].
#[derive(Clone, Debug)]
struct Settings {
    namespace: String,
    sweep_interval: StdDuration,
    claim_ttl: StdDuration,
    reap_batch: usize,
    max_concurrent_removals: usize,
    quick_retries: u32,
    quick_retry_base: StdDuration,
}

/// Claims due leases, removes their containers and finishes them.
#[derive(Debug)]
pub(crate) struct Reaper {
    store: Arc<dyn LeaseStore>,
    runtime: Arc<dyn ContainerRuntime>,
    clock: Arc<dyn Clock>,
    events: EventSink,
    settings: Settings,
    /// Wakes the loop early (a lease was created, extended or deleted).
    wake: Arc<Notify>,
    /// When the sleeping loop will look again by itself; `None` while it
    /// is not asleep (a pass, or reading the next due time, is running).
    scheduled: Mutex<Option<DateTime<Utc>>>,
}

impl Reaper {
    /// A reaper over `store` and `runtime` with `config`'s reaping settings.
    pub(crate) fn new(
        store: Arc<dyn LeaseStore>,
        runtime: Arc<dyn ContainerRuntime>,
        clock: Arc<dyn Clock>,
        events: EventSink,
        config: &ManagerConfig,
    ) -> Self {
        Reaper {
            store,
            runtime,
            clock,
            events,
            settings: Settings {
                namespace: config.namespace.clone(),
                sweep_interval: config.sweep_interval,
                claim_ttl: config.claim_ttl,
                reap_batch: config.reap_batch,
                max_concurrent_removals: config.max_concurrent_removals,
                quick_retries: config.quick_retries,
                quick_retry_base: config.quick_retry_base,
            },
            wake: Arc::new(Notify::new()),
            scheduled: Mutex::new(None),
        }
    }

    /// Wakes the loop now: the earliest due time may have moved.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wakes the loop if a lease due at `due` would otherwise wait past
    /// it: unless the loop sleeps until `due` or earlier (it then finds
    /// the lease when it looks, by reading the store).
    ///
    /// The loop reads the next due time before it records when it will
    /// look, and forgets that moment as soon as it wakes: a lease written
    /// before `wake_for` is called either was seen by that read or meets
    /// `None` or a later moment here, and wakes the loop.
    pub(crate) fn wake_for(&self, due: DateTime<Utc>) {
        let scheduled = *crate::manager::lock(&self.scheduled);
        if scheduled.is_some_and(|at| at <= due) {
            return;
        }
        self.wake.notify_one();
    }

    /// The handle that wakes the loop, for parts that change due times.
    pub(crate) fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Runs the reaper until `stop` completes.
    pub(crate) async fn run(&self, stop: impl Future<Output = ()>) {
        let mut stop = pin!(stop);
        info!(namespace = %self.settings.namespace, "reaper started");
        loop {
            let looked_at = self.clock.now();
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
            let wake_at = self.next_wake(pause, looked_at).await;
            *crate::manager::lock(&self.scheduled) = Some(wake_at);
            tokio::select! {
                () = self.clock.sleep_until(wake_at) => {}
                () = self.wake.notified() => {}
                () = &mut stop => break,
            }
            *crate::manager::lock(&self.scheduled) = None;
        }
        info!("reaper stopped");
    }

    /// When the reaper should look again: the earliest claimable lease or the
    /// next sweep, whichever is sooner. A lease already due when the pass
    /// began (`looked_at`) was there to claim and was not (a store whose
    /// clock runs behind ours, a claim held elsewhere): the loop then waits
    /// at least `MIN_PAUSE` (or `pause`, after a failure) so it cannot spin.
    /// A lease that came due during the pass was never offered to it: the
    /// loop looks again at once, however long the pass took.
    async fn next_wake(
        &self,
        pause: Option<StdDuration>,
        looked_at: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let now = self.clock.now();
        let sweep = now + to_chrono(self.settings.sweep_interval);
        if let Some(pause) = pause {
            return sweep.max(now + to_chrono(pause));
        }
        let next = match self.store.next_due().await.ok().flatten() {
            Some(due) => due.min(sweep),
            None => sweep,
        };
        if next > looked_at {
            next
        } else {
            next.max(now + to_chrono(MIN_PAUSE))
        }
    }

    /// Claims every due lease (in batches) and reaps them, removing their
    /// containers concurrently up to the configured bound.
    pub(crate) async fn reap_once(&self) -> Result<ReapReport, LeaseError> {
        let settings = &self.settings;
        let mut report = ReapReport::default();
        loop {
            let now = self.clock.now();
            let claimed = self
                .store
                .claim_expired(now, settings.reap_batch, settings.claim_ttl)
                .await?;
            let batch_full = claimed.len() >= settings.reap_batch;
            report.claimed += claimed.len();
            let outcomes: Vec<Reaped> = futures::stream::iter(claimed)
                .map(|lease| self.reap_lease(lease))
                .buffer_unordered(settings.max_concurrent_removals)
                .collect()
                .await;
            for outcome in outcomes {
                match outcome {
                    Reaped::Finished => report.finished += 1,
                    Reaped::Failed => report.failed += 1,
                    Reaped::Skipped => report.skipped += 1,
                }
            }
            if !batch_full {
                return Ok(report);
            }
        }
    }

    /// Reaps one claimed lease; store failures leave the claim to lapse so
    /// another pass (or replica) picks it up.
    async fn reap_lease(&self, lease: Lease) -> Reaped {
        let id = lease.id.clone();
        match self.try_reap(lease).await {
            Ok(outcome) => outcome,
            Err(error) => {
                warn!(lease_id = %id, error = %crate::error::error_chain(&error), "reaping failed; the claim will lapse and be retried");
                Reaped::Failed
            }
        }
    }

    async fn try_reap(&self, lease: Lease) -> Result<Reaped, LeaseError> {
        let Some(lease) = self.begin_deleting(lease).await? else {
            return Ok(Reaped::Skipped);
        };
        let handed_at = self.clock.now();
        let lateness_ms = (handed_at - lease.due_at()).num_milliseconds().max(0);
        match self.remove_container(&lease).await {
            Ok(()) => {
                let finished = self.finish_lease(lease).await?;
                if let Some(finished) = finished {
                    info!(lease_id = %finished.id, owner = %finished.owner, lateness_ms, final_cost = %finished.final_cost.unwrap_or_default(), "lease finished");
                    self.events.emit_with_lateness(
                        EventKind::Deleted,
                        &finished,
                        Some(lateness_ms),
                    );
                }
                Ok(Reaped::Finished)
            }
            Err((attempts, error)) => {
                self.record_removal_failure(lease, attempts, &error).await?;
                Ok(Reaped::Failed)
            }
        }
    }

    /// Moves a claimed lease to `deleting` (billing ends at expiry), or
    /// releases it if it is no longer due. `None`: nothing to reap.
    async fn begin_deleting(&self, lease: Lease) -> Result<Option<Lease>, LeaseError> {
        // The store decided the lease was due (by its own clock, which may
        // differ from ours): trust it, unless the lease has since been
        // extended past the time it was claimed at.
        let claimed_due = lease.due_at();
        let id = lease.id.clone();
        let begun = CompareAndSet::new(&*self.store, &id)
            .starting_from(lease)
            .apply(|mut lease| {
                if lease.status == Status::Deleted {
                    return Ok(Step::Leave(Begin::Nothing));
                }
                if lease.due_at() > claimed_due && !lease.is_due(self.clock.now()) {
                    return Ok(Step::Leave(Begin::Release(lease.due_at())));
                }
                if lease.status == Status::Deleting {
                    return Ok(Step::Leave(Begin::AlreadyDeleting(Box::new(lease))));
                }
                // Expired: billing ends exactly at expiry, whatever our clock says.
                lease.end_billing(lease.expires_at, EndReason::Expired);
                lease.transition(Status::Deleting)?;
                Ok(Step::Update(lease))
            })
            .await;
        match begun {
            Ok(Outcome::Written(lease) | Outcome::Left(Begin::AlreadyDeleting(lease))) => {
                Ok(Some(*lease))
            }
            Ok(Outcome::Left(Begin::Release(retry_at))) => {
                self.store.release(&id, retry_at).await?;
                Ok(None)
            }
            Ok(Outcome::Left(Begin::Nothing) | Outcome::Gone) => Ok(None),
            // Contended past every attempt: the claim lapses and a later
            // pass looks again.
            Err(error) if is_conflict(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Removes a lease's container: one attempt, plus quick retries with
    /// exponential backoff the first time round. On failure, the attempts
    /// made and the last error.
    async fn remove_container(&self, lease: &Lease) -> Result<(), (u32, RuntimeError)> {
        let settings = &self.settings;
        let target = lease
            .container_id
            .clone()
            .unwrap_or_else(|| container_name(&lease.id));
        let retries = if lease.removal_failures == 0 {
            settings.quick_retries
        } else {
            0
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.runtime.remove(&target).await {
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
                    let backoff = settings
                        .quick_retry_base
                        .saturating_mul(2u32.saturating_pow(attempts - 1));
                    tokio::time::sleep(backoff.min(settings.sweep_interval)).await;
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
        let id = lease.id.clone();
        // One attempt: if someone changed it meanwhile, keep theirs; the
        // retry still happens.
        let recorded = CompareAndSet::new(&*self.store, &id)
            .starting_from(lease.clone())
            .attempts(1)
            .apply(|lease| Ok(Step::<()>::Update(lease)))
            .await;
        let stored = match recorded {
            Ok(Outcome::Written(stored)) => *stored,
            Ok(Outcome::Left(()) | Outcome::Gone) => {
                return Err(LeaseError::NotFound(id));
            }
            Err(error) if is_conflict(&error) => lease,
            Err(error) => return Err(error),
        };
        self.events.emit(EventKind::ReapFailed, &stored);
        let retry_at = self.clock.now() + to_chrono(self.settings.sweep_interval);
        self.store.release(&stored.id, retry_at).await?;
        Ok(())
    }

    /// Fixes the final cost and moves the lease into history.
    async fn finish_lease(&self, lease: Lease) -> Result<Option<Lease>, LeaseError> {
        let id = lease.id.clone();
        let finished = CompareAndSet::new(&*self.store, &id)
            .starting_from(lease)
            .apply(|mut lease| {
                if lease.status == Status::Deleted {
                    return Ok(Step::Leave(()));
                }
                let now = self.clock.now();
                lease.end_billing(now, EndReason::Expired);
                if lease.removal_failures > 0 && lease.end_reason != Some(EndReason::Error) {
                    lease.error = None;
                }
                lease.final_cost = Some(lease.accrued_cost(now));
                lease.finished_at = Some(now);
                lease.transition(Status::Deleted)?;
                Ok(Step::Finish(lease))
            })
            .await;
        match finished {
            Ok(Outcome::Written(lease)) => Ok(Some(*lease)),
            Ok(Outcome::Left(()) | Outcome::Gone) => Ok(None),
            Err(error) if is_conflict(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// What [`Reaper::begin_deleting`] found when it left the lease alone.
enum Begin {
    /// Finished already: nothing to reap.
    Nothing,
    /// Extended since the claim: hand it back, claimable at this time.
    Release(DateTime<Utc>),
    /// Already `deleting` (deleted early, or a removal being retried).
    AlreadyDeleting(Box<Lease>),
}

/// A std duration as a chrono one (saturating).
pub(crate) fn to_chrono(duration: StdDuration) -> Duration {
    Duration::from_std(duration).unwrap_or(Duration::MAX)
}
