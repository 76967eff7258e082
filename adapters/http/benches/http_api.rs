//! HTTP benchmarks, over real loopback connections in one process:
//!
//! 1. `GET /api/containers/{id}/status` throughput against an axum
//!    hello-world route served by the same process (target: ≥ 0.5 of it);
//! 2. `POST /api/provision` latency, p50 and p99, with 64 concurrent clients
//!    while the runtime takes 2 s per container (targets: p99 ≤ 5 ms with
//!    the memory store, ≤ 10 ms with SQLite (`synchronous=FULL`, a file in
//!    a temporary directory on `TMPDIR`'s disk) and with Redis — run when
//!    `LEASE_TEST_REDIS_URL` is set).
//!
//! The API runs as `lease-server` runs it: on `lease_http::serve` with the
//! default connection limits (header-read and idle timeouts, connection
//! caps) and the router's default limits (request timeout, stream cap), the
//! rate limit raised out of the way (the provision run sends thousands of
//! POSTs from one client: it measures the limiter's cost, not its refusals).
//! The hello-world baseline runs on plain `axum::serve`.
//!
//! `cargo bench -p lease-http --bench http_api`; `BENCH_SECONDS` sets the
//! length of each throughput run (default 3).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use lease_core::testing::fake_runtime::FakeRuntime;
use lease_core::{LeaseManager, LeaseStore, ManagerConfig, ProvisionRequest, Status};
use lease_http::{ApiConfig, Limits, RateLimit, ServeConfig, router};
use lease_store_memory::MemoryStore;
use lease_store_redis::{RedisStore, RedisStoreConfig};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig, Synchronous};
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Connections driving the throughput runs.
const THROUGHPUT_CONNECTIONS: usize = 16;
/// Concurrent clients of the provision run.
const PROVISION_CLIENTS: usize = 64;
/// Requests each provision client sends.
const PROVISIONS_PER_CLIENT: usize = 40;
/// The fake runtime's create latency during the provision run.
const CREATE_LATENCY: Duration = Duration::from_secs(2);

async fn serve(app: Router) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

/// Serves the API with every limit on, as the server binary does.
async fn serve_api(app: Router) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(lease_http::serve(
        listener,
        app,
        ServeConfig::default(),
        std::future::pending(),
    ));
    Ok(address)
}

/// The router's default limits, with a rate limit no run reaches.
fn limits() -> Limits {
    let rate = RateLimit {
        per_second: std::num::NonZeroU32::new(1_000_000).unwrap_or(std::num::NonZeroU32::MIN),
        burst: std::num::NonZeroU32::new(1_000_000).unwrap_or(std::num::NonZeroU32::MIN),
    };
    Limits::default().rate(Some(rate))
}

async fn connect(address: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Error> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&'static str>,
) -> Result<u16, Error> {
    sender.ready().await?;
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string());
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request.body(Full::new(Bytes::from_static(
        body.unwrap_or_default().as_bytes(),
    )))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

/// Requests per second of `GET path` over keep-alive connections.
async fn throughput(address: SocketAddr, path: &str, seconds: f64) -> Result<f64, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..THROUGHPUT_CONNECTIONS {
        let mut sender = connect(address).await?;
        let (stop, count, path) = (stop.clone(), count.clone(), path.to_owned());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let status = send(&mut sender, address, "GET", &path, None).await?;
                if status != 200 {
                    return Err::<(), Error>(format!("{path} answered {status}").into());
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for client in clients {
        client.await??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / elapsed)
}

fn manager(store: Arc<dyn LeaseStore>, runtime: Arc<FakeRuntime>) -> Result<LeaseManager, Error> {
    // Quotas off: the run measures the request path, not a quota scan.
    Ok(LeaseManager::builder(store, runtime)
        .config(ManagerConfig::with_namespace("bench-http"))
        .build()?)
}

async fn status_vs_hello(seconds: f64) -> Result<(), Error> {
    let runtime = Arc::new(FakeRuntime::new(
        "bench-http",
        Arc::new(lease_core::SystemClock),
    ));
    let manager = manager(Arc::new(MemoryStore::new()), runtime)?;
    let lease = manager
        .provision(ProvisionRequest::new("local", "alpine").minutes(60))
        .await?;
    for _ in 0..100 {
        if manager.get(&lease.id).await?.status == Status::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let api = serve_api(router(manager, ApiConfig::default().limits(limits()))).await?;
    let hello = serve(Router::new().route("/", get(|| async { "Hello, World!" }))).await?;
    let status_path = format!("/api/containers/{}/status", lease.id);

    // Warm up, then alternate and keep each side's best run.
    throughput(api, &status_path, 0.5).await?;
    throughput(hello, "/", 0.5).await?;
    let (mut best_status, mut best_hello) = (0f64, 0f64);
    for _ in 0..2 {
        best_hello = best_hello.max(throughput(hello, "/", seconds).await?);
        best_status = best_status.max(throughput(api, &status_path, seconds).await?);
    }
    println!(
        "throughput ({THROUGHPUT_CONNECTIONS} keep-alive connections, best of 2 × {seconds} s)"
    );
    println!("  axum hello world            {best_hello:>10.0} req/s");
    println!("  GET /api/containers/{{id}}/status {best_status:>10.0} req/s");
    println!(
        "  ratio status / hello         {:>10.2}   (target >= 0.5)",
        best_status / best_hello
    );
    Ok(())
}

/// The provision request body.
const PROVISION_BODY: &str = r#"{"imageType":"alpine","durationMinutes":60}"#;
/// Interval between one paced client's requests (64 clients: 1280 req/s offered).
const PACE: Duration = Duration::from_millis(50);

/// Runs every client for PROVISIONS_PER_CLIENT requests; returns the sorted
/// latencies and the wall time.
async fn run_clients(
    api: SocketAddr,
    senders: &mut Vec<SendRequest<Full<Bytes>>>,
    pace: Option<Duration>,
) -> Result<(Vec<Duration>, Duration), Error> {
    let start = Instant::now();
    let count = senders.len() as u32;
    let mut clients = Vec::new();
    for (index, mut sender) in senders.drain(..).enumerate() {
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(PROVISIONS_PER_CLIENT);
            let mut next = tokio::time::Instant::now();
            if let Some(pace) = pace {
                next += pace * index as u32 / count;
            }
            for _ in 0..PROVISIONS_PER_CLIENT {
                if let Some(pace) = pace {
                    tokio::time::sleep_until(next).await;
                    next += pace;
                }
                let sent = Instant::now();
                let status = send(
                    &mut sender,
                    api,
                    "POST",
                    "/api/provision",
                    Some(PROVISION_BODY),
                )
                .await?;
                latencies.push(sent.elapsed());
                if status != 202 {
                    return Err::<_, Error>(format!("provision answered {status}").into());
                }
            }
            Ok((sender, latencies))
        }));
    }
    let mut latencies = Vec::new();
    for client in clients {
        let (sender, mine) = client.await??;
        senders.push(sender);
        latencies.extend(mine);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Ok((latencies, elapsed))
}

