//! Shell sessions: commands run in a lease's container through the server,
//! with or without a terminal, that survive a dropped connection.
//!
//! # Routes
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `/api/containers/{id}/sessions` | start a session (`{"command"?, "tty"?, "cols"?, "rows"?}`) → 201 |
//! | GET | `/api/containers/{id}/sessions` | the lease's sessions |
//! | DELETE | `/api/containers/{id}/sessions/{sid}` | end a session, killing its processes → 204 |
//! | GET | `/api/containers/{id}/sessions/{sid}/attach?offset=N` | WebSocket: stdin in, output out |
//!
//! # Framing on the attach socket
//!
//! - Binary, client → server: stdin bytes as they are (at most
//!   [`crate::Limits::ws_max_message`] per message; larger closes 1009).
//! - Binary, server → client: one channel byte (1 stdout, 2 stderr; always
//!   1 with a terminal), then the output bytes unchanged.
//! - Text (JSON), client → server ([`frames::ClientMessage`]): `resize`,
//!   `signal`, `eof`, `ping`.
//! - Text (JSON), server → client ([`frames::ServerMessage`]): `attached`
//!   first (with the output offset it goes on from and the bytes the replay
//!   buffer no longer held), `exit` or `ended` last (then close 1000),
//!   `detached` (close 4001) when another socket takes the session over,
//!   `pong`, `error`.
//!
//! Output is kept in a replay buffer ([`ShellConfig::replay_bytes`]) with
//! absolute offsets: a client that lost its socket re-attaches with
//! `?offset=<bytes it has>` and gets what it missed. While nobody is
//! attached the process's output keeps flowing into that buffer (the oldest
//! bytes go), so a process never blocks on a detached session. While a
//! client is attached, output goes at the pace the client reads it.
//!
//! # Lifetime
//!
//! A session ends when its process exits (its exit code is delivered to the
//! attached client, or kept until the detach timeout), on DELETE, when the
//! lease ends (`expired` / `deleted`), when nobody is attached for
//! [`ShellConfig::detach_timeout`], or at server shutdown. Ending kills the
//! session's process tree ([`kill`]). Nothing ends a session for idleness:
//! the server pings the attached socket every [`ShellConfig::keepalive`].
//!
//! Sessions live in this process's memory: behind a load balancer with
//! several replicas, shell routes need sticky routing.

mod attach;
mod frames;
mod kill;
mod registry;
mod replay;
pub(crate) mod routes;
mod session;

use std::time::Duration;

use tokio_util::task::TaskTracker;

pub use frames::{ClientMessage, EndReason, ServerMessage, SignalName};
pub use routes::{AttachParams, SessionJson, SessionRequest, SessionSummaryJson, SessionsJson};

pub(crate) use registry::Registry;

/// Settings of shell sessions ([`crate::ApiConfig::shell`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ShellConfig {
    /// Most live sessions on one lease (429 `too_many_sessions` above).
    /// Default 8.
    pub max_sessions_per_lease: u32,
    /// Most live sessions one caller (token owner) may have open over all
    /// leases. Default 32.
    pub max_sessions_per_owner: u32,
    /// A session nobody is attached to for this long is ended and its
    /// processes killed. Default 120 s.
    pub detach_timeout: Duration,
    /// The server sends a WebSocket ping on an attached socket this often,
    /// so proxies and idle timeouts never cut a quiet terminal. Default 20 s.
    pub keepalive: Duration,
    /// Output bytes a session keeps for replay after a dropped connection.
    /// Default 64 KiB.
    pub replay_bytes: usize,
    /// Where the kills of sessions at shutdown run: a binary waits on it
    /// (`close()` then `wait()`) after the server stopped, so no process of
    /// a session outlives the server.
    pub tasks: TaskTracker,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig {
            max_sessions_per_lease: 8,
            max_sessions_per_owner: 32,
            detach_timeout: Duration::from_secs(120),
            keepalive: Duration::from_secs(20),
            replay_bytes: 64 * 1024,
            tasks: TaskTracker::new(),
        }
    }
}

impl ShellConfig {
    /// Sets the most live sessions per lease.
    pub fn max_sessions_per_lease(mut self, max: u32) -> Self {
        self.max_sessions_per_lease = max;
        self
    }

    /// Sets the most live sessions per owner.
    pub fn max_sessions_per_owner(mut self, max: u32) -> Self {
        self.max_sessions_per_owner = max;
        self
    }

    /// Sets how long a session may stay detached.
    pub fn detach_timeout(mut self, timeout: Duration) -> Self {
        self.detach_timeout = timeout;
        self
    }

    /// Sets the interval of the server's pings on attached sockets.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = interval;
        self
    }

    /// Sets the size of each session's replay buffer.
    pub fn replay_bytes(mut self, bytes: usize) -> Self {
        self.replay_bytes = bytes;
        self
    }
}
