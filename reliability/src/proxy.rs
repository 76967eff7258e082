//! A unix-socket proxy between a `lease-server` and the Docker engine's
//! socket, which a test cuts to make the engine unreachable without touching
//! the machine's own daemon (issue 8, scenario 3).
//!
//! The server gets `DOCKER_HOST=unix://<proxy socket>` ([`DockerProxy::host`]);
//! each connection it opens is piped to the real engine socket by two
//! threads. While the proxy is [cut](DockerProxy::cut), every live connection
//! is shut down at once and new ones are closed as soon as they are
//! accepted, which is what a client sees when the engine is gone.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

struct State {
    down: AtomicBool,
    stopping: AtomicBool,
    refused: AtomicUsize,
    forwarded: AtomicUsize,
    next_id: AtomicU64,
    /// Both ends of every live connection, to shut them down on a cut.
    live: Mutex<HashMap<u64, (UnixStream, UnixStream)>>,
}

impl State {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (UnixStream, UnixStream)>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running proxy; stops and removes its socket on drop.
pub struct DockerProxy {
    dir: PathBuf,
    socket: PathBuf,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

/// The engine's unix socket: `DOCKER_HOST` if it is a `unix://` address,
/// `/var/run/docker.sock` if `DOCKER_HOST` is unset, `None` if the engine is
/// reached over tcp (then this proxy cannot stand in front of it).
pub fn engine_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.trim().is_empty() => host.strip_prefix("unix://").map(PathBuf::from),
        _ => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

impl DockerProxy {
    /// Starts a proxy in front of `upstream`, its socket in a fresh
    /// directory under the system temp dir.
    pub fn start(upstream: &Path) -> std::io::Result<DockerProxy> {
        let dir = std::env::temp_dir().join(format!(
            "lease-reliability-proxy-{}-{}",
            std::process::id(),
            crate::random_suffix()
        ));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("docker.sock");
        let listener = UnixListener::bind(&socket)?;
        let state = Arc::new(State {
            down: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        });
        let accept = {
            let state = state.clone();
            let upstream = upstream.to_path_buf();
            std::thread::spawn(move || accept_loop(&listener, &upstream, &state))
        };
        Ok(DockerProxy {
            dir,
            socket,
            state,
            accept: Some(accept),
        })
    }

    /// The address to give the server as `DOCKER_HOST`: `unix://…`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Makes the engine unreachable: refuses new connections and shuts down
    /// every live one, until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.state.down.store(true, Ordering::SeqCst);
        let live: Vec<_> = self.state.live().drain().collect();
        for (_, (client, engine)) in live {
            let _ = client.shutdown(Shutdown::Both);
            let _ = engine.shutdown(Shutdown::Both);
            self.state.refused.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        self.state.down.load(Ordering::SeqCst)
    }

    /// Connections the proxy refused or cut so far.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
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
        // Wakes the accept loop so it sees `stopping`.
        let _ = UnixStream::connect(&self.socket);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn accept_loop(listener: &UnixListener, upstream: &Path, state: &Arc<State>) {
    for client in listener.incoming() {
        if state.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if state.down.load(Ordering::SeqCst) {
            state.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(engine) = UnixStream::connect(upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let (Ok(client_copy), Ok(engine_copy)) = (client.try_clone(), engine.try_clone()) else {
            continue;
        };
        let id = state.next_id.fetch_add(1, Ordering::SeqCst);
        {
            let mut live = state.live();
            // A cut between the check above and here must not let it through.
            if state.down.load(Ordering::SeqCst) {
                state.refused.fetch_add(1, Ordering::SeqCst);
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            live.insert(id, (client_copy, engine_copy));
        }
        state.forwarded.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        std::thread::spawn(move || pipe(client, engine, id, &state));
    }
}

/// Copies both ways until both directions end.
fn pipe(client: UnixStream, engine: UnixStream, id: u64, state: &State) {
    let (Ok(mut client_read), Ok(mut engine_read)) = (client.try_clone(), engine.try_clone())
    else {
        state.live().remove(&id);
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
    state.live().remove(&id);
}
