//! The reach layer: a TCP connection to a port of a lease's container, for
//! its owner (or an admin), ended with the lease.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use lease_core::{EventKind, Lease, LeaseEvent, LeaseId, LeaseManager, Status};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, echo};
use crate::leases::find_lease;

/// How long a connection to a lease's port may take before it counts as
/// nothing listening.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A port number from a path: 1–65535, else 400 `invalid_port`.
pub(crate) fn parse_port(text: &str) -> Result<u16, ApiError> {
    text.parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_port",
                format!("`{}` is not a port: use 1 to 65535", echo(text)),
            )
        })
}

/// One lease's entry: its end token and its container's address, once
/// looked up (cleared when the lease ends).
#[derive(Debug)]
struct Entry {
    ended: CancellationToken,
    address: Option<(String, IpAddr)>,
}

/// The end tokens of the leases whose ports are in use, cancelled when
/// the lease ends (fed by the manager's events) or at shutdown.
#[derive(Debug)]
pub(crate) struct LeaseEnds {
    manager: LeaseManager,
    entries: Mutex<HashMap<LeaseId, Entry>>,
    shutdown: CancellationToken,
}

impl LeaseEnds {
    /// An empty registry listening to `manager`'s events until `shutdown`
    /// (the listener is tracked by `tasks`).
    pub(crate) fn start(
        manager: LeaseManager,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Arc<Self> {
        let ends = Arc::new(LeaseEnds {
            manager,
            entries: Mutex::new(HashMap::new()),
            shutdown,
        });
        let events = ends.manager.subscribe();
        tasks.spawn(ends.clone().listen(events));
        ends
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<LeaseId, Entry>> {
        // A panic while holding the lock leaves a valid map: keep using it.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `lease`'s end token (a child of the shutdown token).
    pub(crate) fn token(&self, lease: &LeaseId) -> CancellationToken {
        self.entries()
            .entry(lease.clone())
            .or_insert_with(|| Entry {
                ended: self.shutdown.child_token(),
                address: None,
            })
            .ended
            .clone()
    }

    fn cached_address(&self, lease: &LeaseId, container: &str) -> Option<IpAddr> {
        let entries = self.entries();
        let (id, address) = entries.get(lease)?.address.as_ref()?;
        (id == container).then_some(*address)
    }

    fn remember_address(&self, lease: &LeaseId, container: &str, address: IpAddr) {
        if let Some(entry) = self.entries().get_mut(lease) {
            entry.address = Some((container.to_owned(), address));
        }
    }

    /// Ends `lease`'s connections and forgets it.
    fn end(&self, lease: &LeaseId) {
        if let Some(entry) = self.entries().remove(lease) {
            debug!(lease_id = %lease, "lease ended: closing its port connections");
            entry.ended.cancel();
        }
    }

    async fn listen(self: Arc<Self>, mut events: broadcast::Receiver<LeaseEvent>) {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        if matches!(event.kind, EventKind::Deleted | EventKind::Exited) {
                            self.end(&event.lease.id);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        warn!(missed, "port connections missed lease events: checking their leases");
                        self.check_leases().await;
                    }
                    Err(RecvError::Closed) => break,
                },
                () = self.shutdown.cancelled() => break,
            }
        }
    }

    /// After missed events: ends the entries whose lease no longer runs.
    async fn check_leases(&self) {
        let leases: Vec<LeaseId> = self.entries().keys().cloned().collect();
        for lease in leases {
            let running =
                matches!(self.manager.get(&lease).await, Ok(l) if l.status == Status::Running);
            if !running {
                self.end(&lease);
            }
        }
    }
}

/// A connection to a lease's port.
#[derive(Debug)]
pub(crate) struct Reached {
    /// The connection.
    pub(crate) stream: TcpStream,
    /// The lease, as checked.
    pub(crate) lease: Lease,
    /// Where it goes.
    pub(crate) address: SocketAddr,
    /// Cancelled when the lease ends or the server stops: close then.
    pub(crate) ended: CancellationToken,
}

fn not_running(lease: &Lease) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_running",
        format!(
            "lease {} is {}: only a running lease's ports can be reached",
            lease.id, lease.status
        ),
    )
}

fn unreachable(port: u16, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_unreachable",
        format!("nothing is listening on port {port} of the lease ({why})"),
    )
}

/// The checked lease `id` of `caller`, running, with its end token and
/// its container's address.
pub(crate) async fn target(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Lease, IpAddr, CancellationToken), ApiError> {
    let lease = find_lease(&state.manager, caller, id).await?;
    // The token before the status check: an end after the check cancels it.
    let ended = state.lease_ends.token(&lease.id);
    let container = match (&lease.container_id, lease.status) {
        (Some(container), Status::Running) => container.clone(),
        _ => return Err(not_running(&lease)),
    };
    if let Some(address) = state.lease_ends.cached_address(&lease.id, &container) {
        return Ok((lease, address, ended));
    }
    let manager = &state.manager;
    let info = manager
        .runtime()
        .inspect(&manager.config().namespace, &container)
        .await
        .map_err(|error| ApiError::from(lease_core::LeaseError::from(error)))?;
    let Some(info) = info.filter(|info| info.running) else {
        return Err(not_running(&lease));
    };
    let Some(address) = info.address else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_network",
            format!(
                "lease {} has no network address (its offering has network = none): \
                 its ports cannot be reached",
                lease.id
            ),
        ));
    };
    state
        .lease_ends
        .remember_address(&lease.id, &container, address);
    Ok((lease, address, ended))
}

/// Opens a TCP connection to `port` of lease `id` for `caller`: 404 when
/// the lease is not the caller's, 409 when it does not run (or has no
/// network), 502 `upstream_unreachable` when nothing accepts within
/// [`CONNECT_TIMEOUT`].
pub(crate) async fn connect(
    state: &AppState,
    caller: &Caller,
    id: &str,
    port: u16,
) -> Result<Reached, ApiError> {
    let (lease, ip, ended) = target(state, caller, id).await?;
    let address = SocketAddr::new(ip, port);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            debug!(lease_id = %lease.id, %address, %error, "port connection failed");
            return Err(unreachable(port, &error.to_string()));
        }
        Err(_) => {
            debug!(lease_id = %lease.id, %address, "port connection timed out");
            return Err(unreachable(
                port,
                &format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            ));
        }
    };
    // Small writes (keystrokes, frames) go out at once.
    let _ = stream.set_nodelay(true);
    Ok(Reached {
        stream,
        lease,
        address,
        ended,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_outside_1_to_65535_are_refused() {
        for bad in ["0", "65536", "-1", "", "80a", "99999999999", " 80"] {
            let error = parse_port(bad).err();
            assert_eq!(
                error.map(|e| (e.status, e.detail.code)),
                Some((StatusCode::BAD_REQUEST, "invalid_port".to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(parse_port("1").ok(), Some(1));
        assert_eq!(parse_port("65535").ok(), Some(65535));
    }
}
