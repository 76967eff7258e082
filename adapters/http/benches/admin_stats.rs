//! The admin statistics API's heaviest query, `GET /api/admin/stats?days=90`,
//! over 100,000 finished leases spread over 90 days, 50 owners and two
//! offerings (plus 50 active leases), on SQLite (`synchronous=FULL`, a file
//! on `TMPDIR`'s disk), on Redis (when `LEASE_TEST_REDIS_URL` is set) and on
//! PostgreSQL (when `LEASE_TEST_POSTGRES_URL` is set). Every owner rents
//! both offerings every day: 9,000 (day, owner, offering) pairs, the
//! heaviest case for this many owners and days. Target: p99 ≤ 50 ms.
//!
//! The leases go in through the store's own `insert` + `finish` (so the
//! rollup is what `finish` wrote). Baselines measured in the same run on
//! the same store: the bare store reads the route is built on
//! (`daily_stats` + `share_stats` over the same 90 days, at once as the
//! route does) and one 100-lease `history` page (what a page of the
//! existing history view reads). Requests go through the router in
//! process (`tower::ServiceExt::oneshot`), so the figures are the route's
//! work, not the network's.
//!
//! `cargo bench -p lease-http --bench admin_stats`; `BENCH_LEASES` sets the
//! number of finished leases (default 100000), `BENCH_ROUNDS` the requests
//! measured per figure (default 200).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use lease_core::testing::fake_runtime::FakeRuntime;
use lease_core::{
    Admission, EndReason, HistoryQuery, Lease, LeaseId, LeaseManager, LeaseStore, ManagerConfig,
    Money, Status, stats,
};
use lease_http::{ApiConfig, Auth, router};
use lease_store_postgres::{PostgresStore, PostgresStoreConfig, drop_schema};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig, Synchronous};
use tower::ServiceExt;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Owners the leases are spread over.
const OWNERS: usize = 50;
/// Days the leases are spread over.
const DAYS: i64 = 90;
/// [`DAYS`] as an index.
const DAYS_USIZE: usize = 90;
/// Tasks filling the store at once.
const FILLERS: usize = 32;
/// The target for the route's p99.
const TARGET_P99: Duration = Duration::from_millis(50);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// Finished lease number `index`: its owner, offering, creation day and
/// times follow from the number.
fn finished_lease(index: usize, now: DateTime<Utc>) -> Lease {
    let n = i64::try_from(index).unwrap_or(i64::MAX);
    let created = now - chrono::Duration::days(n % DAYS) - chrono::Duration::minutes(90 + n % 600);
    // Every owner rents every day, both offerings: DAYS × OWNERS × 2 rollup
    // rows, the most the route can meet for this many owners and days.
    let owner = (index / DAYS_USIZE) % OWNERS;
    let offering = if (index / (DAYS_USIZE * OWNERS)) % 2 == 0 {
        "ubuntu"
    } else {
        "alpine"
    };
    let rate = Money::from_nanos(if offering == "ubuntu" {
        40_000_000
    } else {
        10_000_000
    });
    let mut lease = Lease::new(
        LeaseId::generate(),
        format!("owner-{owner:02}"),
        offering,
        rate,
        created,
        created + chrono::Duration::minutes(30 + n % 30),
    );
    lease.running_at = Some(created + chrono::Duration::milliseconds(40 + (n * 37) % 3_000));
    lease
}

/// Inserts and finishes one lease, as the reaper would at its expiry.
async fn insert_and_finish(store: &dyn LeaseStore, lease: Lease) -> Result<(), Error> {
    let mut stored = store.insert(&lease, &Admission::default()).await?;
    stored.status = Status::Deleted;
    stored.end_billing(stored.expires_at, EndReason::Expired);
    stored.final_cost = Some(stored.accrued_cost(stored.expires_at));
    let n = i64::try_from(stored.revision).unwrap_or(0);
    stored.finished_at =
        Some(stored.expires_at + chrono::Duration::milliseconds((n * 13 + 7) % 900));
    store.finish(&stored).await?;
    Ok(())
}

/// Fills `store` with `leases` finished leases and 50 active ones.
async fn fill(store: Arc<dyn LeaseStore>, leases: usize, now: DateTime<Utc>) -> Result<(), Error> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for filler in 0..FILLERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for index in (filler..leases).step_by(FILLERS) {
                insert_and_finish(&*store, finished_lease(index, now)).await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    for owner in 0..OWNERS {
        let lease = Lease::new(
            LeaseId::generate(),
            format!("owner-{owner:02}"),
            "alpine",
            Money::from_nanos(10_000_000),
            now - chrono::Duration::minutes(5),
            now + chrono::Duration::hours(1),
        );
        store.insert(&lease, &Admission::default()).await?;
    }
    println!(
        "  filled {leases} finished + {OWNERS} active leases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Durations of `rounds` sequential runs of `run`, sorted.
async fn measure<F, Fut>(rounds: usize, mut run: F) -> Result<Vec<Duration>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    for _ in 0..rounds.min(10) {
        run().await?; // warm-up
    }
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        run().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times)
}

