//! The background provisioning task of a lease: image, container, `running`.
//!
//! The lease is stored before anything is created (DESIGN invariant 2). The
//! task re-reads the lease after creating the container: if the lease has
//! ended meanwhile (deleted, expired, timed out), it removes what it created
//! (invariant 4).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::Duration;
use tracing::{info, warn};

use crate::catalog::Offering;
use crate::error::{LeaseError, RuntimeError};
use crate::event::EventKind;
use crate::id::LeaseId;
use crate::lease::{EndReason, Lease, Status};
use crate::manager::{LeaseManager, lock};
use crate::pool::PoolSlot;
use crate::runtime::{BelongsTo, ContainerSpec, Limits, PullProgress, container_name, labels};

/// Bytes in a MiB.
const MIB: i64 = 1024 * 1024;

/// Removes the lease from the in-flight set when the task ends, however it ends.
struct InFlight {
    manager: LeaseManager,
    id: LeaseId,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.manager.inner.in_flight).remove(&self.id);
        lock(&self.manager.inner.progress).remove(&self.id);
    }
}

/// What the reconciler needs from provisioning: which leases this process
/// is provisioning, restarting a stuck one, and failing a timed-out one.
#[async_trait]
pub(crate) trait Provisioning: Send + Sync {
    /// Whether a task of this process is provisioning `id`.
    fn is_provisioning(&self, id: &LeaseId) -> bool;

    /// Starts provisioning `id` again; `false` if it is already in flight here.
    fn retry_provisioning(&self, id: LeaseId) -> bool;

    /// Marks a pending lease `error` with `message` and removes anything its
    /// provisioning may have left behind.
    async fn fail_provisioning(&self, id: &LeaseId, message: String) -> Result<(), LeaseError>;
}

#[async_trait]
impl Provisioning for LeaseManager {
    fn is_provisioning(&self, id: &LeaseId) -> bool {
        lock(&self.inner.in_flight).contains(id)
    }

    fn retry_provisioning(&self, id: LeaseId) -> bool {
        self.spawn_provisioning(id)
    }

    async fn fail_provisioning(&self, id: &LeaseId, message: String) -> Result<(), LeaseError> {
        LeaseManager::fail_provisioning(self, id, message).await
    }
}

impl LeaseManager {
    /// Starts provisioning a pending lease in the background, unless this
    /// process is already doing it.
    pub(crate) fn spawn_provisioning(&self, id: LeaseId) -> bool {
        self.spawn_provisioning_task(id, None)
    }

    /// [`LeaseManager::spawn_provisioning`] of a lease this process has
    /// just stored: the task starts from `stored` instead of reading it.
    pub(crate) fn spawn_provisioning_from(&self, stored: Lease) -> bool {
        self.spawn_provisioning_task(stored.id.clone(), Some(stored))
    }

    fn spawn_provisioning_task(&self, id: LeaseId, known: Option<Lease>) -> bool {
        if !lock(&self.inner.in_flight).insert(id.clone()) {
            return false;
        }
        let guard = InFlight {
            manager: self.clone(),
            id,
        };
        self.inner.tasks.spawn(async move {
            let manager = guard.manager.clone();
            if let Err(error) = manager.provision_lease(&guard.id, known).await {
                warn!(lease_id = %guard.id, error = %crate::error::error_chain(&error), "provisioning task failed");
            }
            drop(guard);
        });
        true
    }

    /// Provisions one lease, bounded by the provisioning timeout; `known`
    /// is the lease as last stored, if in hand. Each write starts from the
    /// lease the previous one stored (a compare-and-set that finds it
    /// changed reads it again), so an uncontended provision is three
    /// writes and no read: insert, attempt, running.
    async fn provision_lease(&self, id: &LeaseId, known: Option<Lease>) -> Result<(), LeaseError> {
        let Some(lease) = self.begin_attempt(id, known).await? else {
            return Ok(());
        };
        let timeout = Duration::from_std(self.config().provision_timeout).unwrap_or(Duration::MAX);
        let deadline = lease.created_at + timeout;
        let clock = self.clock().clone();
        let outcome = tokio::select! {
            outcome = self.create_container(&lease) => outcome,
            () = clock.sleep_until(deadline) => {
                let message = format!("provisioning timed out after {} s", timeout.num_seconds());
                self.fail_provisioning(id, message).await?;
                return Ok(());
            }
        };
        match outcome {
            Ok(container_id) => self.record_running(id, container_id, lease).await,
            Err(error) => self.fail_provisioning(id, error.chain()).await,
        }
    }

    /// Counts an attempt on a lease that is still pending; `None` if it no
    /// longer is.
    async fn begin_attempt(
        &self,
        id: &LeaseId,
        known: Option<Lease>,
    ) -> Result<Option<Lease>, LeaseError> {
        self.modify_from(id, known, |lease, _| {
            if lease.status != Status::Pending {
                return false;
            }
            lease.provision_attempts += 1;
            true
        })
        .await
    }

    /// Ensures the image, creates the container and waits until it runs.
    async fn create_container(&self, lease: &Lease) -> Result<String, RuntimeError> {
        let offering = self.catalog().get(&lease.offering).ok_or_else(|| {
            RuntimeError::Invalid(format!(
                "offering `{}` is no longer in the catalog",
                lease.offering
            ))
        })?;
        let manager = self.clone();
        let id = lease.id.clone();
        self.ensure_image(&offering.image, move |progress| {
            lock(&manager.inner.progress).insert(id.clone(), progress);
        })
        .await?;
        let spec = container_spec(lease, offering);
        self.create_running(&spec).await
    }

