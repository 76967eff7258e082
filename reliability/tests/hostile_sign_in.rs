//! Scenario 8b — hostile input to the sign-in routes (OpenID Connect),
//! against the real `lease-server` binary signed in through a real provider
//! (PyPI's `oidc-provider-mock`, `scripts/oidc-provider.sh`).
//!
//! A proptest corpus aims at every `/auth/*` route, `/api/me` and
//! `/api/tokens`: forged and oversized `state`, `code`, `return_to`
//! (`//evil.com`, `javascript:`, control characters), loopback ports and
//! PKCE challenges, device and user codes, garbage session and login
//! cookies, foreign `Origin`s, and JSON or form bodies of every shape. The
//! server must answer no 5xx, never hang or panic, start no session (no
//! `cl_session` cookie with a value), mint no token, and redirect nowhere
//! but its own paths and the provider.
//!
//! Quick form: 3,000 requests (a fixed seed); `LEASE_RELIABILITY=long`:
//! 30,000 with a seed per run; `LEASE_HOSTILE_SEED=<n>` replays one.

// Test code: a panic is how a check reports failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lease_reliability::docker::{self, NamespaceGuard};
use lease_reliability::raw_http::{RawOutcome, exchange};
use lease_reliability::server::{self, Server};
use lease_reliability::{Scale, figure, random_namespace};
use lease_testkit::oidc::OidcProvider;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// The quick form's corpus seed.
const QUICK_SEED: u64 = 0x5167_6e5f_696e;
/// Connections sending at once.
const CONCURRENCY: usize = 8;

/// Routes of the sign-in surface, with the methods that mean something
/// there (others are sent too).
const ROUTES: &[&str] = &[
    "/auth/login",
    "/auth/callback",
    "/auth/logout",
    "/auth/logout-everywhere",
    "/auth/cli",
    "/auth/cli/allow",
    "/auth/cli/token",
    "/auth/device",
    "/auth/device/token",
    "/auth/device/verify",
    "/auth/device/allow",
    "/api/auth",
    "/api/me",
    "/api/tokens",
    "/api/tokens/current",
    "/api/admin/owners/alice/credentials",
];

/// Values the routes' parameters get.
const HOSTILE: &[&str] = &[
    "",
    "//evil.example/",
    "/\\evil.example",
    "javascript:alert(1)",
    "https://evil.example/cb",
    "/%0d%0aSet-Cookie:%20cl_session=x",
    "%00",
    "%ff%fe",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "0",
    "-1",
    "1023",
    "65536",
    "99999999999999999999",
    "ABCD-EFGH",
    "abcd-efgh",
    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "null",
    "true",
    "{}",
];

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(HOSTILE).prop_map(str::to_owned),
        2 => "[A-Za-z0-9_-]{1,64}",
        1 => "[!-~]{0,80}".prop_map(|s| s.replace([' ', '#'], "")),
        1 => (1_usize..9_000).prop_map(|n| "a".repeat(n)),
    ]
}

fn query_strategy() -> impl Strategy<Value = String> {
    let key = select(
        &[
            "state",
            "code",
            "return_to",
            "port",
            "code_challenge",
            "name",
            "error",
            "error_description",
            "user_code",
        ][..],
    );
    prop::collection::vec((key, value_strategy()), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.replace('&', "%26")))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn cookie_strategy() -> impl Strategy<Value = Option<String>> {
    let one = (
        select(&["cl_session", "cl_login", "cl_port", "other"][..]),
        prop_oneof![
            2 => "[0-9a-f]{64}",
            1 => value_strategy(),
        ],
    )
        .prop_map(|(name, value)| format!("{name}={value}"));
    prop::option::weighted(
        0.6,
        prop::collection::vec(one, 1..4).prop_map(|cookies| cookies.join("; ")),
    )
}

/// A body's fields: names the routes read, hostile values.
fn fields_strategy() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    prop::collection::vec(
        (
            select(
                &[
                    "code",
                    "codeVerifier",
                    "deviceCode",
                    "name",
                    "user_code",
                    "csrf",
                    "decision",
                    "expiresInDays",
                    "state",
                ][..],
            ),
            value_strategy(),
        ),
        0..5,
    )
}

fn body_strategy() -> impl Strategy<Value = (Option<&'static str>, String)> {
    prop_oneof![
        fields_strategy().prop_map(|pairs| {
            let object: serde_json::Map<String, serde_json::Value> = pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                .collect();
            (
                Some("application/json"),
                serde_json::Value::Object(object).to_string(),
            )
        }),
        fields_strategy().prop_map(|pairs| {
            let form = pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={}", v.replace('&', "%26")))
                .collect::<Vec<_>>()
                .join("&");
            (Some("application/x-www-form-urlencoded"), form)
        }),
        "[ -~]{0,200}".prop_map(|s| (Some("application/json"), s)),
        Just((None, String::new())),
    ]
}

