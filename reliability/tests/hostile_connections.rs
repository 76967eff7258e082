//! Hostile clients at the connection level, against the real `lease-server`
//! binary with its default limits (only the ones a scenario names are set):
//!
//! - **slow headers**: many connections that send a request head a byte at
//!   a time and never finish it, while `/healthz` is probed from another
//!   client address. `/healthz` p99 must stay under 50 ms and most slow
//!   connections must be cut within a minute (the header-read timeout).
//!   The slow clients come from other loopback addresses (127.0.0.2…), as
//!   distinct clients would, so each stays under the per-IP cap.
//! - **stream floods per token**: one token opens far more event streams
//!   than its cap; the excess is refused with `429 too_many_streams`,
//!   another token and `/healthz` are still served, closing streams frees
//!   slots, and the server's memory stays bounded.
//!
//! Quick form (CI): 100 slow connections, 64 streams; `LEASE_RELIABILITY=long`:
//! 500 slow connections, 500 streams.

// Test code: a panic is how a check reports failure.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lease_reliability::docker::{self, NamespaceGuard};
use lease_reliability::server::{self, Server, ServerApi};
use lease_reliability::{Scale, figure, quantile, random_namespace};
use lease_testkit::server::mint_token;
use socket2::{Domain, Socket, Type};

