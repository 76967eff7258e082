//! Warm pools: provision → running as a client sees it, in one run on the
//! real Docker engine, three ways:
//!
//! 1. **pool hit**: `POST /api/provision` of an offering with a warm pool
//!    (`pool = 4`) while a pooled container is ready: the 202 already says
//!    `running` (the time is POST to that answer);
//! 2. **no pool**: the same offering without a pool: POST, then
//!    `GET /api/containers/{id}/status` every millisecond until `running`;
//! 3. **raw `docker run -d`**: bollard create + start of the same image and
//!    command, no engine, no store (the floor of the no-pool path).
//!
//! The server is `lease_http` in process over the SQLite store (a file in
//! a temporary directory, `synchronous=FULL`, the default) and the Docker
//! runtime. Each lease is deleted (untimed) before the next request; for
//! the hits the bench waits (untimed) until the pool is full again.
//! Prints p50 / p99 / max of each and the ratios; the goal is p99 ≤ 20 ms
//! at a hit.
//!
//! ```text
//! scripts/test-images.sh
//! cargo bench -p lease-reliability --bench pools
//! LEASE_BENCH_POOL_RUNS=100 cargo bench -p lease-reliability --bench pools
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use lease_core::{Catalog, ContainerRuntime, LeaseManager, LeaseStore, ManagerConfig};
use lease_docker::DockerRuntime;
use lease_reliability::{quantile, random_namespace};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig};
use lease_testkit::docker::NamespaceGuard;
use lease_testkit::{IMAGE, TempDir};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The pooled offering's pool size.
const POOL: u32 = 4;
/// The goal at a hit.
const GOAL_P99: Duration = Duration::from_millis(20);

fn runs() -> usize {
    std::env::var("LEASE_BENCH_POOL_RUNS")
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|runs| *runs > 0)
        .unwrap_or(40)
}

