//! Host-local TCP connections without pacing.
//!
//! Many hosts run BBR as their default congestion control (this project's
//! bench machine does). BBR paces every connection: the kernel spaces a
//! sender's segments out with a timer, to keep a bottleneck's queue short
//! on a real network path. On a connection that never leaves the host —
//! loopback, or the bridge network between lease-server and a lease's
//! container — there is no such queue, and the pacing timers cost CPU on
//! every burst: measured with the forward bench on a 2-CPU machine, a TCP
//! port-forward carried a bulk upload at ~1.1 GiB/s with BBR on its local
//! hops and ~1.9 GiB/s without, the server and the CLI each spending half
//! the CPU per byte.
//!
//! Such connections use Reno, which Linux always lets an unprivileged
//! process pick and which does not pace: on a link without loss it keeps
//! the window open, which is all a local hop needs. It has to be chosen
//! before the connection is established — on the socket before `connect`,
//! or on the listener, whose accepted connections inherit it: a connection
//! that started with BBR keeps pacing after a switch (measured: a switch
//! after connecting bought half of the gain). Where lease-server and the
//! CLI do it:
//!
//! - lease-server's connections to a lease's ports (the port proxy, the
//!   forward's tunnels): the container is on the server's own container
//!   network (a bridge on this host, or the cluster's overlay);
//! - a listener bound to a loopback address (lease-server behind a reverse
//!   proxy on the same host; `lease port-forward`'s local ports);
//! - the CLI's connections to a lease-server at a loopback address.
//!
//! Connections to anything else keep the host's choice. Elsewhere than on
//! Linux, and where the kernel refuses, nothing changes.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpSocket;
#[cfg(target_os = "linux")]
use tracing::debug;

/// The congestion control of host-local connections.
#[cfg(target_os = "linux")]
const LOCAL_CONGESTION_CONTROL: &[u8] = b"reno";

/// Turns pacing off for `socket` (not yet connected, or a listener): its
/// connections stay on this host (or on the container network
/// lease-server manages). A refusal only leaves the host's default.
pub fn unpaced<'s, S>(socket: &'s S)
where
    socket2::SockRef<'s>: From<&'s S>,
{
    #[cfg(target_os = "linux")]
    if let Err(error) = socket2::SockRef::from(socket).set_tcp_congestion(LOCAL_CONGESTION_CONTROL)
    {
        debug!(%error, "cannot pick the congestion control of a local connection");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// A TCP socket of `address`'s family, not yet connected: where the
/// congestion control can still be chosen before `connect`.
pub fn socket_for(address: SocketAddr) -> io::Result<TcpSocket> {
    match address {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
}

/// [`unpaced`] when `address` (a listener's own, or the peer a socket
/// will connect to) is a loopback address: both ends on this host.
/// Otherwise the host's congestion control stays.
pub fn unpaced_if_loopback<'s, S>(socket: &'s S, address: SocketAddr)
where
    socket2::SockRef<'s>: From<&'s S>,
{
    if address.ip().is_loopback() {
        unpaced(socket);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn congestion_control<'s, S>(socket: &'s S) -> Vec<u8>
    where
        socket2::SockRef<'s>: From<&'s S>,
    {
        socket2::SockRef::from(socket)
            .tcp_congestion()
            .map(|name| name.into_iter().take_while(|&byte| byte != 0).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_loopback_listener_hands_out_unpaced_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        unpaced_if_loopback(&listener, address);
        let _client = TcpStream::connect(address).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        assert_eq!(congestion_control(&accepted), b"reno");
    }

    #[test]
    fn a_socket_set_before_connecting_stays_unpaced() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        unpaced(&socket);
        socket.connect(&address.into()).expect("connect");
        assert_eq!(congestion_control(&socket), b"reno");
    }

    #[test]
    fn anything_not_on_loopback_keeps_the_host_default() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let before = congestion_control(&listener);
        let elsewhere: SocketAddr = "192.0.2.7:80".parse().expect("address");
        unpaced_if_loopback(&listener, elsewhere);
        assert_eq!(congestion_control(&listener), before);
    }
}