/// A TCP connection from the loopback address `from` to `to`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// Sends a request head a byte at a time (one byte per connection per
/// second) on `connections`, never finishing it; returns when every
/// connection is closed by the server or `limit` has passed, with how long
/// each one lasted (`None`: still open).
fn trickle(mut connections: Vec<TcpStream>, limit: Duration) -> Vec<Option<Duration>> {
    const HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-slow: ";
    let started = Instant::now();
    let mut cut: Vec<Option<Duration>> = vec![None; connections.len()];
    for connection in &connections {
        connection.set_nonblocking(true).unwrap();
    }
    let mut sent = 0;
    let mut chunk = [0_u8; 1024];
    while started.elapsed() < limit && cut.iter().any(Option::is_none) {
        for (index, connection) in connections.iter_mut().enumerate() {
            if cut[index].is_some() {
                continue;
            }
            let byte = HEAD.get(sent).copied().unwrap_or(b'x');
            let wrote = connection.write(&[byte]);
            let read = connection.read(&mut chunk);
            let closed = matches!(read, Ok(0))
                || matches!(&read, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
                || matches!(&wrote, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock);
            if closed {
                cut[index] = Some(started.elapsed());
            }
        }
        sent += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    cut
}

#[test]
fn slow_header_connections_are_cut_while_healthz_stays_fast() {
    const TEST: &str = "slow_headers";
    if !docker::docker_ready() {
        return;
    }
    let scale = Scale::from_env();
    let slow: usize = scale.pick(100, 500);
    // Spread over client addresses, each under the default per-IP cap.
    let addresses: u8 = scale.pick(2, 10);
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let Some(mut server) = Server::start(server::config(&namespace)) else {
        return;
    };
    let address = server.address();

    // Probe /healthz from 127.0.0.1, a fresh connection each time, until
    // the slow connections are done.
    let done = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let prober = {
        let (done, latencies, failures, api) = (
            done.clone(),
            latencies.clone(),
            failures.clone(),
            server.api().with_timeout(Duration::from_secs(5)),
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let sent = Instant::now();
                match api.request("GET", "/healthz", None) {
                    Ok(response) if response.status == 200 => {
                        latencies.lock().unwrap().push(sent.elapsed());
                    }
                    other => failures.lock().unwrap().push(format!("{other:?}")),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let opened = Instant::now();
    let per_address = slow.div_ceil(usize::from(addresses));
    let groups: Vec<_> = (0..addresses)
        .map(|i| {
            let from = Ipv4Addr::new(127, 0, 0, 2 + i);
            std::thread::spawn(move || {
                let connections: Vec<TcpStream> = (0..per_address)
                    .map(|_| connect_from(from, address).expect("a slow connection"))
                    .collect();
                trickle(connections, Duration::from_secs(75))
            })
        })
        .collect();
    let cuts: Vec<Option<Duration>> = groups
        .into_iter()
        .flat_map(|group| group.join().expect("a slow client thread"))
        .collect();
    let elapsed = opened.elapsed();
    done.store(true, Ordering::Relaxed);
    prober.join().unwrap();

    let latencies = latencies.lock().unwrap().clone();
    let failures = failures.lock().unwrap().clone();
    let cut_times: Vec<Duration> = cuts.iter().flatten().copied().collect();
    let within_minute = cut_times
        .iter()
        .filter(|t| **t <= Duration::from_secs(60))
        .count();
    let p99 = quantile(&latencies, 0.99).unwrap_or_default();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    eprintln!(
        "{TEST}: {} slow connections from {addresses} addresses for {elapsed:.1?}; {} /healthz probes, {} failed",
        cuts.len(),
        latencies.len(),
        failures.len()
    );
    figure("scenario15.slow_headers.connections", cuts.len());
    figure("scenario15.slow_headers.healthz_probes", latencies.len());
    figure(
        "scenario15.slow_headers.healthz_p50_ms",
        ms(quantile(&latencies, 0.5).unwrap_or_default()),
    );
    figure("scenario15.slow_headers.healthz_p99_ms", ms(p99));
    figure("scenario15.slow_headers.cut_within_60s", within_minute);
    figure(
        "scenario15.slow_headers.cut_p50_ms",
        ms(quantile(&cut_times, 0.5).unwrap_or_default()),
    );
    figure(
        "scenario15.slow_headers.cut_max_ms",
        ms(cut_times.iter().max().copied().unwrap_or_default()),
    );

    assert!(
        server.is_running(),
        "lease-server died:\n{}",
        server.log_text()
    );
    assert!(
        failures.is_empty(),
        "/healthz failed during the slow connections: {:?}",
        failures.iter().take(5).collect::<Vec<_>>()
    );
    assert!(latencies.len() >= 10, "too few probes: {}", latencies.len());
    assert!(
        p99 < Duration::from_millis(50),
        "/healthz p99 {p99:?} while {slow} connections trickled headers"
    );
    assert!(
        within_minute * 10 >= cuts.len() * 9,
        "only {within_minute} of {} slow connections were cut within a minute",
        cuts.len()
    );
    // Cut by the header-read timeout (10 s by default), not at once.
    let earliest = cut_times.iter().min().copied().unwrap_or_default();
    assert!(
        earliest >= Duration::from_secs(5),
        "a slow connection was cut after {earliest:?}: refused rather than timed out?"
    );
}

/// A tokens file for alice and bob in a temporary file, removed on drop.
struct Tokens {
    path: PathBuf,
    alice: String,
    bob: String,
}

impl Tokens {
    fn new() -> Tokens {
        let binary = lease_reliability::server::binary().expect("the lease-server binary");
        let alice = mint_token(&binary, "alice", false);
        let bob = mint_token(&binary, "bob", false);
        let path = std::env::temp_dir().join(format!(
            "lease-tokens-{}.toml",
            lease_testkit::random_suffix()
        ));
        std::fs::write(&path, format!("{}{}", alice.toml_entry, bob.toml_entry)).unwrap();
        Tokens {
            path,
            alice: alice.token,
            bob: bob.token,
        }
    }
}

impl Drop for Tokens {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Opens `GET /api/events` as `token`: the status and, on 200, the open
/// connection.
fn open_stream(address: SocketAddr, token: &str) -> (u16, Option<TcpStream>) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!(
        "GET /api/events HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => panic!("no answer head: {}", String::from_utf8_lossy(&head)),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, (status == 200).then_some(stream))
}

#[test]
fn a_stream_flood_from_one_token_is_capped_and_others_are_served() {
    const TEST: &str = "stream_flood";
    const CAP: usize = 32;
    if !docker::docker_ready() {
        return;
    }
    let scale = Scale::from_env();
    let attempts: usize = scale.pick(64, 500);
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let tokens = Tokens::new();
    let config = server::config(&namespace).args([
        "--tokens".to_owned(),
        tokens.path.display().to_string(),
        "--max-streams-per-caller".to_owned(),
        CAP.to_string(),
    ]);
    let Some(mut server) = Server::start(config) else {
        return;
    };
    let address = server.address();
    let pid = server.pid().expect("running");
    let rss_start = lease_reliability::rss_kb(pid);

    let mut open = Vec::new();
    let mut refused = 0;
    let started = Instant::now();
    for _ in 0..attempts {
        match open_stream(address, &tokens.alice) {
            (200, Some(stream)) => open.push(stream),
            (429, _) => refused += 1,
            (status, _) => panic!("a stream answered {status}"),
        }
    }
    let flood_time = started.elapsed();
    let rss_flood = lease_reliability::rss_kb(pid);
    // Bob and the health check are served meanwhile.
    let (bob_status, _bob) = open_stream(address, &tokens.bob);
    let health = server
        .api()
        .request("GET", "/healthz", None)
        .expect("/healthz");
    // Alice closes her streams: she may open new ones.
    let held = open.len();
    drop(open);
    let reopened =
        lease_reliability::wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            (open_stream(address, &tokens.alice).0 == 200).then_some(())
        });
    let rss_end = lease_reliability::rss_kb(pid);

    eprintln!(
        "{TEST}: {attempts} streams asked for by one token in {flood_time:.1?}: {held} open, {refused} refused"
    );
    figure("scenario15.stream_flood.attempts", attempts);
    figure("scenario15.stream_flood.open", held);
    figure("scenario15.stream_flood.refused_429", refused);
    figure("scenario15.stream_flood.rss_start_kib", rss_start);
    figure("scenario15.stream_flood.rss_flood_kib", rss_flood);
    figure("scenario15.stream_flood.rss_end_kib", rss_end);

    assert!(
        server.is_running(),
        "lease-server died:\n{}",
        server.log_text()
    );
    assert_eq!(held, CAP, "streams open for one token");
    assert_eq!(refused, attempts - CAP, "streams refused with 429");
    assert_eq!(bob_status, 200, "another token's stream");
    assert_eq!(health.status, 200);
    assert!(
        reopened.is_some(),
        "alice could not open a stream after closing hers"
    );
    let growth = rss_end.max(rss_flood).saturating_sub(rss_start);
    assert!(
        growth < 64 * 1024,
        "VmRSS grew by {growth} KiB (start {rss_start}, flood {rss_flood}, end {rss_end})"
    );
}
