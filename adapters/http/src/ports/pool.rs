//! Keep-alive connections to a lease's ports, pooled: a proxied request
//! reuses an idle connection to the app instead of opening a TCP
//! connection and starting HTTP anew.
//!
//! Each lease has its own client (hyper-util's pooling client), made with
//! the lease's end token and kept in its [`super::LeaseEnds`] entry; its
//! pool is keyed by the container's address and port. When the lease ends
//! the entry goes, and with it the pool, and every connection the client
//! opened fails its next read or write at once ([`Ending`]), idle or
//! carrying a response: nothing of an ended lease is reused or kept. A
//! connection idle for [`IDLE_FOR`] is closed, and at most
//! [`MAX_IDLE_PER_PORT`] idle ones are kept per port. Upgrades
//! (WebSockets) do not use the pool: each has a connection of its own
//! ([`super::connect`]).
//!
//! A pooled connection is closed with a reset, not a FIN ([`abortive`]):
//! the proxy closes only once it has the app's whole answer (or has given
//! the exchange up), and a FIN would leave the socket in `TIME_WAIT` on
//! this host for a minute. Apps that close every connection (busybox
//! `httpd`, `Connection: close`) would then fill the ephemeral ports
//! towards their address, and each new connection's `connect` would
//! search past them: measured at ~60 % of the server's CPU against busybox
//! `httpd` (`__inet_hash_connect`, `__inet_check_established`; see
//! BENCHMARKS.md, session 12).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::reach::open;

/// Most idle connections kept per port of a lease.
pub(crate) const MAX_IDLE_PER_PORT: usize = 32;

/// How long an idle connection is kept: shorter than the keep-alive
/// timeout of common app servers (Node's is 5 s), so the proxy seldom
/// sends a request on a connection the app is just closing.
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(4);

/// A lease's pooling client.
pub(crate) type Upstream = Client<LeaseConnector, Body>;

/// A pooling client whose connections end when `ended` is cancelled.
pub(crate) fn upstream(ended: CancellationToken) -> Upstream {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_FOR)
        .pool_max_idle_per_host(MAX_IDLE_PER_PORT)
        .pool_timer(TokioTimer::new())
        // The viewer's `Host` goes to the app as it is.
        .set_host(false)
        .build(LeaseConnector { ended })
}

/// Opens connections for one lease's client: to the `address:port` of
/// the request URI, ended with the lease.
#[derive(Clone, Debug)]
pub(crate) struct LeaseConnector {
    ended: CancellationToken,
}

impl tower::Service<Uri> for LeaseConnector {
    type Response = TokioIo<Ending>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Ending>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let ended = self.ended.clone();
        Box::pin(async move {
            let address = address_of(&uri)?;
            let stream = open(address).await?;
            abortive(&stream);
            Ok(TokioIo::new(Ending::new(stream, ended)))
        })
    }
}

/// Makes closing `stream` send a reset (`SO_LINGER` of zero) instead of a
/// FIN, so this side keeps no `TIME_WAIT` state. Only for pooled HTTP
/// connections: hyper drops them once the exchange is over, so nothing
/// the app still had to receive is lost; tunnels and upgrades close
/// gracefully. Failing to set it costs only the `TIME_WAIT`.
fn abortive(stream: &TcpStream) {
    if let Err(error) = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO)) {
        tracing::debug!(%error, "could not set SO_LINGER on an upstream connection");
    }
}

/// The socket address of an `http://address:port/…` URI.
fn address_of(uri: &Uri) -> io::Result<SocketAddr> {
    uri.authority()
        .and_then(|authority| authority.as_str().parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not an address and port: {uri}"),
            )
        })
}

/// A connection to a lease's port that fails every read and write once
/// the lease has ended.
pub(crate) struct Ending {
    stream: TcpStream,
    ended: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Ending {
    fn new(stream: TcpStream, ended: CancellationToken) -> Self {
        Ending {
            stream,
            ended: Box::pin(ended.cancelled_owned()),
        }
    }

    /// An error once the lease has ended (and a wake-up when it does).
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.ended.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the lease ended",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl Connection for Ending {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Ending {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Ending {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_address_and_port_uris_are_connected() {
        let parse = |text: &str| address_of(&text.parse().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(
            parse("http://172.17.0.2:8080/x?y").ok(),
            Some(SocketAddr::from(([172, 17, 0, 2], 8080)))
        );
        assert!(parse("http://[fd00::2]:80/").is_ok());
        assert!(parse("http://172.17.0.2/").is_err(), "no port");
        assert!(parse("http://example.com:80/").is_err(), "a name");
        assert!(parse("/relative").is_err());
    }

    /// A connection opened by a connector ended by `ended`, and the
    /// listener's side of it (the app's).
    async fn connected_pair(ended: CancellationToken) -> (TokioIo<Ending>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut connector = LeaseConnector { ended };
        let uri: Uri = format!("http://{address}/")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let (connected, accepted) =
            tokio::join!(tower::Service::call(&mut connector, uri), listener.accept());
        let ours = connected.unwrap_or_else(|e| panic!("{e}"));
        let (theirs, _) = accepted.unwrap_or_else(|e| panic!("{e}"));
        (ours, theirs)
    }

    /// A pooled connection closes with a reset: the app reads
    /// `ConnectionReset`, not an end of file, and this side keeps no
    /// `TIME_WAIT` state for it.
    #[tokio::test]
    async fn a_dropped_connection_is_reset_not_closed() {
        let (ours, mut theirs) = connected_pair(CancellationToken::new()).await;
        drop(ours);
        let mut buf = [0; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), theirs.read(&mut buf))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionReset),
            "the app sees a reset"
        );
    }

    #[tokio::test]
    async fn a_connection_fails_once_its_lease_ends() {
        let ended = CancellationToken::new();
        let (ours, mut theirs) = connected_pair(ended.clone()).await;
        let mut ours = ours.into_inner();
        ours.write_all(b"ping")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut got = [0; 4];
        theirs
            .read_exact(&mut got)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&got, b"ping");
        // A read waiting for the app is woken and fails when the lease ends.
        let reading = tokio::spawn(async move {
            let mut buf = [0; 8];
            ours.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        ended.cancel();
        let read = tokio::time::timeout(Duration::from_secs(5), reading)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read.err().map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionAborted)
        );
    }
}