    /// Makes `image` available, handing each progress report to `report`
    /// while the pull runs.
    pub(crate) async fn ensure_image(
        &self,
        image: &str,
        report: impl Fn(PullProgress),
    ) -> Result<(), RuntimeError> {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let pull = self.runtime().ensure_image(image, sender);
        let mut pull = std::pin::pin!(pull);
        loop {
            tokio::select! {
                biased;
                result = &mut pull => {
                    while let Ok(progress) = receiver.try_recv() {
                        report(progress);
                    }
                    return result;
                }
                Some(progress) = receiver.recv() => report(progress),
            }
        }
    }

    /// Creates the unit of `spec` and waits until it runs (placement may
    /// be asynchronous), returning its id. When it does not come to run,
    /// the error carries the runtime's reason; the caller removes what
    /// was created (DESIGN invariant 4).
    pub(crate) async fn create_running(
        &self,
        spec: &ContainerSpec,
    ) -> Result<String, RuntimeError> {
        let unit = self.runtime().create(spec).await?;
        crate::placement::wait_running(
            self.runtime().as_ref(),
            self.clock(),
            &unit,
            self.config().placement_timeout,
        )
        .await?;
        Ok(unit)
    }

    /// Moves the lease (`attempted`: as the attempt stored it) to
    /// `running`, or removes the container if the lease ended while it was
    /// being created.
    async fn record_running(
        &self,
        id: &LeaseId,
        container_id: String,
        attempted: Lease,
    ) -> Result<(), LeaseError> {
        let updated = self
            .modify_from(id, Some(attempted), |lease, now| {
                if lease.status != Status::Pending {
                    return false;
                }
                lease.status = Status::Running;
                lease.running_at.get_or_insert(now);
                lease.container_id = Some(container_id.clone());
                true
            })
            .await;
        match updated {
            Ok(Some(lease)) => {
                info!(lease_id = %id, container_id = %container_id, "lease running");
                self.emit(EventKind::Running, &lease);
                Ok(())
            }
            Ok(None) | Err(LeaseError::NotFound(_)) => {
                // Someone else may have recorded the same (idempotent) container.
                if let Ok(lease) = self.get(id).await
                    && lease.status.is_live()
                {
                    return Ok(());
                }
                info!(lease_id = %id, container_id = %container_id, "lease ended during provisioning; removing its container");
                self.runtime().remove(&container_id).await?;
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// Marks a pending lease `error` with `message` and removes anything its
    /// provisioning may have left behind. Its container never ran, so the
    /// lease costs nothing: billing ends at its creation.
    pub(crate) async fn fail_provisioning(
        &self,
        id: &LeaseId,
        message: String,
    ) -> Result<(), LeaseError> {
        let failed = self
            .modify(id, |lease, _| {
                if lease.status != Status::Pending {
                    return false;
                }
                lease.status = Status::Error;
                lease.end_billing(lease.created_at, EndReason::Error);
                lease.error = Some(message.clone());
                true
            })
            .await?;
        // Only the attempt that moved the lease to `error` cleans up: a lease
        // that another attempt made running keeps its (same-named) container.
        let Some(lease) = failed else { return Ok(()) };
        warn!(lease_id = %id, error = %message, "provisioning failed");
        self.emit(EventKind::Error, &lease);
        let name = container_name(id);
        if let Err(error) = self.runtime().remove(&name).await {
            warn!(lease_id = %id, error = %error.chain(), "could not remove a failed lease's container; the reaper will");
        }
        Ok(())
    }
}

/// The container spec of a lease: catalog image, command, limits and
/// confinement, and the lease's labels of DESIGN invariant 1 (the runtime
/// adds the managed and namespace labels).
pub fn container_spec(lease: &Lease, offering: &Offering) -> ContainerSpec {
    let labels = [
        (labels::LEASE_ID, lease.id.to_string()),
        (labels::OWNER, lease.owner.clone()),
        (labels::EXPIRES_AT, lease.expires_at.to_rfc3339()),
        (labels::CREATED_AT, lease.created_at.to_rfc3339()),
        (labels::IMAGE_TYPE, lease.offering.clone()),
    ];
    hardened_spec(BelongsTo::Lease(lease.id.clone()), labels, offering)
}

/// The container spec of a warm-pool slot: the same image, command,
/// limits and confinement as a lease of `offering` gets, labelled with the
/// pool and the slot instead of a lease (see [`crate::pool`]).
pub fn pool_container_spec(slot: &PoolSlot, offering: &Offering) -> ContainerSpec {
    let labels = [
        (labels::POOL, offering.key.clone()),
        (labels::POOL_SLOT, slot.id.clone()),
        (labels::CREATED_AT, slot.created_at.to_rfc3339()),
        (labels::IMAGE_TYPE, offering.key.clone()),
    ];
    hardened_spec(BelongsTo::PoolSlot(slot.id.clone()), labels, offering)
}

/// `offering`'s hardened container for `belongs_to`, with `labels` (the
/// runtime adds the managed and namespace labels).
fn hardened_spec<const N: usize>(
    belongs_to: BelongsTo,
    labels: [(&str, String); N],
    offering: &Offering,
) -> ContainerSpec {
    let labels: BTreeMap<String, String> = labels
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    ContainerSpec {
        name: belongs_to.container_name(),
        belongs_to,
        image: offering.image.clone(),
        command: offering.command.clone(),
        labels,
        limits: Limits {
            nano_cpus: offering.nano_cpus,
            memory_bytes: i64::from(offering.memory_mb) * MIB,
            pids: i64::from(offering.pids),
        },
        confinement: offering.confinement(),
    }
}
