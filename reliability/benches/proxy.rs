//! HTTP through lease-server's port proxy against straight to the
//! container's address: what the proxy's hop costs.
//!
//! One run, one lease (offering `ubuntu` of the offline catalog: the local
//! busybox image with 2 CPUs), one release `lease-server` (single-user, on
//! loopback). The app is `bench-apps/keepalive_httpd.rs`, a tiny HTTP/1.1
//! server that keeps connections open and answers every GET with the same
//! 1 KiB: the bench compiles it with `rustc` (standard library only,
//! statically linked, as the busybox image has no libc) and copies it into
//! the lease's container on port 8080. Nothing is pulled. (busybox `httpd`
//! forks per connection and closes each one: with it both paths measured
//! connection setup and SYN drops, not the proxy.)
//!
//! 64 clients (`PROXY_BENCH_CLIENTS`), each on one keep-alive connection,
//! send GETs for `PROXY_BENCH_SECONDS` (default 4) per turn, the two paths
//! taking turns (`PROXY_BENCH_TURNS`, default 3) so both see the same
//! machine load:
//!
//! - **direct**: `http://<container address>:8080/file`;
//! - **proxy**: `http://127.0.0.1:<server>/leases/{id}/ports/8080/file` —
//!   the server checks the caller and the lease per request and forwards
//!   it over its pooled keep-alive connections to the app.
//!
//! Prints requests/s, p50 and p99 of each, the ratio (goal ≥ 0.7×) and the
//! p50 and p99 the proxy adds (goal: p99 ≤ 1 ms). Skips with a reason
//! without Docker, the test image or a static `rustc` build (fails under
//! `CI=true`). Run with `cargo bench -p lease-reliability --bench proxy`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use lease_reliability::server::{self, Server, ServerApi};
use lease_reliability::{quantile, skip_or_fail};
use lease_testkit::docker::{NamespaceGuard, docker_ready};
use tokio::net::TcpStream;

/// The app's port in the lease.
const PORT: u16 = 8080;
/// The file served.
const FILE_BYTES: usize = 1024;
/// Longest wait for the lease.
const LIMIT: Duration = Duration::from_secs(60);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !docker_ready() {
        skip_or_fail("proxy bench: Docker is not reachable");
        return;
    }
    let guard = NamespaceGuard::random();
    let Some(server) = Server::start(server::config(guard.namespace())) else {
        return;
    };
    let Some(app) = build_app() else {
        return;
    };
    let api = server.api();
    let (lease, container) = api.running_lease("ubuntu", LIMIT);
    start_app(&app, &container);
    let address: std::net::IpAddr = docker_inspect_ip(&container).parse().expect("an IP");
    let direct = Target {
        connect: SocketAddr::new(address, PORT),
        path: "/file".to_owned(),
    };
    let proxy = Target {
        connect: api.address(),
        path: format!("/leases/{lease}/ports/{PORT}/file"),
    };
    let clients = env_number("PROXY_BENCH_CLIENTS", 64).max(1);
    let seconds = env_number("PROXY_BENCH_SECONDS", 4).max(1);
    let turns = env_number("PROXY_BENCH_TURNS", 3).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let (direct_run, proxy_run) = runtime.block_on(async {
        // Warm up both paths.
        load(&direct, clients, Duration::from_millis(500)).await;
        load(&proxy, clients, Duration::from_millis(500)).await;
        let mut direct_run = Run::default();
        let mut proxy_run = Run::default();
        for _ in 0..turns {
            direct_run.add(load(&direct, clients, Duration::from_secs(seconds as u64)).await);
            proxy_run.add(load(&proxy, clients, Duration::from_secs(seconds as u64)).await);
        }
        (direct_run, proxy_run)
    });
    print_report(clients, &direct_run, &proxy_run);
    let _ = api.delete(&lease);
    drop(server);
    drop(guard);
}

/// Where one path's requests go.
struct Target {
    connect: SocketAddr,
    path: String,
}

