//! A unix-socket proxy between a [`lease_docker::DockerRuntime`] and the real
//! engine's socket, which a test can cut.
//!
//! The runtime connects to `unix://<proxy>`; each connection is piped to the
//! engine's socket. Modes:
//!
//! - [`Mode::Pass`]: everything goes through;
//! - [`Mode::KillDeletes`]: a connection whose request is a `DELETE` (a
//!   container removal) is closed before the request reaches the engine —
//!   the engine connection dies in the middle of a reap, after the runtime's
//!   namespace check went through;
//! - [`Mode::Down`]: every live connection is cut at once and new ones are
//!   closed as soon as they are accepted (the engine is gone).
//!
//! bollard opens a fresh connection per request (it keeps no idle ones), so
//! the first bytes of a connection are its request line.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the proxy lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass = 0,
    KillDeletes = 1,
    Down = 2,
}

struct State {
    mode: AtomicU8,
    killed: AtomicUsize,
    forwarded: AtomicUsize,
    /// Cancelled to cut every live connection; replaced after each cut.
    cut: std::sync::Mutex<CancellationToken>,
}

/// A running proxy; stops and removes its socket on drop.
pub struct Proxy {
    dir: PathBuf,
    socket: PathBuf,
    state: Arc<State>,
    task: JoinHandle<()>,
}

/// The engine's unix socket (`DOCKER_HOST` if it is a unix socket), or
/// `None` if the engine is reached over tcp.
pub fn engine_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.trim().is_empty() => host.strip_prefix("unix://").map(PathBuf::from),
        _ => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

impl Proxy {
    /// Starts a proxy in front of `upstream` on the current tokio runtime.
    pub fn start(upstream: PathBuf) -> std::io::Result<Proxy> {
        let dir =
            std::env::temp_dir().join(format!("lease-docker-proxy-{}", super::unique_namespace()));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("docker.sock");
        let listener = UnixListener::bind(&socket)?;
        let state = Arc::new(State {
            mode: AtomicU8::new(Mode::Pass as u8),
            killed: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
            cut: std::sync::Mutex::new(CancellationToken::new()),
        });
        let task = tokio::spawn(accept_loop(listener, upstream, state.clone()));
        Ok(Proxy {
            dir,
            socket,
            state,
            task,
        })
    }

    /// The address for `DockerRuntime`: `unix://…`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Switches mode; [`Mode::Down`] also cuts every live connection.
    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
        if mode == Mode::Down {
            let mut cut = self
                .state
                .cut
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            cut.cancel();
            *cut = CancellationToken::new();
        }
    }

    /// Connections closed by the proxy so far.
    pub fn killed(&self) -> usize {
        self.state.killed.load(Ordering::SeqCst)
    }

    /// Connections piped to the engine so far.
    pub fn forwarded(&self) -> usize {
        self.state.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn accept_loop(listener: UnixListener, upstream: PathBuf, state: Arc<State>) {
    while let Ok((client, _)) = listener.accept().await {
        if state.mode.load(Ordering::SeqCst) == Mode::Down as u8 {
            state.killed.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        let cut = state
            .cut
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        tokio::spawn(pipe(client, upstream.clone(), state.clone(), cut));
    }
}

async fn pipe(
    mut client: UnixStream,
    upstream: PathBuf,
    state: Arc<State>,
    cut: CancellationToken,
) {
    // The request line decides whether this connection dies.
    let mut head = vec![0u8; 8192];
    let mut read = 0;
    while read < 7 {
        match client.read(&mut head[read..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
    head.truncate(read);
    let mode = state.mode.load(Ordering::SeqCst);
    if mode == Mode::Down as u8 || (mode == Mode::KillDeletes as u8 && head.starts_with(b"DELETE "))
    {
        state.killed.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let Ok(mut engine) = UnixStream::connect(&upstream).await else {
        return;
    };
    if engine.write_all(&head).await.is_err() {
        return;
    }
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut engine) => {}
        () = cut.cancelled() => {
            state.killed.fetch_add(1, Ordering::SeqCst);
        }
    }
}