fn main() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Error> {
    let docker = Docker::connect_with_defaults()?;
    if docker.inspect_image(IMAGE).await.is_err() {
        return Err(format!("image {IMAGE} is missing: run scripts/test-images.sh").into());
    }
    let runs = runs();
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let dir = TempDir::new("bench-pools");
    println!(
        "provision → running as a client sees it, {runs} runs each, SQLite (FULL), Docker; pool = {POOL}"
    );
    let catalog = Catalog::from_path(lease_testkit::local_catalog())?;
    let pooled = with_pool(&catalog, POOL)?;
    let (hit, misses) = api_runs(&namespace, &dir, "hit.db", pooled, runs, Path::Hit).await?;
    let (cold, _) = api_runs(&namespace, &dir, "cold.db", catalog, runs, Path::NoPool).await?;
    let raw = raw_runs(&docker, &namespace, runs).await?;

    let ms = |values: &[Duration], q: f64| {
        quantile(values, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    for (name, values) in [
        ("pool hit", &hit),
        ("no pool", &cold),
        ("raw docker run -d", &raw),
    ] {
        println!(
            "  {name:<18} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  (n = {})",
            ms(values, 0.5),
            ms(values, 0.99),
            ms(values, 1.0),
            values.len()
        );
    }
    println!("  misses during the hit runs: {misses}");
    let hit99 = ms(&hit, 0.99);
    println!(
        "  hit p99 / no-pool p99 = {:.3}; hit p99 / raw p99 = {:.3}; hit p50 / raw p50 = {:.3}",
        hit99 / ms(&cold, 0.99),
        hit99 / ms(&raw, 0.99),
        ms(&hit, 0.5) / ms(&raw, 0.5)
    );
    let verdict = if hit99 <= GOAL_P99.as_secs_f64() * 1e3 {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "  goal p99 ≤ {} ms at a hit: {verdict}",
        GOAL_P99.as_millis()
    );
    Ok(())
}

fn with_pool(catalog: &Catalog, pool: u32) -> Result<Catalog, Error> {
    let offerings = catalog.offerings().cloned().map(|mut offering| {
        if offering.key == "alpine" {
            offering.pool = pool;
        }
        offering
    });
    Ok(Catalog::new(offerings.collect::<Vec<_>>())?)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Hit,
    NoPool,
}

/// `runs` provisions of alpine through the HTTP API; the client-seen
/// times, and how many hit runs found the pool empty (not counted).
async fn api_runs(
    namespace: &str,
    dir: &TempDir,
    file: &str,
    catalog: Catalog,
    runs: usize,
    path: Path,
) -> Result<(Vec<Duration>, usize), Error> {
    let store =
        SqliteStore::open(SqliteStoreConfig::new(dir.path().join(file)).namespace(namespace))
            .await?;
    let store: Arc<dyn LeaseStore> = Arc::new(store);
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(DockerRuntime::connect(namespace).await?);
    let manager = LeaseManager::builder(store, runtime)
        .catalog(catalog)
        .config(ManagerConfig::with_namespace(namespace))
        .build()?;
    let stop = CancellationToken::new();
    let background = manager.start(stop.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let stopped = stop.clone();
    let api = lease_http::ApiConfig::default()
        .limits(lease_http::Limits::default().rate(None))
        .shutdown(stop.clone());
    tokio::spawn(lease_http::serve(
        listener,
        lease_http::router(manager.clone(), api),
        lease_http::ServeConfig::default(),
        async move { stopped.cancelled().await },
    ));
    let mut sender = connect(address).await?;
    let mut times = Vec::with_capacity(runs);
    let mut misses = 0;
    // One untimed warm-up of the whole path.
    for run in 0..=runs {
        if path == Path::Hit {
            wait_for_full_pool(&manager).await?;
        }
        let sent = Instant::now();
        let lease = send(&mut sender, address, "POST", "/api/provision", PROVISION).await?;
        let id = lease["id"].as_str().ok_or("no id")?.to_owned();
        let status = lease["status"].as_str().unwrap_or_default().to_owned();
        let took = match (path, status.as_str()) {
            (_, "running") => Some(sent.elapsed()),
            (Path::Hit, _) => {
                misses += 1;
                None
            }
            (Path::NoPool, _) => {
                poll_running(&mut sender, address, &id).await?;
                Some(sent.elapsed())
            }
        };
        if run > 0
            && let Some(took) = took
        {
            times.push(took);
        }
        send(
            &mut sender,
            address,
            "DELETE",
            &format!("/api/containers/{id}"),
            "",
        )
        .await?;
    }
    stop.cancel();
    background.join().await;
    manager.shutdown(Duration::from_secs(5)).await;
    // Leave nothing of this run for the next one.
    manager.reap_once().await?;
    manager.reconcile_once().await?;
    Ok((times, misses))
}

const PROVISION: &str = r#"{"imageType":"alpine","durationMinutes":5}"#;

async fn wait_for_full_pool(manager: &LeaseManager) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = manager.pool_status().await?;
        if status.iter().all(|pool| pool.ready >= pool.target as usize) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the pool did not refill within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn poll_running(
    sender: &mut SendRequest<Full<Bytes>>,
    address: SocketAddr,
    id: &str,
) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lease = send(
            sender,
            address,
            "GET",
            &format!("/api/containers/{id}/status"),
            "",
        )
        .await?;
        match lease["status"].as_str() {
            Some("running") => return Ok(()),
            Some("pending") => {}
            other => return Err(format!("lease {id} became {other:?}").into()),
        }
        if Instant::now() > deadline {
            return Err(format!("lease {id} not running within 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn connect(address: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Error> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request; its JSON answer (an error status is an error).
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &'static str,
) -> Result<Value, Error> {
    sender.ready().await?;
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!(
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        )
        .into());
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// `runs` bare create + start of the test image (timed), each removed
/// after (untimed), labelled with the namespace so the guard cleans up.
async fn raw_runs(docker: &Docker, namespace: &str, runs: usize) -> Result<Vec<Duration>, Error> {
    let labels = HashMap::from([
        (lease_testkit::labels::MANAGED.to_owned(), "true".to_owned()),
        (
            lease_testkit::labels::NAMESPACE.to_owned(),
            namespace.to_owned(),
        ),
    ]);
    let mut times = Vec::with_capacity(runs);
    for run in 0..=runs {
        let name = format!("bench-raw-{namespace}-{run}");
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_owned()),
            cmd: Some(vec!["sleep".to_owned(), "infinity".to_owned()]),
            labels: Some(labels.clone()),
            host_config: Some(HostConfig::default()),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let started = Instant::now();
        let created = docker.create_container(Some(options), body).await?;
        docker.start_container(&created.id, None).await?;
        if run > 0 {
            times.push(started.elapsed());
        }
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        docker.remove_container(&created.id, Some(remove)).await?;
    }
    Ok(times)
}