/// What a path did across turns.
#[derive(Default)]
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
        self.errors += other.errors;
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// `clients` clients sending GETs to `target` for `length`.
async fn load(target: &Target, clients: usize, length: Duration) -> Run {
    let target = Arc::new(Target {
        connect: target.connect,
        path: target.path.clone(),
    });
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(target.clone(), deadline)))
        .collect();
    let mut run = Run::default();
    for task in tasks {
        let (latencies, errors) = task.await.expect("a client");
        run.latencies.extend(latencies);
        run.errors += errors;
    }
    run.elapsed = started.elapsed();
    run
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(target: &Target) -> Option<Sender> {
    let stream = TcpStream::connect(target.connect).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// One client: GETs until `deadline`, keeping its connection while the
/// other side does.
async fn client(target: Arc<Target>, deadline: Instant) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut sender: Option<Sender> = None;
    let host = target.connect.to_string();
    while Instant::now() < deadline {
        let started = Instant::now();
        let mut current = match sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => match connect(&target).await {
                Some(sender) => sender,
                None => {
                    errors += 1;
                    continue;
                }
            },
        };
        if current.ready().await.is_err() {
            errors += 1;
            continue;
        }
        let request = hyper::Request::get(target.path.as_str())
            .header("host", host.as_str())
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let Ok(response) = current.send_request(request).await else {
            errors += 1;
            continue;
        };
        let ok = response.status() == 200;
        let keep = !response
            .headers()
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let length = response
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes().len());
        if ok && length.is_ok_and(|length| length == FILE_BYTES) {
            latencies.push(started.elapsed());
        } else {
            errors += 1;
        }
        if keep {
            sender = Some(current);
        }
    }
    (latencies, errors)
}

fn ms(duration: Option<Duration>) -> f64 {
    duration.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn print_report(clients: usize, direct: &Run, proxy: &Run) {
    let (d50, d99) = (
        quantile(&direct.latencies, 0.5),
        quantile(&direct.latencies, 0.99),
    );
    let (p50, p99) = (
        quantile(&proxy.latencies, 0.5),
        quantile(&proxy.latencies, 0.99),
    );
    let ratio = proxy.rate() / direct.rate().max(f64::EPSILON);
    let added = ms(p99) - ms(d99);
    let added_p50 = ms(p50) - ms(d50);
    println!(
        "proxy bench: {clients} keep-alive clients, GET of {FILE_BYTES} B from a keep-alive app in a lease"
    );
    println!("| path | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|");
    println!(
        "| direct (container address) | {:.0} | {:.2} | {:.2} | {} |",
        direct.rate(),
        ms(d50),
        ms(d99),
        direct.errors
    );
    println!(
        "| through lease-server | {:.0} | {:.2} | {:.2} | {} |",
        proxy.rate(),
        ms(p50),
        ms(p99),
        proxy.errors
    );
    println!(
        "proxy/direct requests/s: {ratio:.2}x (goal >= 0.7x); added p50: {added_p50:.2} ms; added p99: {added:.2} ms (goal <= 1 ms)"
    );
    println!("FIGURE proxy_rps_ratio={ratio:.2}");
    println!("FIGURE proxy_added_p50_ms={added_p50:.2}");
    println!("FIGURE proxy_added_p99_ms={added:.2}");
}

/// Compiles `bench-apps/keepalive_httpd.rs` into a static binary beside
/// the bench's own, or says why it cannot.
fn build_app() -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-apps/keepalive_httpd.rs");
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir);
    let binary = dir.join("keepalive_httpd");
    let output = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
        .args(["--edition", "2021", "-O", "-C", "strip=symbols"])
        .args(["-C", "target-feature=+crt-static", "-o"])
        .arg(&binary)
        .arg(&source)
        .output();
    match output {
        Ok(output) if output.status.success() => Some(binary),
        Ok(output) => {
            skip_or_fail(format!(
                "proxy bench: cannot build the static app server (is the C library's static \
                 part, libc6-dev, installed?): {}",
                String::from_utf8_lossy(&output.stderr)
            ));
            None
        }
        Err(error) => {
            skip_or_fail(format!("proxy bench: cannot run rustc: {error}"));
            None
        }
    }
}

/// The app on [`PORT`] of `container`, answering [`FILE_BYTES`] bytes.
fn start_app(binary: &Path, container: &str) {
    let status = Command::new("docker")
        .arg("cp")
        .arg(binary)
        .arg(format!("{container}:/tmp/keepalive_httpd"))
        .stdin(Stdio::null())
        .status()
        .expect("docker cp");
    assert!(status.success(), "the app copied into the lease");
    let status = Command::new("docker")
        .args(["exec", "-d", container, "/tmp/keepalive_httpd"])
        .args([PORT.to_string(), FILE_BYTES.to_string()])
        .stdin(Stdio::null())
        .status()
        .expect("docker exec");
    assert!(status.success(), "the app started");
    std::thread::sleep(Duration::from_millis(300));
}

fn docker_inspect_ip(container: &str) -> String {
    let output = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            container,
        ])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("the container's address")
        .to_owned()
}
