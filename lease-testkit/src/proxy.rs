//! A unix-socket proxy in front of the Docker engine's socket, which a test
//! cuts to make the engine unreachable without touching the machine's own
//! daemon.
//!
//! The client under test (a `DockerRuntime`, or a `lease-server` through
//! `DOCKER_HOST`) is given [`DockerProxy::host`]; each connection it opens
//! is piped to the engine's socket by threads of the proxy's own, so it
//! works the same from sync and async tests. Modes ([`Mode`]):
//!
//! - [`Mode::Pass`]: everything goes through;
//! - [`Mode::KillDeletes`]: a connection whose request is a `DELETE` (a
//!   container removal) is closed before the request reaches the engine —
//!   the engine connection dies in the middle of a removal;
//! - [`Mode::Down`]: every live connection is shut down at once and new
//!   ones are closed as soon as they are accepted (the engine is gone).
//!
//! Docker clients speak first on a connection and bollard opens one per
//! request, so the first bytes of a connection are its request line.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What the proxy lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything goes through.
    Pass = 0,
    /// Requests that are a `DELETE` die before reaching the engine.
    KillDeletes = 1,
    /// Nothing goes through; live connections are cut.
    Down = 2,
}

/// The engine's unix socket: `DOCKER_HOST` if it is a `unix://` address,
/// `/var/run/docker.sock` if `DOCKER_HOST` is unset, `None` if the engine is
/// reached over tcp (then no proxy can stand in front of it).
pub fn engine_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.trim().is_empty() => host.strip_prefix("unix://").map(PathBuf::from),
        _ => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

#[derive(Default)]
struct State {
    mode: AtomicU8,
    stopping: AtomicBool,
    killed: AtomicUsize,
    forwarded: AtomicUsize,
    next_id: AtomicU64,
    /// The sockets of every live connection, to shut them down on a cut.
    live: Mutex<HashMap<u64, Vec<UnixStream>>>,
}

impl State {
    fn live(&self) -> MutexGuard<'_, HashMap<u64, Vec<UnixStream>>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn mode(&self) -> u8 {
        self.mode.load(Ordering::SeqCst)
    }

    fn kill(&self, stream: &UnixStream) {
        let _ = stream.shutdown(Shutdown::Both);
        self.killed.fetch_add(1, Ordering::SeqCst);
    }
}

/// A running proxy; stops and removes its socket on drop.
pub struct DockerProxy {
    /// Holds the socket; removed on drop, after the accept loop stopped.
    _dir: crate::TempDir,
    socket: PathBuf,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DockerProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerProxy")
            .field("socket", &self.socket)
            .field("mode", &self.state.mode())
            .finish_non_exhaustive()
    }
}

impl DockerProxy {
    /// Starts a proxy in front of `upstream` (see [`engine_socket`]), its
    /// socket in a fresh directory under the system temp dir.
    ///
    /// # Errors
    ///
    /// If the socket cannot be bound.
    pub fn start(upstream: &Path) -> std::io::Result<DockerProxy> {
        let dir = crate::TempDir::new("lease-docker-proxy");
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket)?;
        let state = Arc::new(State::default());
        let accept = {
            let state = state.clone();
            let upstream = upstream.to_path_buf();
            std::thread::spawn(move || accept_loop(&listener, &upstream, &state))
        };
        Ok(DockerProxy {
            _dir: dir,
            socket,
            state,
            accept: Some(accept),
        })
    }

    /// The address to connect to instead of the engine: `unix://…`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Switches mode; [`Mode::Down`] also cuts every live connection.
    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
        if mode == Mode::Down {
            let live: Vec<_> = self.state.live().drain().collect();
            for stream in live.iter().flat_map(|(_, streams)| streams) {
                let _ = stream.shutdown(Shutdown::Both);
            }
            self.state.killed.fetch_add(live.len(), Ordering::SeqCst);
        }
    }

    /// Makes the engine unreachable ([`Mode::Down`]).
    pub fn cut(&self) {
        self.set_mode(Mode::Down);
    }

    /// Lets everything through again ([`Mode::Pass`]).
    pub fn restore(&self) {
        self.set_mode(Mode::Pass);
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        self.state.mode() == Mode::Down as u8
    }

    /// Connections the proxy refused or cut so far.
    pub fn killed(&self) -> usize {
        self.state.killed.load(Ordering::SeqCst)
    }

    /// Connections piped to the engine so far.
    pub fn forwarded(&self) -> usize {
        self.state.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the accept loop so that it sees `stopping`.
        let _ = UnixStream::connect(&self.socket);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: &UnixListener, upstream: &Path, state: &Arc<State>) {
    for client in listener.incoming() {
        if state.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if state.mode() == Mode::Down as u8 {
            state.kill(&client);
            continue;
        }
        let state = state.clone();
        let upstream = upstream.to_path_buf();
        std::thread::spawn(move || serve(client, &upstream, &state));
    }
}

/// One connection: reads its request line, lets it through or kills it,
/// then pipes both ways until both directions end.
fn serve(mut client: UnixStream, upstream: &Path, state: &State) {
    let id = state.next_id.fetch_add(1, Ordering::SeqCst);
    let Ok(client_copy) = client.try_clone() else {
        return;
    };
    state.live().insert(id, vec![client_copy]);
    let mut head = vec![0_u8; 8192];
    let mut read = 0;
    while read < 7 {
        match client.read(&mut head[read..]) {
            Ok(0) | Err(_) => {
                state.live().remove(&id);
                return;
            }
            Ok(n) => read += n,
        }
    }
    head.truncate(read);
    let mode = state.mode();
    if mode == Mode::Down as u8 || (mode == Mode::KillDeletes as u8 && head.starts_with(b"DELETE "))
    {
        state.live().remove(&id);
        state.kill(&client);
        return;
    }
    let Ok(mut engine) = UnixStream::connect(upstream) else {
        state.live().remove(&id);
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    {
        let mut live = state.live();
        // A cut since the check above took this connection off the list:
        // nothing of it may reach the engine.
        let registered = live.get_mut(&id);
        match (engine.try_clone(), registered) {
            (Ok(engine_copy), Some(streams)) if state.mode() != Mode::Down as u8 => {
                streams.push(engine_copy);
            }
            _ => {
                live.remove(&id);
                drop(live);
                let _ = engine.shutdown(Shutdown::Both);
                state.kill(&client);
                return;
            }
        }
    }
    if engine.write_all(&head).is_ok() {
        state.forwarded.fetch_add(1, Ordering::SeqCst);
        pipe(client, engine);
    }
    state.live().remove(&id);
}

fn pipe(client: UnixStream, engine: UnixStream) {
    let (Ok(mut client_read), Ok(mut engine_read)) = (client.try_clone(), engine.try_clone())
    else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        let mut engine_write = engine;
        let _ = std::io::copy(&mut client_read, &mut engine_write);
        let _ = engine_write.shutdown(Shutdown::Write);
    });
    let mut client_write = client;
    let _ = std::io::copy(&mut engine_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = upstream.join();
}
