//! A small blocking HTTP/1.0 client for the lease API (one connection per
//! request, `Connection: close`), cheap to clone and use from many threads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

/// An error talking to the server: connection, timeout or a malformed answer.
#[derive(Debug)]
pub struct ApiError(pub String);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ApiError {}

/// A response: the status code and the body as JSON (a JSON string when the
/// body is not JSON).
#[derive(Clone, Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body, parsed.
    pub body: Value,
}

impl Response {
    /// `Ok(body)` for a 2xx, else an error naming the status and body.
    pub fn ok(self) -> Result<Value, ApiError> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(ApiError(format!("HTTP {}: {}", self.status, self.body)))
        }
    }
}

/// A client of one server address.
#[derive(Clone, Debug)]
pub struct Api {
    address: SocketAddr,
    token: Option<String>,
    timeout: Duration,
}

impl Api {
    /// A client of `address`, without a token (single-user server), with a
    /// 30 s timeout per request.
    pub fn new(address: SocketAddr) -> Api {
        Api {
            address,
            token: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: impl Into<String>) -> Api {
        self.token = Some(token.into());
        self
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Api {
        self.timeout = timeout;
        self
    }

    /// The server address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// One request with an optional JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, ApiError> {
        let payload = body.map(Value::to_string);
        self.raw(method, path, payload.as_deref().map(str::as_bytes))
    }

    /// One request with raw body bytes (sent as `application/json`), for
    /// hostile-input tests.
    pub fn raw(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response, ApiError> {
        let context = |what: &str, e: std::io::Error| {
            ApiError(format!("{method} {path} to {}: {what}: {e}", self.address))
        };
        let mut stream = TcpStream::connect_timeout(&self.address, self.timeout)
            .map_err(|e| context("connect", e))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(|e| context("set timeout", e))?;
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body.unwrap_or_default());
        stream.write_all(&request).map_err(|e| context("send", e))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| context("read", e))?;
        parse_response(&response).ok_or_else(|| {
            ApiError(format!(
                "{method} {path}: malformed answer: {}",
                String::from_utf8_lossy(&response)
            ))
        })
    }

    /// `GET /readyz` answers 200.
    pub fn ready(&self) -> bool {
        self.request("GET", "/readyz", None)
            .is_ok_and(|r| r.status == 200)
    }

    /// `POST /api/provision` (the raw response: 202 with the lease, or an error).
    pub fn provision(&self, offering: &str, minutes: u32) -> Result<Response, ApiError> {
        self.request(
            "POST",
            "/api/provision",
            Some(&json!({"imageType": offering, "durationMinutes": minutes})),
        )
    }

    /// `GET /api/containers/{id}/status`.
    pub fn status(&self, id: &str) -> Result<Response, ApiError> {
        self.request("GET", &format!("/api/containers/{id}/status"), None)
    }

    /// `GET /api/containers`: the caller's active leases.
    pub fn list(&self) -> Result<Vec<Value>, ApiError> {
        let body = self.request("GET", "/api/containers", None)?.ok()?;
        body.get("containers")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| ApiError(format!("no `containers` array in {body}")))
    }

    /// `POST /api/containers/{id}/extend`.
    pub fn extend(&self, id: &str, minutes: i64) -> Result<Response, ApiError> {
        self.request(
            "POST",
            &format!("/api/containers/{id}/extend"),
            Some(&json!({"minutes": minutes})),
        )
    }

    /// `DELETE /api/containers/{id}`.
    pub fn delete(&self, id: &str) -> Result<Response, ApiError> {
        self.request("DELETE", &format!("/api/containers/{id}"), None)
    }

    /// `GET /api/history`, every page: the caller's finished leases.
    pub fn history(&self) -> Result<Vec<Value>, ApiError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/history?limit=1000&cursor={c}"),
                None => "/api/history?limit=1000".to_owned(),
            };
            let body = self.request("GET", &path, None)?.ok()?;
            let page = body
                .get("leases")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError(format!("no `leases` array in {body}")))?;
            all.extend(page.iter().cloned());
            match body.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => return Ok(all),
            }
        }
    }

    /// Deletes every active lease (errors other than 404 returned).
    pub fn delete_all(&self) -> Result<usize, ApiError> {
        let leases = self.list()?;
        let mut deleted = 0;
        for lease in &leases {
            let id = lease_id(lease)?;
            let response = self.delete(&id)?;
            match response.status {
                200..=299 => deleted += 1,
                404 => {}
                _ => {
                    return Err(ApiError(format!(
                        "DELETE {id}: HTTP {}: {}",
                        response.status, response.body
                    )));
                }
            }
        }
        Ok(deleted)
    }
}

/// A lease JSON's `id`.
pub fn lease_id(lease: &Value) -> Result<String, ApiError> {
    lease
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError(format!("no `id` in {lease}")))
}

/// A lease JSON's `status` (`""` if missing).
pub fn lease_status(lease: &Value) -> &str {
    lease.get("status").and_then(Value::as_str).unwrap_or("")
}

fn parse_response(bytes: &[u8]) -> Option<Response> {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..split]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let raw = &bytes[split + 4..];
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Some(Response { status, body })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}
