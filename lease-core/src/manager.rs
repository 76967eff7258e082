//! The lease engine: provision, read, extend, delete and account for leases.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::cas::{CompareAndSet, Outcome, Step};
use crate::catalog::{Catalog, Offering};
use crate::clock::{Clock, SystemClock};
use crate::config::ManagerConfig;
use crate::error::{LeaseError, ValidationError};
use crate::event::{EventKind, EventSink, LeaseEvent};
use crate::id::LeaseId;
use crate::lease::{EndReason, Lease, Status};
use crate::money::Money;
use crate::pricing;
use crate::reaper::Reaper;
use crate::reconciler::Reconciler;
use crate::runtime::{
    ContainerRuntime, ExecRequest, ExecSession, LogOptions, LogStream, PullProgress,
};
use crate::store::{HistoryQuery, LeaseStore, LeaseStoreExt, ListQuery, Page};

/// Events kept for slow subscribers before they start missing some.
const EVENT_CAPACITY: usize = 1024;
/// Longest owner name accepted.
const MAX_OWNER_LEN: usize = 128;

/// A request for a new lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionRequest {
    /// Who is renting.
    pub owner: String,
    /// The catalog offering's key (the seed's `imageType`).
    pub offering: String,
    /// Booked minutes; `None` takes the offering's default (120).
    pub minutes: Option<u32>,
}

impl ProvisionRequest {
    /// A request for `offering` by `owner` with the default duration.
    pub fn new(owner: impl Into<String>, offering: impl Into<String>) -> Self {
        ProvisionRequest {
            owner: owner.into(),
            offering: offering.into(),
            minutes: None,
        }
    }

    /// Books `minutes` instead of the default.
    pub fn minutes(mut self, minutes: u32) -> Self {
        self.minutes = Some(minutes);
        self
    }
}

/// One owner's spend and counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Leases not yet finished (any status but deleted).
    pub active: u64,
    /// Of those, pending or running.
    pub live: u64,
    /// Accrued so far by the active leases.
    pub accrued: Money,
    /// Estimated total of the live leases' bookings.
    pub estimated: Money,
    /// Finished leases.
    pub ended_count: u64,
    /// Their final costs.
    pub ended_cost: Money,
    /// `ended_cost + accrued`.
    pub total_spend: Money,
}

/// Builds a [`LeaseManager`].
#[derive(Debug)]
pub struct LeaseManagerBuilder {
    store: Arc<dyn LeaseStore>,
    runtime: Arc<dyn ContainerRuntime>,
    catalog: Catalog,
    config: ManagerConfig,
    clock: Arc<dyn Clock>,
}

