//! Ending a lease now and seeing its container gone, without waiting for a
//! lease-server's reaper.

use std::time::{Duration, Instant};

use lease_core::{Lease, LeaseError, LeaseId, LeaseManager, Status};

use crate::error::CliError;

/// How long `rm` (and the end of `run`) waits for the container's removal.
pub const REMOVAL_WAIT: Duration = Duration::from_secs(60);

/// Ends lease `id` (billing stops now) and reaps until its container is
/// confirmed removed and the lease is in history. The reap pass is the
/// engine's own: it claims due leases atomically, so a lease-server reaping
/// the same store at the same time does not get in the way.
pub async fn remove_now(manager: &LeaseManager, id: &LeaseId) -> Result<Lease, CliError> {
    manager.delete(id).await?;
    reap_until_gone(manager, id).await
}

/// Reaps until lease `id` is in history (its container removed), for at
/// most [`REMOVAL_WAIT`].
pub async fn reap_until_gone(manager: &LeaseManager, id: &LeaseId) -> Result<Lease, CliError> {
    let deadline = Instant::now() + REMOVAL_WAIT;
    loop {
        if let Err(error) = manager.reap_once().await {
            tracing::debug!(lease_id = %id, error = %lease_core::error::error_chain(&error), "reap pass failed");
        }
        let lease = match manager.get(id).await {
            Ok(lease) => lease,
            Err(LeaseError::NotFound(_)) => return Err(CliError::UnknownLease(id.to_string())),
            Err(other) => return Err(other.into()),
        };
        if lease.status == Status::Deleted {
            return Ok(lease);
        }
        if Instant::now() >= deadline {
            let why = lease
                .error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default();
            return Err(CliError::Partial(format!(
                "lease {id} is ending but its container is not removed yet{why}; \
                 a lease-server or `lease reap` will finish the job"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