/// The `q`-th percentile of sorted `times` (nearest rank).
fn percentile(times: &[Duration], q: usize) -> Duration {
    let rank = (times.len() * q).div_ceil(100).max(1);
    times.get(rank - 1).copied().unwrap_or_default()
}

fn report(name: &str, times: &[Duration]) -> Duration {
    let (p50, p99) = (percentile(times, 50), percentile(times, 99));
    println!(
        "  {name:<34} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    p99
}

/// One request of the route; checks it answers 200 with 90 days.
async fn admin_stats(app: &Router) -> Result<(), Error> {
    let request = Request::get("/api/admin/stats?days=90")
        .header("host", "127.0.0.1")
        .body(Body::empty())?;
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK || body.len() < 1_000 {
        return Err(format!(
            "admin stats answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(())
}

async fn run(
    name: &str,
    store: Arc<dyn LeaseStore>,
    leases: usize,
    rounds: usize,
) -> Result<(), Error> {
    println!("{name}:");
    let now = Utc::now();
    fill(store.clone(), leases, now).await?;
    let runtime = Arc::new(FakeRuntime::new(
        "bench-admin-stats",
        Arc::new(lease_core::SystemClock),
    ));
    let manager = LeaseManager::builder(store.clone(), runtime)
        .config(ManagerConfig::with_namespace("bench-admin-stats"))
        .build()?;
    let app = router(manager, ApiConfig::default().auth(Auth::single_user()));
    let to = stats::day_of(Utc::now());
    let from = stats::window_start(to, 90);
    let rows = store.daily_stats(from, to).await?;
    let shares = store.share_stats(from, to).await?;
    let counters = |rows: &[lease_core::StatsRow]| -> usize {
        rows.iter().map(|row| row.counters.len()).sum()
    };
    println!(
        "  read for 90 days: {} day totals rows ({} counters) + {} spans of shares \
         summing to {} (owner, offering) rows ({} counters)",
        rows.len(),
        counters(&rows),
        stats::cover(from, to).len(),
        shares.len(),
        counters(&shares)
    );

    let route = measure(rounds, || admin_stats(&app)).await?;
    let bare = measure(rounds, || {
        let store = store.clone();
        async move {
            tokio::try_join!(store.daily_stats(from, to), store.share_stats(from, to))?;
            Ok(())
        }
    })
    .await?;
    let page = measure(rounds, || {
        let store = store.clone();
        async move {
            let query = HistoryQuery {
                limit: 100,
                ..HistoryQuery::default()
            };
            store.history(&query).await?;
            Ok(())
        }
    })
    .await?;
    let p99 = report("GET /api/admin/stats?days=90", &route);
    let bare_p99 = report("baseline: store reads (90 days)", &bare);
    let page_p99 = report("baseline: history page (100)", &page);
    println!(
        "  route p99 / store reads p99 = {:.2}, / history page p99 = {:.2}  (target p99 <= {} ms: {})",
        p99.as_secs_f64() / bare_p99.as_secs_f64().max(1e-9),
        p99.as_secs_f64() / page_p99.as_secs_f64().max(1e-9),
        TARGET_P99.as_millis(),
        if p99 <= TARGET_P99 { "ok" } else { "MISSED" }
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let leases = env_number("BENCH_LEASES", 100_000);
    let rounds = env_number("BENCH_ROUNDS", 200).max(1);
    println!(
        "admin stats: {leases} finished leases over {DAYS} days, {OWNERS} owners, 2 offerings; {rounds} requests per figure"
    );
    let dir = tempfile::tempdir()?;
    let sqlite = SqliteStore::open(
        SqliteStoreConfig::new(dir.path().join("leases.db")).synchronous(Synchronous::Full),
    )
    .await?;
    run(
        "SQLite (synchronous=FULL)",
        Arc::new(sqlite),
        leases,
        rounds,
    )
    .await?;
    match std::env::var("LEASE_TEST_REDIS_URL") {
        Ok(url) => {
            let prefix = format!("bench-stats-{}", LeaseId::generate().short(10));
            let redis = RedisStore::connect(RedisStoreConfig::new(url).prefix(prefix)).await?;
            run("Redis", Arc::new(redis), leases, rounds).await?;
        }
        Err(_) => println!("Redis: skipped (LEASE_TEST_REDIS_URL is not set)"),
    }
    match std::env::var("LEASE_TEST_POSTGRES_URL") {
        Ok(url) => {
            let namespace = format!("bench-stats-{}", LeaseId::generate().short(10));
            let config = PostgresStoreConfig::new(url).namespace(&namespace);
            let postgres = Arc::new(PostgresStore::connect(config).await?);
            let outcome = run("PostgreSQL", postgres.clone(), leases, rounds).await;
            drop_schema(&postgres).await?;
            outcome?;
        }
        Err(_) => println!("PostgreSQL: skipped (LEASE_TEST_POSTGRES_URL is not set)"),
    }
    Ok(())
}
