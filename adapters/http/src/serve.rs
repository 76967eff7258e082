//! Serving the router on a TCP listener with the connection limits a
//! server facing hostile clients needs — what `axum::serve` does not do
//! (it runs hyper without a timer: no header-read timeout).
//!
//! - **Header-read timeout**: a request whose head (request line and
//!   headers) has not fully arrived this long after the connection started
//!   waiting for it is cut. Hyper starts that clock whenever it waits for a
//!   head, so an idle keep-alive connection is closed after it too.
//! - **Idle timeout**: a connection on which no byte moved either way for
//!   this long is shut down (a request in flight may finish); one still
//!   silent after as long again is dropped. This is what ends a stream
//!   whose client stopped reading once the socket buffers are full. A
//!   handler that waits on someone else (the port proxy waiting for an
//!   app's answer or its next server-sent event) holds an
//!   [`IdleExemption`] from the request's [`IdleWatch`]: while held the
//!   connection is not idle — unless it is stuck writing (its client
//!   stopped reading), which still counts. The watchdog stops when a
//!   connection is upgraded (hyper hands the socket to the handler): an
//!   upgraded connection ends when its handler lets go of it, and the
//!   handlers bound theirs (stream permits, the lease's end, pings).
//! - **TCP keepalive** on every connection (first probe after
//!   [`TCP_KEEPALIVE`] of silence), so a peer that vanished without a
//!   word is found even on an exempt or upgraded connection.
//! - **Connection caps**, overall and per client IP: a connection over
//!   either is closed right at accept, before anything is read; the
//!   connections already open are served as usual.
//! - **No Nagle**: `TCP_NODELAY` on every connection, so small writes (a
//!   terminal's echo, an event) leave at once.
//! - **Graceful shutdown**: once `shutdown` resolves no connection is
//!   accepted, idle connections close, requests in flight finish, and
//!   `serve` returns when every connection is gone (bound that wait with a
//!   timeout of your own; streams end when [`crate::ApiConfig::shutdown`]
//!   is cancelled).
//!
//! The client IP is the TCP peer. Behind a reverse proxy that is the
//! proxy's address: raise or lift the per-IP cap there, and let the proxy
//! limit per client. HTTP/1.1 only (as `axum::serve` with lease-http's
//! features), WebSocket upgrades included.
//!
//! ```no_run
//! # use lease_http::serve::{ServeConfig, serve};
//! # use tokio_util::sync::CancellationToken;
//! # async fn run(app: axum::Router, stop: CancellationToken) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // Returns once `stop` is cancelled and the open connections are done.
//! serve(listener, app, ServeConfig::default(), async move {
//!     stop.cancelled().await
//! })
//! .await
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;
use tracing::{debug, error};

/// Connection limits of [`serve`]. The defaults suit a server on a shared
/// network; `None` lifts a cap.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Longest wait for a request's head. Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest a connection may stay without a byte either way. Default 60 s.
    pub idle_timeout: Duration,
    /// Most connections open at once. Default 4096.
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client IP. Default 256.
    pub max_connections_per_ip: Option<usize>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: Some(4096),
            max_connections_per_ip: Some(256),
        }
    }
}

