//! TCP port-forward: one WebSocket carries one TCP connection to a port of
//! a lease's container (`GET /api/containers/{id}/ports/{port}/tcp`).
//!
//! The connection is opened by the reach layer ([`crate::ports::connect`])
//! before the upgrade, so a refusal is an ordinary HTTP answer: 404 (not
//! the caller's lease), 400 (bad port), 409 (not running, no network), 502
//! `upstream_unreachable` (nothing listening), 429 `too_many_streams` (the
//! tunnel takes one of the caller's [`crate::StreamPermit`]s).
//!
//! Framing, once upgraded:
//! - binary messages carry the connection's bytes, unchanged, both ways,
//!   at most [`MAX_DATA_MESSAGE`] (256 KiB) per message either way: this
//!   route's own cap, in place of the server's general WebSocket message
//!   limit ([`crate::Limits::ws_max_message`]), so that bulk transfers
//!   move in few large messages; a larger client message (or frame)
//!   closes the tunnel with 1009;
//! - text messages are JSON [`TunnelMessage`]s: `{"type":"eof"}` is a TCP
//!   half-close (either way: the client's says it will write no more, the
//!   server's that the container's side did);
//!   `{"type":"ended","reason","message"}` comes before the server closes
//!   a tunnel whose lease ended (close code 1001, reason `expired`,
//!   `deleted` or `shutdown`);
//! - once both sides have sent `eof`, the server closes with 1000; an error
//!   on the TCP connection closes with 1011 and the error as the reason; a
//!   client message that is not valid closes with 1008 (1009 when too big).
//!
//! The server pings every [`crate::ShellConfig::keepalive`] so idle tunnels
//! (a database connection doing nothing) survive proxies' idle timeouts.

mod buffer;
pub(crate) mod route;
mod tunnel;

pub use buffer::prepare_message_buffer;
pub(crate) use route::tcp;
use serde::{Deserialize, Serialize};

/// Most bytes in one binary message, either way: the server sends at most
/// this much per message, and refuses (1009) a larger client message or
/// frame on this route. Large messages keep bulk transfers cheap (one
/// message per socket read of a busy connection); the cap bounds what one
/// tunnel buffers.
pub const MAX_DATA_MESSAGE: usize = 256 * 1024;
/// Most bytes a tunnel's WebSocket (either end) reads from its socket at
/// once. tungstenite zero-fills this much of its read buffer before every
/// read attempt, even one that finds nothing to read: with 64 KiB a large
/// message takes a few reads, and no attempt clears much more than it can
/// use (measured with the forward bench: less CPU per byte than 256 KiB
/// in both directions).
pub const READ_BUFFER: usize = 64 * 1024;
/// Close code: both sides closed their half of the connection.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: the lease ended or the server is stopping (the reason says which).
pub const CLOSE_LEASE_ENDED: u16 = 1001;
/// Close code: a client message the tunnel does not take.
pub const CLOSE_POLICY: u16 = 1008;
/// Close code: a client message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: the TCP connection failed (the reason says how).
pub const CLOSE_ERROR: u16 = 1011;

/// Why a tunnel was ended by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelEnd {
    /// The lease reached its end.
    Expired,
    /// The lease was deleted, or its container stopped.
    Deleted,
    /// The server is stopping.
    Shutdown,
}

impl TunnelEnd {
    /// The wire name (also the close reason).
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelEnd::Expired => "expired",
            TunnelEnd::Deleted => "deleted",
            TunnelEnd::Shutdown => "shutdown",
        }
    }
}

/// A text (JSON) message on a tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TunnelMessage {
    /// The sender's side of the TCP connection is done writing (half-close).
    Eof,
    /// The tunnel ends because its lease did (server → client, before close 1001).
    Ended {
        /// Why.
        reason: TunnelEnd,
        /// For people.
        message: String,
    },
}

impl TunnelMessage {
    /// As JSON text.
    pub fn to_text(&self) -> String {
        // A derived Serialize of plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_documented_shape() {
        assert_eq!(TunnelMessage::Eof.to_text(), r#"{"type":"eof"}"#);
        let ended = TunnelMessage::Ended {
            reason: TunnelEnd::Expired,
            message: "m".into(),
        };
        assert_eq!(
            ended.to_text(),
            r#"{"type":"ended","reason":"expired","message":"m"}"#
        );
        let parsed: Result<TunnelMessage, _> = serde_json::from_str(r#"{"type":"eof"}"#);
        assert_eq!(parsed.ok(), Some(TunnelMessage::Eof));
        assert!(serde_json::from_str::<TunnelMessage>(r#"{"type":"resize"}"#).is_err());
    }
}
