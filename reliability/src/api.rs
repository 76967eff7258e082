//! A small blocking HTTP/1.0 client for the lease API (one connection per
//! request, `Connection: close`), cheap to clone and use from many threads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

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

    /// Provisions `offering` for 30 minutes and waits up to `limit` for it
    /// to run: (lease id, container id). Panics (for benches and tests)
    /// when it cannot.
    pub fn running_lease(&self, offering: &str, limit: Duration) -> (String, String) {
        let created = self
            .provision(offering, 30)
            .and_then(|response| response.ok())
            .expect("a lease");
        let id = lease_id(&created).expect("its id");
        let deadline = Instant::now() + limit;
        loop {
            let lease = self
                .status(&id)
                .and_then(|response| response.ok())
                .expect("its status");
            if lease["status"] == "running" {
                let container = lease["dockerId"].as_str().expect("a container id");
                return (id, container.to_owned());
            }
            assert!(Instant::now() < deadline, "lease never ran: {lease}");
            std::thread::sleep(Duration::from_millis(100));
        }
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

/// `n` provisions sent at once, one thread each; count the acknowledged
/// ones while they run (to inject a fault mid-burst), then join.
pub struct Burst {
    handles: Vec<std::thread::JoinHandle<Result<Response, ApiError>>>,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Burst {
    /// Starts `n` `POST /api/provision` of `offering` for `minutes`.
    pub fn start(api: &Api, offering: &str, minutes: u32, n: usize) -> Burst {
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handles = (0..n)
            .map(|_| {
                let api = api.clone();
                let offering = offering.to_owned();
                let answered = answered.clone();
                std::thread::spawn(move || {
                    let result = api.provision(&offering, minutes);
                    if result.as_ref().is_ok_and(|r| r.status == 202) {
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    result
                })
            })
            .collect();
        Burst { handles, answered }
    }

    /// How many were acknowledged (202) so far.
    pub fn acknowledged(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until at least `k` are acknowledged (`limit` at most); whether they were.
    pub fn wait_acknowledged(&self, k: usize, limit: Duration) -> bool {
        crate::wait_for(limit, Duration::from_millis(1), || {
            (self.acknowledged() >= k).then_some(())
        })
        .is_some()
    }

    /// Every answer (or error), in start order.
    pub fn join(self) -> Vec<Result<Response, ApiError>> {
        self.handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ApiError("provision thread panicked".into())))
            })
            .collect()
    }
}

/// The ids of the acknowledged (202) provisions among `answers`.
pub fn acknowledged_ids(answers: &[Result<Response, ApiError>]) -> Vec<String> {
    answers
        .iter()
        .filter_map(|a| a.as_ref().ok())
        .filter(|r| r.status == 202)
        .filter_map(|r| lease_id(&r.body).ok())
        .collect()
}

/// A lease JSON's RFC 3339 time field (`expiryAt`, `createdAt`, `endedAt`).
pub fn lease_time(lease: &Value, field: &str) -> Option<std::time::SystemTime> {
    let text = lease.get(field)?.as_str()?;
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    let nanos = time.timestamp_nanos_opt()?;
    let nanos = u64::try_from(nanos).ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_nanos(nanos))
}
