//! `lease port-forward <id> [LOCAL:]REMOTE…` through a lease-server: a
//! loopback listener per port; each accepted connection gets its own
//! WebSocket tunnel to the container's port (many at once). Ctrl-C ends it
//! (exit 0); the lease ending ends it with a message and exit 1.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use lease_client::{ClientError, Event, TunnelClose};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::cli::PortForwardArgs;
use crate::commands::interrupt_token;
use crate::error::CliError;
use crate::lookup::Scope;
use crate::output::{SHORT_ID, note, print, short_id};
use crate::remote::Remote;
use crate::remote::lookup::find;

/// How often the lease's status is read when the event stream is not to
/// be had (it is the quick way to notice the lease's end).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// One `[LOCAL:]REMOTE` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortPair {
    /// The loopback port to listen on (0: any free one).
    pub local: u16,
    /// The container's port.
    pub remote: u16,
}

/// Parses `REMOTE` (the same port locally), `LOCAL:REMOTE` or `:REMOTE`
/// (any free local port).
pub fn parse_pair(text: &str) -> Result<PortPair, String> {
    let port = |part: &str, what: &str, zero: bool| -> Result<u16, String> {
        match part.trim().parse::<u16>() {
            Ok(0) if !zero => Err(format!("`{text}`: the {what} port must be 1 to 65535")),
            Ok(port) => Ok(port),
            Err(_) => Err(format!(
                "`{text}` is not [LOCAL:]REMOTE (ports, e.g. 5432 or 8080:80 or :80)"
            )),
        }
    };
    match text.split_once(':') {
        None => {
            let remote = port(text, "remote", false)?;
            Ok(PortPair {
                local: remote,
                remote,
            })
        }
        Some(("", remote)) => Ok(PortPair {
            local: 0,
            remote: port(remote, "remote", false)?,
        }),
        Some((local, remote)) => Ok(PortPair {
            local: port(local, "local", true)?,
            remote: port(remote, "remote", false)?,
        }),
    }
}

/// `lease port-forward`.
pub async fn port_forward(remote: &Remote, args: PortForwardArgs) -> Result<ExitCode, CliError> {
    let lease = find(remote, &args.id, Scope::Active).await?;
    super::session::require_running(&lease)?;
    let interrupt = interrupt_token();
    let mut listeners = Vec::new();
    for pair in &args.ports {
        let wanted = SocketAddr::from((Ipv4Addr::LOCALHOST, pair.local));
        let listener = TcpListener::bind(wanted)
            .await
            .map_err(|e| CliError::io(format!("cannot listen on {wanted}"), e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| CliError::io("cannot read the listening address", e))?;
        // Only local programs connect: no pacing toward them (set on the
        // listener, so each accepted connection starts that way).
        lease_http::pacing::unpaced(&listener);
        listeners.push((listener, bound, pair.remote));
    }
    for (_, bound, port) in &listeners {
        print(&format!("Forwarding {bound} -> {}:{port}", lease.id))?;
    }
    note(&format!(
        "lease: forwarding to lease {} (Ctrl-C to stop)",
        short_id(&lease.id, SHORT_ID)
    ));
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let shared = Arc::new(Shared {
        remote_client: remote.client.clone(),
        lease: lease.id.clone(),
        stop: stop.clone(),
        tasks: tasks.clone(),
    });
    for (listener, _, port) in listeners {
        tasks.spawn(accept(shared.clone(), listener, port));
    }
    let ended = tokio::select! {
        () = interrupt.cancelled() => None,
        ended = lease_end(remote, &lease.id) => Some(ended),
    };
    stop.cancel();
    tasks.close();
    // Open tunnels drop (and close) with their tasks; a moment for the closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
    match ended {
        None => {
            note("lease: port-forward stopped");
            Ok(ExitCode::SUCCESS)
        }
        Some(message) => {
            note(&format!("lease: port-forward ended: {message}"));
            Ok(ExitCode::from(1))
        }
    }
}

/// What every connection's task needs.
#[derive(Debug)]
struct Shared {
    remote_client: lease_client::Client,
    lease: String,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// Accepts connections on `listener` until stopped, a tunnel each.
async fn accept(shared: Arc<Shared>, listener: TcpListener, port: u16) {
    loop {
        let accepted = tokio::select! {
            () = shared.stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((local, peer)) => {
                debug!(%peer, port, "connection accepted");
                shared.tasks.spawn(connection(shared.clone(), local, port));
            }
            Err(error) => {
                // Out of file descriptors and the like: wait, then go on.
                note(&format!("lease: accepting a connection failed: {error}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One local connection through its own tunnel.
async fn connection(shared: Arc<Shared>, local: TcpStream, port: u16) {
    let tunnel = tokio::select! {
        () = shared.stop.cancelled() => return,
        tunnel = shared.remote_client.forward(&shared.lease, port) => tunnel,
    };
    let tunnel = match tunnel {
        Ok(tunnel) => tunnel,
        Err(error) => {
            // Dropping `local` closes the connection: the client sees it end.
            note(&format!("lease: port {port}: {}", refusal(&error)));
            return;
        }
    };
    let close = tokio::select! {
        () = shared.stop.cancelled() => return,
        close = tunnel.pipe(local) => close,
    };
    match close {
        TunnelClose::Closed | TunnelClose::Ended { .. } => {}
        TunnelClose::Failed(why) => debug!(port, %why, "tunnel failed"),
    }
}

/// A refused tunnel, for people.
fn refusal(error: &ClientError) -> String {
    match error {
        ClientError::Api { message, .. } => message.clone(),
        other => lease_core::error::error_chain(other),
    }
}

/// Resolves when the lease has ended, with a message saying how; watches
/// the event stream, or the lease's status when the stream is refused.
async fn lease_end(remote: &Remote, id: &str) -> String {
    if let Ok(mut events) = remote.client.events().await {
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Lease(event)) if event.lease.id == id => {
                    if let Some(message) = ended(&event.lease) {
                        return message;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    loop {
        match remote.client.status(id).await {
            Ok(lease) => {
                if let Some(message) = ended(&lease) {
                    return message;
                }
            }
            Err(error) if error.is_not_found() => return "the lease is gone".to_owned(),
            Err(error) => debug!(error = %error, "lease status unknown"),
        }
        tokio::time::sleep(STATUS_EVERY).await;
    }
}

/// How the lease ended, if it has.
fn ended(lease: &lease_client::wire::LeaseJson) -> Option<String> {
    match lease.status.as_str() {
        "pending" | "running" => None,
        _ => Some(match lease.end_reason.as_deref() {
            Some("expired") => "the lease expired".to_owned(),
            Some("exited") => "the lease's container stopped".to_owned(),
            Some(reason) => format!("the lease ended ({reason})"),
            None => format!("the lease is {}", lease.status),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_pairs() {
        let pair = |local, remote| Ok(PortPair { local, remote });
        assert_eq!(parse_pair("5432"), pair(5432, 5432));
        assert_eq!(parse_pair("15432:5432"), pair(15432, 5432));
        assert_eq!(parse_pair(":80"), pair(0, 80));
        assert_eq!(parse_pair("0:80"), pair(0, 80));
        for bad in ["0", "80:0", "x", "", "1:2:3", "70000", "80:", "-1"] {
            assert!(parse_pair(bad).is_err(), "{bad}");
        }
    }
}