fn report(
    store: &str,
    mode: &str,
    latencies: &[Duration],
    elapsed: Duration,
    target: Option<Duration>,
) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p50 = percentile(latencies, 50.0);
    let p99 = percentile(latencies, 99.0);
    let max = latencies.last().copied().unwrap_or_default();
    let verdict = match target {
        Some(target) if p99 <= target => format!("(target p99 <= {} ms: ok)", target.as_millis()),
        Some(target) => format!("(target p99 <= {} ms: MISSED)", target.as_millis()),
        None => "(throughput-bound; no target)".to_owned(),
    };
    println!(
        "  {store:<13} {mode:<12} {:>5} req in {:>5.2} s ({:>5.0} req/s)  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  {verdict}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(p50),
        ms(p99),
        ms(max),
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn provision_latency(
    name: &str,
    store: Arc<dyn LeaseStore>,
    target: Duration,
) -> Result<(), Error> {
    let runtime = Arc::new(FakeRuntime::new(
        "bench-http",
        Arc::new(lease_core::SystemClock),
    ));
    runtime.set_create_latency(CREATE_LATENCY);
    let manager = manager(store, runtime.clone())?;
    let shutdown = CancellationToken::new();
    let background = manager.start(shutdown.clone());
    let api = serve_api(router(
        manager.clone(),
        ApiConfig::default()
            .limits(limits())
            .shutdown(shutdown.clone()),
    ))
    .await?;

    // Warm-up: one request per client connection.
    let mut senders = Vec::new();
    for _ in 0..PROVISION_CLIENTS {
        let mut sender = connect(api).await?;
        send(
            &mut sender,
            api,
            "POST",
            "/api/provision",
            Some(PROVISION_BODY),
        )
        .await?;
        senders.push(sender);
    }
    // Paced: each client sends every PACE, the clients spread over it.
    let (paced, elapsed) = run_clients(api, &mut senders, Some(PACE)).await?;
    report(name, "paced", &paced, elapsed, Some(target));
    // Saturated: each client sends its next request as soon as the last is answered.
    let (saturated, elapsed) = run_clients(api, &mut senders, None).await?;
    report(name, "back-to-back", &saturated, elapsed, None);
    shutdown.cancel();
    background.join().await;
    manager.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

fn main() -> Result<(), Error> {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        status_vs_hello(seconds).await?;
        println!(
            "POST /api/provision: {PROVISION_CLIENTS} clients x {PROVISIONS_PER_CLIENT} requests, runtime create latency {CREATE_LATENCY:?}; paced = one request per client every {PACE:?}"
        );
        provision_latency("memory", Arc::new(MemoryStore::new()), Duration::from_millis(5)).await?;
        {
            let dir = tempfile::tempdir()?;
            let config = SqliteStoreConfig::new(dir.path().join("leases.db"))
                .synchronous(Synchronous::Full);
            let store = Arc::new(SqliteStore::open(config).await?);
            provision_latency("SQLite", store, Duration::from_millis(10)).await?;
            // For comparison (no target): commits not waiting for the disk.
            let config = SqliteStoreConfig::new(dir.path().join("normal.db"))
                .synchronous(Synchronous::Normal);
            let store = Arc::new(SqliteStore::open(config).await?);
            provision_latency("SQLite NORMAL", store, Duration::from_millis(10)).await?;
        }
        match std::env::var("LEASE_TEST_REDIS_URL") {
            Ok(url) => {
                let prefix = format!("bench-http-{}", std::process::id());
                let store =
                    Arc::new(RedisStore::connect(RedisStoreConfig::new(url).prefix(prefix)).await?);
                provision_latency("Redis", store.clone(), Duration::from_millis(10)).await?;
                store.delete_all().await?;
            }
            Err(_) => println!("  Redis: skipped (LEASE_TEST_REDIS_URL not set)"),
        }
        Ok::<(), Error>(())
    })
}