impl ServeConfig {
    /// Sets the header-read timeout.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets (or with `None` lifts) the overall connection cap.
    pub fn max_connections(mut self, max: Option<usize>) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets (or with `None` lifts) the per-IP connection cap.
    pub fn max_connections_per_ip(mut self, max: Option<usize>) -> Self {
        self.max_connections_per_ip = max;
        self
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then shuts down
/// gracefully (see the [module docs](self)). Handlers can read the client
/// address as `ConnectInfo<SocketAddr>` and the connection's
/// [`IdleWatch`] from the request's extensions.
///
/// Returns an error only if the listener fails in a way that is not about
/// one connection; failures to accept one connection (say, out of file
/// descriptors) are logged and retried after a short pause.
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    // A listener on a loopback address only has peers on this host (a
    // reverse proxy, the CLI): no pacing toward them (`crate::pacing`; set
    // on the listener, so every accepted connection starts that way).
    if let Ok(address) = listener.local_addr() {
        crate::pacing::unpaced_if_loopback(&listener, address);
    }
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let admission = Arc::new(Admission::new(&config));
    let closing = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                // Out of file descriptors and the like: wait for some to close.
                error!(error = %error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = admission.admit(peer.ip()) else {
            debug!(peer = %peer, "connection refused: over the connection cap");
            drop(stream);
            continue;
        };
        // Small writes go out at once: a terminal's keystroke echo or an
        // event must not wait for the ACK of the previous segment (Nagle).
        if let Err(error) = stream.set_nodelay(true) {
            debug!(peer = %peer, error = %error, "cannot set TCP_NODELAY");
        }
        if let Err(error) = set_keepalive(&stream) {
            debug!(peer = %peer, error = %error, "cannot set TCP keepalive");
        }
        let connection = Connection {
            builder: builder.clone(),
            app: app.clone(),
            peer,
            idle_timeout: config.idle_timeout,
            closing: closing.clone(),
        };
        connections.spawn(connection.run(stream, slot));
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// How long a connection is silent before TCP probes its peer; a peer
/// that answers no probe is dropped by the kernel some probes later.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// The pause between two keepalive probes.
#[cfg(any(target_os = "linux", target_os = "macos"))]
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Turns on TCP keepalive: a dead peer is found even when nothing is sent.
fn set_keepalive(stream: &TcpStream) -> io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    let keepalive = keepalive.with_interval(TCP_KEEPALIVE_INTERVAL);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// Accept errors that concern only the connection being accepted.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Counts open connections, overall and per IP.
#[derive(Debug)]
struct Admission {
    max: Option<usize>,
    max_per_ip: Option<usize>,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Admission {
    fn new(config: &ServeConfig) -> Self {
        Admission {
            max: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            open: Mutex::new(Open::default()),
        }
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        // The counts stay consistent if a holder panicked: keep using them.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more connection from `ip`, if both caps allow it.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open();
        if self.max.is_some_and(|max| open.total >= max) {
            return None;
        }
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip.is_some_and(|max| from_ip >= max) {
            return None;
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Some(Slot {
            admission: self.clone(),
            ip,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut open = self.open();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_ip.remove(&ip);
            }
        }
    }
}

/// One admitted connection, released when dropped.
#[derive(Debug)]
struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.ip);
    }
}

/// One connection being served.
struct Connection {
    builder: Arc<http1::Builder>,
    app: Router,
    peer: SocketAddr,
    idle_timeout: Duration,
    closing: CancellationToken,
}

/// What the watchdog knows of a connection, shared with its socket and the
/// handlers' [`IdleWatch`]es.
#[derive(Debug)]
struct Activity {
    /// A byte moved since the last check.
    moved: AtomicBool,
    /// The last write found the socket full (the client is not reading).
    write_blocked: AtomicBool,
    /// [`IdleExemption`]s held.
    exemptions: AtomicUsize,
}

impl Activity {
    /// A new connection's: it just moved (it was accepted).
    fn new() -> Self {
        Activity {
            moved: AtomicBool::new(true),
            write_blocked: AtomicBool::new(false),
            exemptions: AtomicUsize::new(0),
        }
    }

    /// Whether the connection counts as busy since the last check (and
    /// starts the next check afresh).
    fn busy(&self) -> bool {
        let moved = self.moved.swap(false, Ordering::Relaxed);
        let exempt = self.exemptions.load(Ordering::Relaxed) > 0
            && !self.write_blocked.load(Ordering::Relaxed);
        moved || exempt
    }
}

/// A connection's idle watchdog as a handler sees it: in every request's
/// extensions when served by [`serve`] (absent otherwise, as in tests that
/// call the router directly).
///
/// ```
/// # use axum::extract::Request;
/// # use lease_http::serve::IdleWatch;
/// async fn long_poll(request: Request) -> &'static str {
///     // Not idle while we wait for news: the client is waiting on us.
///     let _busy = request.extensions().get::<IdleWatch>().map(IdleWatch::exempt);
///     // … wait for something to say …
///     "news"
/// }
/// ```
#[derive(Clone, Debug)]
pub struct IdleWatch {
    activity: Arc<Activity>,
}

impl IdleWatch {
    /// Keeps the connection from counting as idle until the returned guard
    /// is dropped — for a handler that waits on someone other than the
    /// client. A connection stuck writing (its client stopped reading)
    /// still counts as idle, and the server's shutdown still closes it.
    pub fn exempt(&self) -> IdleExemption {
        self.activity.exemptions.fetch_add(1, Ordering::Relaxed);
        IdleExemption {
            activity: self.activity.clone(),
        }
    }

    /// A watch of no connection, for tests.
    #[cfg(test)]
    pub(crate) fn unattached() -> Self {
        IdleWatch {
            activity: Arc::new(Activity::new()),
        }
    }

    /// Whether an [`IdleExemption`] of this connection is held.
    pub fn is_exempt(&self) -> bool {
        self.activity.exemptions.load(Ordering::Relaxed) > 0
    }
}

/// While held, the connection is not idle (see [`IdleWatch::exempt`]).
#[derive(Debug)]
#[must_use = "the exemption ends when the guard is dropped"]
pub struct IdleExemption {
    activity: Arc<Activity>,
}

impl Drop for IdleExemption {
    fn drop(&mut self) {
        self.activity.exemptions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many quiet checks make a connection idle: it is checked every
/// `idle_timeout / IDLE_CHECKS`, so it is shut down between 1 and
/// 1 + 1/IDLE_CHECKS idle timeouts after its last byte.
const IDLE_CHECKS: u32 = 4;

impl Connection {
    /// Serves the connection; `slot` goes with the socket, so a connection
    /// upgraded to a WebSocket counts until the socket closes.
    async fn run(self, stream: TcpStream, slot: Slot) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
            _slot: slot,
        });
        let (app, peer) = (self.app, self.peer);
        let handle = IdleWatch {
            activity: activity.clone(),
        };
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(handle.clone());
            // A Router is always ready.
            app.clone().call(request)
        });
        let connection = self.builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        // The watchdog runs as its own task, woken only by its timer and
        // the shutdown: the connection's hot path polls one channel only.
        let (tell, mut told) = tokio::sync::mpsc::channel(2);
        let watchdog = tokio::spawn(watch(activity, self.idle_timeout, self.closing, tell));
        loop {
            tokio::select! {
                biased;
                finished = connection.as_mut() => {
                    if let Err(error) = finished {
                        debug!(peer = %peer, error = %error, "connection ended with an error");
                    }
                    break;
                }
                verdict = told.recv() => match verdict {
                    Some(Verdict::ShutDown) => connection.as_mut().graceful_shutdown(),
                    Some(Verdict::Drop) => {
                        debug!(peer = %peer, "connection still idle: dropping it");
                        break;
                    }
                    // The watchdog is gone (it cannot end otherwise): serve on.
                    None => {
                        let _ = connection.as_mut().await;
                        break;
                    }
                },
            }
        }
        watchdog.abort();
    }
}