/// One hostile request.
#[derive(Debug, Clone)]
struct Probe {
    method: &'static str,
    target: String,
    cookie: Option<String>,
    origin: Option<&'static str>,
    content_type: Option<&'static str>,
    body: String,
}

impl Probe {
    fn to_bytes(&self, address: SocketAddr) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.target,
            self.body.len()
        );
        if let Some(cookie) = &self.cookie {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        if let Some(origin) = self.origin {
            head.push_str(&format!("Origin: {origin}\r\n"));
        }
        if let Some(content_type) = self.content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        head.push_str("X-CSRF-Token: forged\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

fn probe_strategy() -> impl Strategy<Value = Probe> {
    (
        prop_oneof![
            8 => select(&["GET", "POST"][..]),
            1 => select(&["DELETE", "PUT", "HEAD", "OPTIONS"][..]),
        ],
        select(ROUTES),
        prop::option::weighted(0.7, query_strategy()),
        cookie_strategy(),
        prop::option::weighted(
            0.3,
            select(&["https://evil.example", "null", "http://127.0.0.1:1"][..]),
        ),
        body_strategy(),
    )
        .prop_map(
            |(method, route, query, cookie, origin, (content_type, body))| Probe {
                method,
                target: match query {
                    Some(query) if !query.is_empty() => format!("{route}?{query}"),
                    _ => route.to_owned(),
                },
                cookie,
                origin,
                content_type,
                body,
            },
        )
}

/// Probe `index` of the corpus of `seed` (each from its own RNG).
fn generate(seed: u64, index: usize) -> Probe {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    probe_strategy()
        .new_tree(&mut runner)
        .expect("a probe")
        .current()
}

/// What the corpus got back, and what it must never get.
#[derive(Debug, Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    /// 5xx, hangs, sessions started, tokens minted, foreign redirects.
    violations: Vec<String>,
}

fn check(tally: &Mutex<Tally>, issuer: &str, probe: &Probe, outcome: &RawOutcome) {
    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    let mut violation = |what: String| {
        tally
            .violations
            .push(format!("{what}: {} {}", probe.method, clip(&probe.target)));
    };
    let RawOutcome::Response {
        status,
        headers,
        body,
    } = outcome
    else {
        violation(format!("no answer ({outcome:?})"));
        return;
    };
    if *status >= 500 {
        violation(format!(
            "{status} {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    for (name, value) in headers {
        if name == "set-cookie" && value.starts_with("cl_session=") && !value.contains("Max-Age=0")
        {
            violation(format!("a session was started: {value}"));
        }
        if name == "location" && !value.starts_with('/') && !value.starts_with(issuer) {
            violation(format!("a redirect off the server: {value}"));
        }
    }
    let minting = probe.target.starts_with("/auth/cli/token")
        || probe.target.starts_with("/auth/device/token")
        || probe.target == "/api/tokens";
    if minting && probe.method == "POST" && (200..300).contains(status) {
        violation(format!("{status} on a minting route"));
    }
    *tally.statuses.entry(*status).or_default() += 1;
}

fn clip(text: &str) -> String {
    text.chars().take(120).collect()
}

#[test]
fn sign_in_routes_take_hostile_input_without_5xx_sessions_or_tokens() {
    const TEST: &str = "hostile_sign_in";
    if !docker::docker_ready() {
        return;
    }
    let Some(idp) = OidcProvider::start() else {
        return;
    };
    let scale = Scale::from_env();
    let total: usize = scale.pick(3_000, 30_000);
    let seed: u64 = std::env::var("LEASE_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| scale.pick(QUICK_SEED, rand::random()));
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let issuer = idp.issuer();
    let config = server::config(&namespace).args([
        "--oidc-issuer".to_owned(),
        issuer.clone(),
        "--oidc-client-id".to_owned(),
        "lease".to_owned(),
    ]);
    let Some(mut server) = Server::start(config) else {
        return;
    };
    eprintln!("{TEST}: {total} requests, seed {seed} (LEASE_HOSTILE_SEED={seed} replays)");
    let address = server.address();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, tally, issuer) = (next.clone(), tally.clone(), issuer.clone());
            std::thread::spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= total {
                        return;
                    }
                    let probe = generate(seed, index);
                    let outcome =
                        exchange(address, &probe.to_bytes(address), Duration::from_secs(10));
                    check(&tally, &issuer, &probe, &outcome);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a sender thread");
    }
    let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!("{TEST}: statuses {:?}", tally.statuses);
    figure("scenario8b.requests", total);
    figure("scenario8b.violations", tally.violations.len());
    assert!(
        tally.violations.is_empty(),
        "{} violations, first ones:\n{}",
        tally.violations.len(),
        tally
            .violations
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        server.is_running(),
        "lease-server died:\n{}",
        server.log_text()
    );
    assert!(
        !server.log_text().contains("panicked"),
        "the server log shows a panic"
    );
}