impl LeaseManagerBuilder {
    /// Uses `catalog` instead of [`Catalog::default`].
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = catalog;
        self
    }

    /// Uses `config` instead of [`ManagerConfig::default`].
    pub fn config(mut self, config: ManagerConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses `clock` instead of [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and builds the manager.
    pub fn build(self) -> Result<LeaseManager, LeaseError> {
        self.config.validate()?;
        if self.runtime.namespace() != self.config.namespace {
            return Err(ValidationError::new(
                "namespace",
                format!(
                    "the container runtime is scoped to namespace `{}`, the configuration names `{}`",
                    self.runtime.namespace(),
                    self.config.namespace
                ),
            )
            .into());
        }
        if self.catalog.offerings().any(|offering| offering.pool > 0) {
            crate::quota::PoolReserve::of(&self.catalog).check(&self.config)?;
        }
        let events = EventSink::new(EVENT_CAPACITY, self.clock.clone());
        let catalog = Arc::new(self.catalog);
        let shutdown = CancellationToken::new();
        let reaper = Reaper::new(
            self.store.clone(),
            self.runtime.clone(),
            self.clock.clone(),
            events.clone(),
            &self.config,
        );
        let reconciler = Reconciler::new(
            self.store.clone(),
            self.runtime.clone(),
            self.clock.clone(),
            catalog.clone(),
            events.clone(),
            &self.config,
            reaper.waker(),
        );
        Ok(LeaseManager {
            inner: Arc::new(Inner {
                store: self.store,
                runtime: self.runtime,
                catalog,
                config: self.config,
                clock: self.clock,
                events,
                reaper,
                reconciler,
                in_flight: Mutex::new(HashSet::new()),
                progress: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                shutdown,
                pools: crate::pool_fill::Pools::default(),
            }),
        })
    }
}

/// The lease engine. Cheap to clone; clones share everything.
///
/// It holds the two ports (`Arc<dyn LeaseStore>`, `Arc<dyn ContainerRuntime>`),
/// the catalog, the configuration and the clock. Background work — the
/// provisioning tasks, the reaper and the reconciler — runs on the tokio
/// runtime; see [`LeaseManager::start`].
#[derive(Clone, Debug)]
pub struct LeaseManager {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    store: Arc<dyn LeaseStore>,
    runtime: Arc<dyn ContainerRuntime>,
    catalog: Arc<Catalog>,
    config: ManagerConfig,
    clock: Arc<dyn Clock>,
    events: EventSink,
    /// Claims and reaps due leases.
    pub(crate) reaper: Reaper,
    /// Makes the store and the runtime agree.
    pub(crate) reconciler: Reconciler,
    /// Leases with a provisioning task running in this process.
    pub(crate) in_flight: Mutex<HashSet<LeaseId>>,
    /// Image-pull progress of pending leases provisioned here.
    pub(crate) progress: Mutex<HashMap<LeaseId, PullProgress>>,
    /// Provisioning and timer tasks, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// Cancels timers and loops when the manager shuts down.
    pub(crate) shutdown: CancellationToken,
    /// Warm-pool counters and the filler's wake-up.
    pub(crate) pools: crate::pool_fill::Pools,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LeaseManager {
    /// Starts building a manager over a store and a runtime.
    pub fn builder(
        store: Arc<dyn LeaseStore>,
        runtime: Arc<dyn ContainerRuntime>,
    ) -> LeaseManagerBuilder {
        LeaseManagerBuilder {
            store,
            runtime,
            catalog: Catalog::default(),
            config: ManagerConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The catalog in use.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The configuration in use.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The store in use.
    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.inner.store
    }

    /// The runtime in use.
    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.inner.runtime
    }

    /// Subscribes to lease events from this process.
    pub fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        self.inner.events.subscribe()
    }

    /// Validates a request, stores the lease as `pending` and returns it at
    /// once; its container is provisioned in the background.
    pub async fn provision(&self, request: ProvisionRequest) -> Result<Lease, LeaseError> {
        validate_owner(&request.owner)?;
        let offering = self.offering(&request.offering)?;
        let minutes = request.minutes.unwrap_or(offering.default_minutes);
        let max = self.max_minutes(offering);
        if !(1..=max).contains(&minutes) {
            return Err(ValidationError::new(
                "durationMinutes",
                format!("must be between 1 and {max} minutes"),
            )
            .into());
        }
        let now = self.inner.clock.now();
        let lease = Lease::new(
            LeaseId::generate(),
            request.owner,
            offering.key.clone(),
            offering.hourly_rate,
            now,
            now + Duration::minutes(i64::from(minutes)),
        )
        .with_size(offering.nano_cpus, offering.memory_mb);
        // The store checks the quotas and the host's capacity atomically
        // with the write, so parallel requests cannot all pass a limit.
        let stored = self.inner.store.insert(&lease, &self.admission()).await?;
        info!(lease_id = %stored.id, owner = %stored.owner, offering = %stored.offering, minutes, "lease created");
        self.emit(EventKind::Created, &stored);
        self.inner.reaper.wake_for(stored.due_at());
        self.spawn_expiry_warning(&stored);
        // A warm pool's ready container makes it running at once; else
        // (or with no pool) its container is created in the background,
        // starting from the lease as stored (no read).
        if let Some(running) = self.take_from_pool(&stored, offering).await {
            return Ok(running);
        }
        self.spawn_provisioning_from(stored.clone());
        Ok(stored)
    }

    /// A lease, active or finished.
    pub async fn get(&self, id: &LeaseId) -> Result<Lease, LeaseError> {
        Ok(self.inner.store.get(id).await?)
    }

    /// A lease if `owner` owns it; someone else's lease is reported as not found.
    pub async fn get_owned(&self, id: &LeaseId, owner: &str) -> Result<Lease, LeaseError> {
        let lease = self.get(id).await?;
        if lease.owner == owner {
            Ok(lease)
        } else {
            Err(LeaseError::NotFound(id.clone()))
        }
    }

    /// Active leases, filtered and paged.
    pub async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, LeaseError> {
        Ok(self.inner.store.list(query).await?)
    }

    /// Every active lease matching `query`, across pages.
    pub async fn list_all(&self, query: &ListQuery) -> Result<Vec<Lease>, LeaseError> {
        Ok(self.inner.store.list_all(query).await?)
    }

    /// Finished leases, newest first.
    pub async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, LeaseError> {
        Ok(self.inner.store.history(query).await?)
    }

    /// Every finished lease matching `query` still in history, across
    /// pages, newest first.
    pub async fn history_all(&self, query: &HistoryQuery) -> Result<Vec<Lease>, LeaseError> {
        Ok(self.inner.store.history_all(query).await?)
    }

    /// Image-pull progress of a pending lease provisioned by this process.
    pub fn pull_progress(&self, id: &LeaseId) -> Option<PullProgress> {
        lock(&self.inner.progress).get(id).cloned()
    }

    /// Books `minutes` more. The lease must be pending or running and not
    /// expired, and its whole lifetime must stay within the max lifetime.
    /// Re-estimates the cost for the new booking.
    pub async fn extend(&self, id: &LeaseId, minutes: u32) -> Result<Lease, LeaseError> {
        if minutes == 0 {
            return Err(ValidationError::new("minutes", "must be at least 1").into());
        }
        // The store refuses the write if the higher estimate goes over the
        // owner's daily spend limit.
        let extended = CompareAndSet::new(&*self.inner.store, id)
            .admission(self.admission())
            .run(|lease| self.extended(lease, minutes))
            .await?;
        let Outcome::Written(stored) = extended else {
            return Err(LeaseError::NotFound(id.clone()));
        };
        info!(lease_id = %id, minutes, expires_at = %stored.expires_at, "lease extended");
        self.emit(EventKind::Extended, &stored);
        self.inner.reaper.wake_for(stored.due_at());
        self.spawn_expiry_warning(&stored);
        Ok(*stored)
    }

    /// `lease` booked `minutes` longer and re-priced, if it is live, not
    /// expired and stays within the max lifetime (the store checks the
    /// daily spend when it writes).
    async fn extended(&self, mut lease: Lease, minutes: u32) -> Result<Step<()>, LeaseError> {
        let now = self.inner.clock.now();
        if !lease.status.is_live() || lease.expires_at <= now {
            let message = "only a live, unexpired lease can be extended".to_owned();
            return Err(LeaseError::WrongState {
                id: lease.id,
                status: lease.status,
                message,
            });
        }
        let booked = lease.booked_minutes() + i64::from(minutes);
        let max = self
            .inner
            .catalog
            .get(&lease.offering)
            .map_or(self.inner.config.max_minutes, |o| self.max_minutes(o));
        if booked > i64::from(max) {
            let left = (i64::from(max) - lease.booked_minutes()).max(0);
            let message = format!("the lifetime would exceed {max} minutes; at most {left} more");
            return Err(ValidationError::new("minutes", message).into());
        }
        let estimated =
            pricing::estimate(lease.hourly_rate, u32::try_from(booked).unwrap_or(u32::MAX));
        lease.expires_at += Duration::minutes(i64::from(minutes));
        lease.estimated_cost = estimated;
        Ok(Step::Update(lease))
    }

    /// Ends a lease early: billing stops now, and the reaper removes its
    /// container at once. Returns the lease as `deleting` (or as it is, if it
    /// has already ended).
    pub async fn delete(&self, id: &LeaseId) -> Result<Lease, LeaseError> {
        let deleted = CompareAndSet::new(&*self.inner.store, id)
            .apply(|mut lease| {
                if matches!(lease.status, Status::Deleting | Status::Deleted) {
                    return Ok(Step::Leave(lease));
                }
                lease.end_billing(self.inner.clock.now(), EndReason::Deleted);
                lease.transition(Status::Deleting)?;
                Ok(Step::Update(lease))
            })
            .await?;
        match deleted {
            Outcome::Written(stored) => {
                info!(lease_id = %id, owner = %stored.owner, "lease deletion requested");
                self.inner.reaper.wake();
                Ok(*stored)
            }
            Outcome::Left(lease) => Ok(lease),
            Outcome::Gone => Err(LeaseError::NotFound(id.clone())),
        }
    }

    /// An owner's spend and counts: the active leases' accrued and estimated
    /// costs now, and the finished leases' final costs.
    pub async fn usage(&self, owner: &str) -> Result<Usage, LeaseError> {
        let active = self.list_all(&ListQuery::owner(owner)).await?;
        let totals = self.inner.store.usage(owner).await?;
        let now = self.inner.clock.now();
        let live: Vec<&Lease> = active.iter().filter(|l| l.status.is_live()).collect();
        let accrued: Money = active.iter().map(|l| l.accrued_cost(now)).sum();
        Ok(Usage {
            active: active.len() as u64,
            live: live.len() as u64,
            accrued,
            estimated: live.iter().map(|l| l.estimated_cost).sum(),
            ended_count: totals.ended_count,
            ended_cost: totals.ended_cost,
            total_spend: totals.ended_cost + accrued,
        })
    }

    /// Streams a live lease's container logs.
    pub async fn logs(&self, id: &LeaseId, options: LogOptions) -> Result<LogStream, LeaseError> {
        let target = self.container_of(id).await?;
        Ok(self.inner.runtime.logs(&target, options).await?)
    }

    /// Runs a command in a live lease's container.
    pub async fn exec(
        &self,
        id: &LeaseId,
        request: ExecRequest,
    ) -> Result<ExecSession, LeaseError> {
        if request.command.is_empty() {
            return Err(ValidationError::new("command", "must not be empty").into());
        }
        let target = self.container_of(id).await?;
        Ok(self.inner.runtime.exec(&target, request).await?)
    }

    /// The container of a lease that has one and has not ended.
    async fn container_of(&self, id: &LeaseId) -> Result<String, LeaseError> {
        let lease = self.get(id).await?;
        match (&lease.container_id, lease.status) {
            (Some(container), Status::Running | Status::Exited | Status::Error) => {
                Ok(container.clone())
            }
            _ => Err(LeaseError::WrongState {
                id: id.clone(),
                status: lease.status,
                message: "the lease has no container to use".into(),
            }),
        }
    }

    /// Stops the background loops and timers, then waits (up to `grace`) for
    /// provisioning tasks in flight to record what they did.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                in_flight = lock(&self.inner.in_flight).len(),
                "shutdown grace ran out with provisioning in flight"
            );
        }
    }

    pub(crate) fn offering(&self, key: &str) -> Result<&Offering, LeaseError> {
        self.inner.catalog.get(key).ok_or_else(|| {
            let known: Vec<&str> = self.inner.catalog.keys().collect();
            ValidationError::new(
                "imageType",
                format!(
                    "unknown offering `{key}`; choose one of: {}",
                    known.join(", ")
                ),
            )
            .into()
        })
    }

    fn max_minutes(&self, offering: &Offering) -> u32 {
        offering.max_minutes.min(self.inner.config.max_minutes)
    }

    /// Publishes an event to this process's subscribers.
    pub(crate) fn emit(&self, kind: EventKind, lease: &Lease) {
        self.inner.events.emit(kind, lease);
    }

    /// Emits `expiring_soon` when the lease enters the warning lead, if it
    /// is still live then with the same expiry.
    fn spawn_expiry_warning(&self, lease: &Lease) {
        let lead =
            Duration::from_std(self.inner.config.expiring_soon_lead).unwrap_or(Duration::zero());
        let warn_at = lease.expires_at - lead;
        let (id, expires_at) = (lease.id.clone(), lease.expires_at);
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let clock = self.inner.clock.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = clock.sleep_until(warn_at) => {}
                () = shutdown.cancelled() => return,
            }
            let Some(inner) = weak.upgrade() else { return };
            let manager = LeaseManager { inner };
            if let Ok(current) = manager.inner.store.get(&id).await
                && current.status.is_live()
                && current.expires_at == expires_at
            {
                manager.emit(EventKind::ExpiringSoon, &current);
            }
        });
    }

    /// Reads, changes and writes a lease with compare-and-set, retrying on
    /// conflicts. `change` returns `false` to leave the lease as it is.
    pub(crate) async fn modify(
        &self,
        id: &LeaseId,
        change: impl FnMut(&mut Lease, DateTime<Utc>) -> bool,
    ) -> Result<Option<Lease>, LeaseError> {
        self.modify_from(id, None, change).await
    }

    /// [`LeaseManager::modify`] starting from `known`, a copy of the lease
    /// in hand (as stored by this process), instead of reading it first: if
    /// the lease changed since, the compare-and-set fails and the change is
    /// tried again on a fresh read.
    pub(crate) async fn modify_from(
        &self,
        id: &LeaseId,
        known: Option<Lease>,
        mut change: impl FnMut(&mut Lease, DateTime<Utc>) -> bool,
    ) -> Result<Option<Lease>, LeaseError> {
        let mut cas = CompareAndSet::new(&*self.inner.store, id);
        if let Some(known) = known {
            cas = cas.starting_from(known);
        }
        let changed = cas
            .apply(|mut lease| {
                let now = self.inner.clock.now();
                Ok(
                    if lease.status != Status::Deleted && change(&mut lease, now) {
                        Step::Update(lease)
                    } else {
                        Step::Leave(())
                    },
                )
            })
            .await?;
        Ok(match changed {
            Outcome::Written(stored) => Some(*stored),
            Outcome::Left(()) | Outcome::Gone => None,
        })
    }
}

fn validate_owner(owner: &str) -> Result<(), ValidationError> {
    if owner.trim().is_empty() || owner.len() > MAX_OWNER_LEN || owner.chars().any(char::is_control)
    {
        return Err(ValidationError::new(
            "owner",
            format!("must be 1-{MAX_OWNER_LEN} printable characters"),
        ));
    }
    Ok(())
}
