//! What one caller may take from the server: a request timeout on the
//! non-streaming routes, a rate limit on the mutating ones, and a cap on
//! open streams (SSE, log WebSockets, and any future stream route that
//! takes a [`StreamPermit`]).
//!
//! Who "one caller" is: with tokens, the token's owner; single-user (no
//! tokens), the client IP, which is the TCP peer of the connection
//! ([`crate::serve`] records it) — behind a reverse proxy that is the
//! proxy's address, so every user shares one budget there.
//!
//! Connection-level limits (header-read and idle timeouts, connection caps)
//! are [`crate::serve::ServeConfig`]'s.

mod rate;
mod streams;
mod timeout;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Extensions;

use crate::auth::Caller;

pub(crate) use rate::{RateLimiter, rate_limit};
pub(crate) use streams::StreamLimiter;
pub use streams::StreamPermit;
pub(crate) use timeout::{request_timeout, timed_out};

/// Most bytes a WebSocket reads from its socket at once. tungstenite
/// zero-fills this much of its read buffer before every read attempt, even
/// one that finds nothing to read (its default is 128 KiB): a small buffer
/// keeps a keystroke's round trip from paying for clearing 128 KiB several
/// times. Larger messages (a paste) are still read whole, a few reads each.
pub(crate) const WS_READ_BUFFER: usize = 8 * 1024;

/// Per-caller limits of the router. The defaults never bother a person at
/// a browser or a script that waits for its answers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest a non-streaming request may take before it is answered
    /// `503 request_timeout`. Default 30 s.
    pub request_timeout: Duration,
    /// Rate of mutating requests (POST, DELETE) per caller; `None`: no
    /// limit. Default 10 per second with bursts of 60.
    pub rate: Option<RateLimit>,
    /// Most streams (SSE, log WebSockets) one caller may hold open at once;
    /// `None`: no cap. Default 32.
    pub max_streams_per_caller: Option<u32>,
    /// Largest WebSocket message (and frame) a client may send; larger
    /// closes the socket with code 1009. Default 64 KiB.
    pub ws_max_message: usize,
    /// Longest a stream may wait for its client to take one more message;
    /// a client that stops reading is disconnected after this. Default 30 s.
    pub stream_send_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(30),
            rate: Some(RateLimit::default()),
            max_streams_per_caller: Some(32),
            ws_max_message: 64 * 1024,
            stream_send_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// No rate limit and no stream cap (timeouts stay): for benchmarks and
    /// trusted embedders.
    pub fn unlimited() -> Self {
        Limits {
            rate: None,
            max_streams_per_caller: None,
            ..Limits::default()
        }
    }

    /// Sets the request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets (or with `None` lifts) the rate limit.
    pub fn rate(mut self, rate: Option<RateLimit>) -> Self {
        self.rate = rate;
        self
    }

    /// Sets (or with `None` lifts) the cap on streams per caller.
    pub fn max_streams_per_caller(mut self, max: Option<u32>) -> Self {
        self.max_streams_per_caller = max;
        self
    }

    /// Sets the largest WebSocket message a client may send.
    pub fn ws_max_message(mut self, bytes: usize) -> Self {
        self.ws_max_message = bytes;
        self
    }

    /// Sets how long a stream waits for a client that does not read.
    pub fn stream_send_timeout(mut self, timeout: Duration) -> Self {
        self.stream_send_timeout = timeout;
        self
    }
}

/// A sustained rate with a burst on top (a token bucket, GCRA by the
/// `governor` crate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: NonZeroU32,
    /// Requests allowed at once after a quiet period.
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Whose budget a request spends: the owner (with tokens) or the client IP
/// (single-user). Requests served without [`crate::serve`] (tests calling
/// the router directly) have no IP and share the `unknown` budget.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CallerKey {
    /// An authenticated owner.
    Owner(String),
    /// A client address.
    Ip(IpAddr),
    /// No token and no known address.
    Unknown,
}

impl CallerKey {
    /// The key of a request whose caller is `caller` (set by the auth
    /// middleware); `per_ip` in single-user mode.
    pub(crate) fn of(extensions: &Extensions, per_ip: bool) -> CallerKey {
        if !per_ip && let Some(caller) = extensions.get::<Caller>() {
            return CallerKey::Owner(caller.owner.clone());
        }
        match extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => CallerKey::Ip(peer.ip()),
            None => CallerKey::Unknown,
        }
    }
}

impl std::fmt::Display for CallerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallerKey::Owner(owner) => write!(f, "owner {owner}"),
            CallerKey::Ip(ip) => write!(f, "client {ip}"),
            CallerKey::Unknown => f.write_str("unknown client"),
        }
    }
}
