//! One HTTP/1.1 exchange over a raw TCP connection, for requests no
//! well-behaved client would send: bad request lines, traversal paths sent
//! verbatim, odd headers, chunked or oversized bodies (issue 8, scenario 8).
//!
//! Each exchange opens a connection, writes the bytes as given, and reads
//! the response head (skipping `1xx` interim responses) and, when it has a
//! `Content-Length`, the body. Streaming answers (no length) are cut after
//! the head.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest response head read.
const HEAD_MAX: usize = 64 * 1024;
/// Longest response body read.
const BODY_MAX: usize = 1024 * 1024;

/// What came back for one raw request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawOutcome {
    /// A final response (or `101 Switching Protocols`).
    Response {
        /// The status code.
        status: u16,
        /// Header lines as `(lowercased name, value)`.
        headers: Vec<(String, String)>,
        /// The body, if it had a `Content-Length` (else empty).
        body: Vec<u8>,
    },
    /// The server closed (or reset) the connection without a response.
    Closed,
    /// Nothing complete came back within the time limit.
    TimedOut,
    /// The connection could not be opened.
    ConnectFailed(String),
}

impl RawOutcome {
    /// The status code, if there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            RawOutcome::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A header's value (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            RawOutcome::Response { headers, .. } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    /// The body (empty without a response).
    pub fn body(&self) -> &[u8] {
        match self {
            RawOutcome::Response { body, .. } => body,
            _ => &[],
        }
    }
}

/// Sends `request` (the complete bytes: request line, headers, body) to
/// `address` and reads the answer; each read and write may block `limit` at
/// most, and the whole exchange gives up after `4 × limit`.
pub fn exchange(address: SocketAddr, request: &[u8], limit: Duration) -> RawOutcome {
    let mut stream = match TcpStream::connect_timeout(&address, limit) {
        Ok(stream) => stream,
        Err(error) => return RawOutcome::ConnectFailed(error.to_string()),
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(limit));
    let _ = stream.set_write_timeout(Some(limit));
    // The server may answer (413, 400, …) and close before reading all of a
    // large body: a failed write is not an outcome of its own, the answer
    // (if any) is still read.
    let _ = stream.write_all(request);
    let _ = stream.flush();
    let head_only = request.starts_with(b"HEAD ");
    read_response(&mut stream, head_only, Instant::now() + limit * 4)
}

fn read_response(stream: &mut TcpStream, head_only: bool, deadline: Instant) -> RawOutcome {
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = [0_u8; 8192];
    loop {
        // Parse whatever heads are complete.
        while let Some(end) = find(&buffer, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let rest = buffer[end + 4..].to_vec();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let Some(status) = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|code| code.parse::<u16>().ok())
            else {
                return RawOutcome::Closed;
            };
            let headers: Vec<(String, String)> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            if (100..200).contains(&status) && status != 101 {
                buffer = rest;
                continue;
            }
            let length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok());
            let bodiless = head_only || status == 204 || status == 304 || status == 101;
            let body = match length {
                Some(_) if bodiless => Vec::new(),
                Some(length) => read_body(stream, rest, length.min(BODY_MAX), deadline),
                None => Vec::new(),
            };
            return RawOutcome::Response {
                status,
                headers,
                body,
            };
        }
        if buffer.len() > HEAD_MAX {
            return RawOutcome::Closed;
        }
        if Instant::now() > deadline {
            return RawOutcome::TimedOut;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return RawOutcome::Closed,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return RawOutcome::TimedOut;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return RawOutcome::Closed,
        }
    }
}

fn read_body(
    stream: &mut TcpStream,
    mut body: Vec<u8>,
    length: usize,
    deadline: Instant,
) -> Vec<u8> {
    let mut chunk = [0_u8; 8192];
    while body.len() < length && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    body.truncate(length);
    body
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
