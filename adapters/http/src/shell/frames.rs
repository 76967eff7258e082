//! The JSON messages of the attach socket (binary messages carry stdin and
//! output; see the module docs of [`crate::shell`]).

use serde::{Deserialize, Serialize};

/// Largest terminal side accepted, in columns or rows.
pub(crate) const MAX_TERMINAL_SIDE: u16 = 1000;

/// A text message from the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    /// The terminal's new size (each side 1..=1000).
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// A signal for the session's process tree.
    Signal {
        /// Which one.
        name: SignalName,
    },
    /// Closes the process's standard input.
    Eof,
    /// An application-level keepalive (browsers cannot send WebSocket
    /// pings); answered with [`ServerMessage::Pong`].
    Ping,
}

/// The signals a client may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SignalName {
    /// Interrupt (Ctrl-C).
    Int,
    /// Terminate.
    Term,
    /// Kill (cannot be caught).
    Kill,
    /// Hang up.
    Hup,
    /// Quit (Ctrl-\).
    Quit,
}

impl SignalName {
    /// The name `kill -NAME` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalName::Int => "INT",
            SignalName::Term => "TERM",
            SignalName::Kill => "KILL",
            SignalName::Hup => "HUP",
            SignalName::Quit => "QUIT",
        }
    }
}

/// Why a session ended (the `reason` of [`ServerMessage::Ended`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// The lease reached its end.
    Expired,
    /// The lease was deleted (or stopped).
    Deleted,
    /// The session was closed (DELETE).
    Closed,
    /// Nobody attached within the detach timeout.
    Timeout,
    /// The server is stopping.
    Shutdown,
    /// The exec failed.
    Error,
}

impl EndReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Deleted => "deleted",
            EndReason::Closed => "closed",
            EndReason::Timeout => "timeout",
            EndReason::Shutdown => "shutdown",
            EndReason::Error => "error",
        }
    }
}

/// A text message from the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// The first message on a socket.
    #[serde(rename_all = "camelCase")]
    Attached {
        /// The session.
        session_id: String,
        /// Whether it has a terminal.
        tty: bool,
        /// Offset of the next output byte sent.
        offset: u64,
        /// Bytes asked for that the replay buffer no longer held.
        missed: u64,
    },
    /// The process exited (after its last output).
    Exit {
        /// Its exit code.
        code: i64,
    },
    /// The session ended for another reason.
    Ended {
        /// Why.
        reason: EndReason,
        /// A sentence for people.
        message: String,
    },
    /// This socket no longer carries the session.
    Detached {
        /// Why (`attached elsewhere`).
        reason: String,
    },
    /// Answer to [`ClientMessage::Ping`].
    Pong,
    /// A client message that was not understood, or input refused; the
    /// session goes on.
    Error {
        /// `invalid_message`, `input_overflow`, `signal_failed`, …
        code: String,
        /// What was wrong.
        message: String,
    },
}

impl ServerMessage {
    /// The JSON text of this message.
    pub fn to_text(&self) -> String {
        // Serializing these plain enums cannot fail; keep a valid message anyway.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"error"}"#.to_owned())
    }

    /// An `invalid_message` error.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code: "invalid_message".to_owned(),
            message: message.into(),
        }
    }
}

/// Longest piece of a bad message quoted back.
const QUOTE_MAX: usize = 120;

/// Parses a client text message, checking its values.
pub(crate) fn parse_client(text: &str) -> Result<ClientMessage, String> {
    let message: ClientMessage = serde_json::from_str(text).map_err(|error| {
        let error = error.to_string();
        let cut: String = error.chars().take(QUOTE_MAX).collect();
        format!("not a message this socket understands: {cut}")
    })?;
    if let ClientMessage::Resize { cols, rows } = message {
        check_size(cols, rows)?;
    }
    Ok(message)
}

/// Checks a terminal size.
pub(crate) fn check_size(cols: u16, rows: u16) -> Result<(), String> {
    let side = 1..=MAX_TERMINAL_SIDE;
    if side.contains(&cols) && side.contains(&rows) {
        Ok(())
    } else {
        Err(format!(
            "cols and rows must each be between 1 and {MAX_TERMINAL_SIDE} (got {cols}x{rows})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_message() {
        assert_eq!(
            parse_client(r#"{"type":"resize","cols":120,"rows":40}"#),
            Ok(ClientMessage::Resize {
                cols: 120,
                rows: 40
            })
        );
        assert_eq!(
            parse_client(r#"{"type":"signal","name":"INT"}"#),
            Ok(ClientMessage::Signal {
                name: SignalName::Int
            })
        );
        assert_eq!(parse_client(r#"{"type":"eof"}"#), Ok(ClientMessage::Eof));
        assert_eq!(
            parse_client(r#" {"type":"ping","extra":1} "#),
            Ok(ClientMessage::Ping)
        );
    }

    #[test]
    fn refuses_hostile_or_malformed_messages() {
        for text in [
            "",
            "null",
            "[]",
            "\"resize\"",
            r#"{"type":"resize"}"#,
            r#"{"type":"resize","cols":0,"rows":24}"#,
            r#"{"type":"resize","cols":80,"rows":1001}"#,
            r#"{"type":"resize","cols":70000,"rows":24}"#,
            r#"{"type":"resize","cols":-1,"rows":24}"#,
            r#"{"type":"resize","cols":"80","rows":24}"#,
            r#"{"type":"signal","name":"STOP"}"#,
            r#"{"type":"signal","name":"int"}"#,
            r#"{"type":"signal"}"#,
            r#"{"type":"exec","command":"rm -rf /"}"#,
            r#"{"type":"ping"} trailing"#,
            r#"{"type":"ping""#,
            "{\"type\":\"\u{0}\"}",
        ] {
            let refused = parse_client(text);
            assert!(refused.is_err(), "{text:?} was accepted: {refused:?}");
        }
        // Deep nesting is refused by the parser's recursion limit, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_client(&deep).is_err());
        // A huge message (the socket caps it anyway) gets a short answer.
        let huge = format!(r#"{{"type":"{}"}}"#, "x".repeat(60_000));
        let message = parse_client(&huge).err().unwrap_or_default();
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn server_messages_have_the_protocol_shape() {
        let attached = ServerMessage::Attached {
            session_id: "abc".into(),
            tty: true,
            offset: 10,
            missed: 2,
        };
        assert_eq!(
            attached.to_text(),
            r#"{"type":"attached","sessionId":"abc","tty":true,"offset":10,"missed":2}"#
        );
        let ended = ServerMessage::Ended {
            reason: EndReason::Expired,
            message: "the lease expired".into(),
        };
        assert_eq!(
            ended.to_text(),
            r#"{"type":"ended","reason":"expired","message":"the lease expired"}"#
        );
        assert_eq!(ServerMessage::Pong.to_text(), r#"{"type":"pong"}"#);
        assert_eq!(
            ServerMessage::Exit { code: 3 }.to_text(),
            r#"{"type":"exit","code":3}"#
        );
    }
}