/// What the watchdog tells a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Close once the request in flight (if any) is answered.
    ShutDown,
    /// Close now.
    Drop,
}

/// Watches a connection's activity: tells it to shut down when the server
/// does or when it was not busy (no byte moved, no exemption held) for
/// `idle_timeout`, and to drop when still not busy after as long again.
async fn watch(
    activity: Arc<Activity>,
    idle_timeout: Duration,
    closing: CancellationToken,
    tell: tokio::sync::mpsc::Sender<Verdict>,
) {
    let period = (idle_timeout / IDLE_CHECKS).max(Duration::from_millis(1));
    let mut checks = tokio::time::interval(period);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet = 0_u32;
    let mut shutting_down = false;
    loop {
        tokio::select! {
            () = closing.cancelled(), if !shutting_down => {
                shutting_down = true;
                let _ = tell.send(Verdict::ShutDown).await;
                continue;
            }
            _ = checks.tick() => {}
        }
        quiet = if activity.busy() { 0 } else { quiet + 1 };
        if quiet == IDLE_CHECKS && !shutting_down {
            shutting_down = true;
            let _ = tell.send(Verdict::ShutDown).await;
        } else if quiet >= 2 * IDLE_CHECKS {
            let _ = tell.send(Verdict::Drop).await;
            return;
        }
    }
}

