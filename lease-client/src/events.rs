//! [`EventStream`]: lease events from `GET /api/events` (Server-Sent Events).

use lease_http::wire::EventJson;

use crate::client::without_query;
use crate::error::ClientError;

/// Longest event accepted (an event is one lease's JSON: about 1 KiB).
const MAX_EVENT: usize = 1 << 20;

/// One server-sent event, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A lease changed (`created`, `running`, `extended`, `deleted`, …).
    Lease(Box<EventJson>),
    /// This client read too slowly and `missed` events were dropped.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// The caller's lease events (an admin's: everyone's) as they happen.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    url: String,
    parser: Parser,
}

impl EventStream {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        EventStream {
            url: without_query(response.url()),
            response,
            parser: Parser::default(),
        }
    }

    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Some(event);
            }
            if self.parser.buffer.len() > MAX_EVENT {
                return Some(Err(ClientError::Protocol(
                    "an event stream line over 1 MiB".to_owned(),
                )));
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.parser.buffer.extend_from_slice(&chunk),
                Ok(None) => return None,
                Err(source) => {
                    return Some(Err(ClientError::Transport {
                        url: self.url.clone(),
                        source,
                    }));
                }
            }
        }
    }
}

/// The Server-Sent Events format, as much of it as the server uses:
/// `event:` and `data:` lines, a blank line ends an event, `:` comments.
#[derive(Debug, Default)]
struct Parser {
    /// Bytes received and not yet split into lines.
    buffer: Vec<u8>,
    /// The event being read: its name and data lines.
    name: Option<String>,
    data: Vec<String>,
}

impl Parser {
    /// The next complete event in the buffer, if any.
    fn next_event(&mut self) -> Option<Result<Event, ClientError>> {
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if let Some(event) = self.on_line(line) {
                return Some(event);
            }
        }
        None
    }

    /// Takes one line; an event once a blank line ends it.
    fn on_line(&mut self, line: &str) -> Option<Result<Event, ClientError>> {
        if line.is_empty() {
            let name = self.name.take();
            let data = std::mem::take(&mut self.data).join("\n");
            return match name.as_deref() {
                None if data.is_empty() => None,
                Some("lagged") => Some(Ok(Event::Lagged {
                    missed: data.trim().parse().unwrap_or(0),
                })),
                _ => Some(
                    serde_json::from_str::<EventJson>(&data)
                        .map(|json| Event::Lease(Box::new(json)))
                        .map_err(|source| ClientError::Decode {
                            what: "a lease event",
                            source,
                        }),
                ),
            };
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: &str = r#"{"id":"container-a","imageType":"alpine","status":"running","owner":"o","cost":0.02,"hourlyRate":0.01,"accruedCost":0,"durationMinutes":120,"createdAt":"2026-01-17T10:51:40Z","expiryAt":"2026-01-17T12:51:40Z","expiryTime":"2026-01-17T12:51:40Z","expiresIn":7200,"dockerId":null,"error":null}"#;

    #[test]
    fn reads_events_split_anywhere() {
        let text = format!(
            ":subscribed\n\nevent: running\ndata: {{\"kind\":\"running\",\"at\":\"2026-01-17T10:51:41Z\",\"lease\":{LEASE}}}\r\n\nevent: lagged\ndata: 7\n\n"
        );
        let mut parser = Parser::default();
        let mut events = Vec::new();
        // One byte at a time: chunk boundaries fall anywhere.
        for byte in text.bytes() {
            parser.buffer.push(byte);
            while let Some(event) = parser.next_event() {
                events.push(event.expect("an event"));
            }
        }
        assert_eq!(events.len(), 2, "{events:?}");
        match &events[0] {
            Event::Lease(json) => {
                assert_eq!(json.kind, "running");
                assert_eq!(json.lease.id, "container-a");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(events[1], Event::Lagged { missed: 7 });
    }

    #[test]
    fn refuses_data_that_is_not_an_event() {
        let mut parser = Parser::default();
        parser
            .buffer
            .extend_from_slice(b"event: created\ndata: {\n\n");
        assert!(matches!(
            parser.next_event(),
            Some(Err(ClientError::Decode { .. }))
        ));
    }
}
