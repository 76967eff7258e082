//! Watching a foreground lease until its time is up (or until someone else
//! ends it), following extensions made meanwhile.

use std::time::Duration;

use lease_core::{LeaseId, LeaseManager, Status};

/// Longest pause between two reads of the lease, so an extension or a
/// removal made by another process is noticed.
const RECHECK: Duration = Duration::from_secs(5);

/// Why a foreground lease is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// Its booked time ran out.
    Expired,
    /// It was ended elsewhere (`lease rm`, a lease-server, its container stopped).
    Ended(Status),
    /// Ctrl-C or a termination signal.
    Interrupted,
}

/// Resolves when lease `id` has expired or is no longer live.
pub async fn until_over(manager: &LeaseManager, id: &LeaseId) -> Over {
    loop {
        let pause = match manager.get(id).await {
            Ok(lease) if !lease.status.is_live() => return Over::Ended(lease.status),
            Ok(lease) => {
                let left = lease.expires_at - manager.clock().now();
                match left.to_std() {
                    Ok(left) if !left.is_zero() => left.min(RECHECK),
                    _ => return Over::Expired,
                }
            }
            // The store is briefly unreachable: look again soon.
            Err(_) => RECHECK,
        };
        tokio::time::sleep(pause).await;
    }
}