/// The connection's socket, noting any progress in either direction and
/// whether writes wait for the client, and holding its admission slot.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl Watched {
    fn note<T>(&self, poll: &Poll<io::Result<T>>) {
        if matches!(poll, Poll::Ready(Ok(_))) {
            self.activity.moved.store(true, Ordering::Relaxed);
        }
    }

    fn note_write<T>(&self, poll: &Poll<io::Result<T>>) {
        self.note(poll);
        self.activity
            .write_blocked
            .store(poll.is_pending(), Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.note(&poll);
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_caps_overall_and_per_ip_and_releases() {
        let config = ServeConfig::default()
            .max_connections(Some(3))
            .max_connections_per_ip(Some(2));
        let admission = Arc::new(Admission::new(&config));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = admission.admit(a);
        let _second = admission.admit(a);
        assert!(admission.admit(a).is_none(), "a third from one IP");
        let _third = admission.admit(b);
        assert!(admission.admit(b).is_none(), "a fourth overall");
        drop(first);
        assert!(admission.admit(b).is_some(), "a slot was freed");
        assert!(admission.open().per_ip.get(&a) == Some(&1));
    }

    /// The watchdog's verdicts for `activity` over `length` of (paused) time.
    async fn verdicts(activity: &Arc<Activity>, idle: Duration, length: Duration) -> Vec<Verdict> {
        let (tell, mut told) = tokio::sync::mpsc::channel(4);
        let watchdog = tokio::spawn(watch(
            activity.clone(),
            idle,
            CancellationToken::new(),
            tell,
        ));
        tokio::time::sleep(length).await;
        watchdog.abort();
        let mut seen = Vec::new();
        while let Ok(verdict) = told.try_recv() {
            seen.push(verdict);
        }
        seen
    }

    #[test]
    fn exemptions_count_and_end_with_their_guards() {
        let watch = IdleWatch {
            activity: Arc::new(Activity::new()),
        };
        assert!(!watch.is_exempt());
        let first = watch.exempt();
        let second = watch.clone().exempt();
        drop(first);
        assert!(watch.is_exempt(), "one guard is still held");
        drop(second);
        assert!(!watch.is_exempt());
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_is_shut_down_then_dropped() {
        let activity = Arc::new(Activity::new());
        let idle = Duration::from_secs(2);
        let seen = verdicts(&activity, idle, idle * 3).await;
        assert_eq!(seen, [Verdict::ShutDown, Verdict::Drop]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_exempt_connection_is_never_idle_until_the_guard_drops() {
        let activity = Arc::new(Activity::new());
        let watch = IdleWatch {
            activity: activity.clone(),
        };
        let idle = Duration::from_secs(2);
        let guard = watch.exempt();
        assert_eq!(verdicts(&activity, idle, idle * 10).await, []);
        drop(guard);
        let seen = verdicts(&activity, idle, idle * 3).await;
        assert_eq!(seen, [Verdict::ShutDown, Verdict::Drop]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_exempt_connection_stuck_writing_is_still_idle() {
        let activity = Arc::new(Activity::new());
        let watch = IdleWatch {
            activity: activity.clone(),
        };
        let _guard = watch.exempt();
        activity.write_blocked.store(true, Ordering::Relaxed);
        let idle = Duration::from_secs(2);
        let seen = verdicts(&activity, idle, idle * 3).await;
        assert_eq!(seen, [Verdict::ShutDown, Verdict::Drop]);
    }

    /// A server with `idle` as its idle timeout and two slow routes: one
    /// exempt while it waits, one not.
    async fn slow_server(idle: Duration, wait: Duration) -> (SocketAddr, CancellationToken) {
        let slow = move |exempt: bool| {
            move |request: axum::extract::Request| async move {
                let _busy = exempt
                    .then(|| {
                        request
                            .extensions()
                            .get::<IdleWatch>()
                            .map(IdleWatch::exempt)
                    })
                    .flatten();
                tokio::time::sleep(wait).await;
                "done"
            }
        };
        let app = Router::new()
            .route("/exempt", axum::routing::get(slow(true)))
            .route("/plain", axum::routing::get(slow(false)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let config = ServeConfig::default().idle_timeout(idle);
        tokio::spawn(serve(listener, app, config, async move {
            stopped.cancelled().await
        }));
        (address, stop)
    }

    /// What `GET path` on a new connection brings back before it closes.
    async fn get(address: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(address)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        String::from_utf8_lossy(&reply).into_owned()
    }

    #[tokio::test]
    async fn a_handler_holding_an_exemption_outlasts_the_idle_timeout() {
        let idle = Duration::from_millis(400);
        let (address, stop) = slow_server(idle, idle * 4).await;
        let (exempt, plain) = tokio::join!(get(address, "/exempt"), get(address, "/plain"));
        stop.cancel();
        assert!(
            exempt.starts_with("HTTP/1.1 200") && exempt.ends_with("done"),
            "{exempt:?}"
        );
        assert_eq!(
            plain, "",
            "the quiet connection was dropped without an answer"
        );
    }
}
