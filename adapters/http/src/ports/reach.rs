//! The reach layer: a TCP connection to a port of a lease's container, for
//! its owner (or an admin), ended with the lease.

use std::collections::HashMap;
use std::io;
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

use super::pool::{self, Upstream};
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

/// One lease's entry: its end token, its pooled connections and its
/// container's address, once looked up (all dropped when the lease ends).
#[derive(Debug)]
struct Entry {
    ended: CancellationToken,
    upstream: Upstream,
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

    /// `lease`'s end token (a child of the shutdown token), its pooling
    /// client, whose connections end with that token, and its container's
    /// address if known for `container` — under one lock, as every proxied
    /// request asks.
    fn handles(
        &self,
        lease: &LeaseId,
        container: Option<&str>,
    ) -> (CancellationToken, Upstream, Option<IpAddr>) {
        let mut entries = self.entries();
        let entry = entries.entry(lease.clone()).or_insert_with(|| {
            let ended = self.shutdown.child_token();
            Entry {
                upstream: pool::upstream(ended.clone()),
                ended,
                address: None,
            }
        });
        let address = entry
            .address
            .as_ref()
            .filter(|(id, _)| Some(id.as_str()) == container)
            .map(|(_, address)| *address);
        (entry.ended.clone(), entry.upstream.clone(), address)
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

/// A lease's port, reachable over pooled connections.
#[derive(Debug)]
pub(crate) struct Pooled {
    /// The lease, as checked.
    pub(crate) lease: Lease,
    /// Where its connections go.
    pub(crate) address: SocketAddr,
    /// The lease's pooling client.
    pub(crate) upstream: Upstream,
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

/// 502 `upstream_unreachable`: nothing accepted a connection to `port`.
pub(crate) fn unreachable(port: u16, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_unreachable",
        format!("nothing is listening on port {port} of the lease ({why})"),
    )
}

/// A checked lease with what reaching it takes.
struct Found {
    lease: Lease,
    ip: IpAddr,
    ended: CancellationToken,
    upstream: Upstream,
}

/// The checked lease `id` of `caller`, running, with its end token, its
/// pooling client and its container's address.
async fn target(state: &AppState, caller: &Caller, id: &str) -> Result<Found, ApiError> {
    let lease = find_lease(&state.manager, caller, id).await?;
    // The token before the status check: an end after the check cancels it.
    let (ended, upstream, cached) = state
        .lease_ends
        .handles(&lease.id, lease.container_id.as_deref());
    let container = match (&lease.container_id, lease.status) {
        (Some(container), Status::Running) => container.clone(),
        _ => return Err(not_running(&lease)),
    };
    let found = |lease, ip| Found {
        lease,
        ip,
        ended,
        upstream,
    };
    if let Some(address) = cached {
        return Ok(found(lease, address));
    }
    let manager = &state.manager;
    let info = manager
        .runtime()
        .status(&container)
        .await
        .map_err(|error| ApiError::from(lease_core::LeaseError::from(error)))?;
    let Some(info) = info.filter(|info| info.running()) else {
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
    Ok(found(lease, address))
}

/// Opens a TCP connection to `address` (no Nagle: keystrokes and frames go
/// out at once), failing with [`io::ErrorKind::TimedOut`] after
/// [`CONNECT_TIMEOUT`].
pub(crate) async fn open(address: SocketAddr) -> io::Result<TcpStream> {
    let socket = crate::pacing::socket_for(address)?;
    // The container is on this host's (or the cluster's) container network:
    // no pacing (chosen before connecting, see `crate::pacing`).
    crate::pacing::unpaced(&socket);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(address))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            )
        })??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// `port` of lease `id` for `caller`, over the lease's pooled connections
/// (opened when a request needs one): 404 when the lease is not the
/// caller's, 409 when it does not run (or has no network).
pub(crate) async fn pooled(
    state: &AppState,
    caller: &Caller,
    id: &str,
    port: u16,
) -> Result<Pooled, ApiError> {
    let found = target(state, caller, id).await?;
    Ok(Pooled {
        lease: found.lease,
        address: SocketAddr::new(found.ip, port),
        upstream: found.upstream,
    })
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
    let Found {
        lease, ip, ended, ..
    } = target(state, caller, id).await?;
    let address = SocketAddr::new(ip, port);
    let stream = match open(address).await {
        Ok(stream) => stream,
        Err(error) => {
            debug!(lease_id = %lease.id, %address, %error, "port connection failed");
            return Err(unreachable(port, &error.to_string()));
        }
    };
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
