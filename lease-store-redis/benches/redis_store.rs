//! Benchmarks of the Redis store against a real Redis
//! (`LEASE_BENCH_REDIS_URL`, else `LEASE_TEST_REDIS_URL`; skipped without).
//!
//! - criterion: `claim_expired` of 100 due leases among 100,000, and one
//!   `get` at a time;
//! - then a summary, in one run against the same server: insert / get / CAS
//!   update / claim_expired throughput with 16 concurrent tasks (one
//!   multiplexed connection), and insert with no limit vs every admission
//!   limit set, next to `redis-benchmark` SET, GET, ZADD and
//!   EVALSHA with 16 clients, and the ratios.
//!
//! ```text
//! eval "$(scripts/redis.sh start)"
//! cargo bench -p lease-store-redis
//! scripts/redis.sh stop "$LEASE_TEST_REDIS_DIR"
//! ```

use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use criterion::Criterion;
use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, Lease, LeaseId, LeaseStore, Money, Status};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use tokio::runtime::Runtime;

/// Concurrent tasks in the throughput runs (and redis-benchmark clients).
const TASKS: usize = 16;
/// Leases in the big set.
const BIG: usize = 100_000;
/// Due leases among them.
const DUE: usize = 100;
/// A claim that does not lapse during the run.
const LONG: StdDuration = StdDuration::from_secs(3600);

fn url() -> Option<String> {
    ["LEASE_BENCH_REDIS_URL", "LEASE_TEST_REDIS_URL"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|url| !url.is_empty()))
}

async fn connect(url: &str, tag: &str) -> Arc<RedisStore> {
    let prefix = format!("bench-{tag}-{}", LeaseId::generate().short(10));
    Arc::new(
        RedisStore::connect(RedisStoreConfig::new(url).prefix(prefix))
            .await
            .expect("connect to the bench Redis"),
    )
}

/// Runs `op(i)` for `i` in `0..ops` on `TASKS` tasks; operations per second.
async fn throughput<F, Fut>(ops: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (next, op) = (Arc::clone(&next), op.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        return;
                    }
                    op(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("bench task panicked");
    }
    ops as f64 / started.elapsed().as_secs_f64()
}

/// Fills a store with `BIG` leases, `DUE` of them due; returns the due ones.
async fn fill(store: &Arc<RedisStore>) -> (Vec<Lease>, f64) {
    let leases: Arc<Vec<Lease>> = Arc::new(
        (0..BIG)
            .map(|n| {
                let expires = if n % (BIG / DUE) == 0 {
                    Duration::minutes(-1)
                } else {
                    Duration::hours(2)
                };
                sample_lease(&format!("owner-{}", n % 500), expires)
            })
            .collect(),
    );
    let rate = {
        let (store, leases) = (Arc::clone(store), Arc::clone(&leases));
        throughput(BIG, move |i| {
            let (store, leases) = (Arc::clone(&store), Arc::clone(&leases));
            async move {
                store
                    .insert(&leases[i], &Admission::default())
                    .await
                    .expect("insert");
            }
        })
        .await
    };
    let due = leases
        .iter()
        .filter(|l| l.expires_at < Utc::now())
        .cloned()
        .collect();
    (due, rate)
}

/// Insert throughput into an empty store, 20,000 leases of 500 owners, with
/// no limit set and with every limit set (none reached: the script gathers
/// and compares every figure); two fresh prefixes in one run.
async fn admission_rates(url: &str) -> (f64, f64) {
    const INSERTS: usize = 20_000;
    let every_limit = Admission {
        max_leases_per_owner: Some(1_000_000),
        max_daily_spend: Some(Money::from_nanos(i64::MAX / 2)),
        max_leases: Some(u32::MAX),
        max_nano_cpus: Some(i64::MAX / 2),
        max_memory_mb: Some(u64::MAX / 2),
        ..Admission::today(Utc::now())
    };
    let mut rates = Vec::new();
    for (tag, admission) in [
        ("free", Admission::today(Utc::now())),
        ("limited", every_limit),
    ] {
        let store = connect(url, tag).await;
        let leases: Arc<Vec<Lease>> = Arc::new(
            (0..INSERTS)
                .map(|n| sample_lease(&format!("owner-{}", n % 500), Duration::hours(2)))
                .collect(),
        );
        let rate = {
            let (store, admission) = (Arc::clone(&store), Arc::new(admission));
            throughput(INSERTS, move |i| {
                let (store, leases) = (Arc::clone(&store), Arc::clone(&leases));
                let admission = Arc::clone(&admission);
                async move {
                    store.insert(&leases[i], &admission).await.expect("insert");
                }
            })
            .await
        };
        store.delete_all().await.expect("cleanup");
        rates.push(rate);
    }
    (rates[0], rates[1])
}

fn criterion_benches(c: &mut Criterion, rt: &Runtime, store: &Arc<RedisStore>, due: &[Lease]) {
    let mut group = c.benchmark_group("redis");
    group
        .sample_size(30)
        .measurement_time(StdDuration::from_secs(5));
    group.bench_function("claim_expired 100 due among 100k", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let store = Arc::clone(store);
            let due = due.to_vec();
            async move {
                let mut total = StdDuration::ZERO;
                for _ in 0..iters {
                    // Make the 100 claimable again (not timed).
                    futures::future::join_all(
                        due.iter()
                            .map(|lease| store.release(&lease.id, Utc::now() - Duration::hours(1))),
                    )
                    .await;
                    let started = Instant::now();
                    let claimed = store
                        .claim_expired(Utc::now(), 256, LONG)
                        .await
                        .expect("claim");
                    total += started.elapsed();
                    assert_eq!(claimed.len(), DUE);
                }
                total
            }
        });
    });
    group.bench_function("get (one task)", |b| {
        let id = due[0].id.clone();
        b.to_async(rt).iter(|| {
            let (store, id) = (Arc::clone(store), id.clone());
            async move { store.get(&id).await.expect("get") }
        });
    });
    group.finish();
}

/// redis-benchmark's requests per second for `args`, if it runs.
fn redis_benchmark(url: &str, args: &[&str]) -> Option<f64> {
    let output = Command::new("redis-benchmark")
        .args([
            "-u",
            url,
            "-c",
            &TASKS.to_string(),
            "-n",
            "100000",
            "-r",
            "100000",
            "--csv",
        ])
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "test","rps",... then "SET","123456.78",...
    let line = text.lines().nth(1)?;
    line.split(',').nth(1)?.trim_matches('"').parse().ok()
}

fn redis_cli(url: &str, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .args(["-u", url])
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn main() {
    let Some(url) = url() else {
        eprintln!(
            "SKIP: set LEASE_BENCH_REDIS_URL or LEASE_TEST_REDIS_URL (scripts/redis.sh start)"
        );
        return;
    };
    let rt = Runtime::new().expect("tokio runtime");
    let big = rt.block_on(connect(&url, "big"));
    let (due, insert_rate) = rt.block_on(fill(&big));
    assert_eq!(due.len(), DUE);

    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion, &rt, &big, &due);
    criterion.final_summary();

    // Throughput, 16 tasks.
    let ids: Arc<Vec<LeaseId>> = Arc::new(due.iter().map(|l| l.id.clone()).collect());
    let get_rate = rt.block_on({
        let (store, ids) = (Arc::clone(&big), Arc::clone(&ids));
        throughput(BIG, move |i| {
            let (store, ids) = (Arc::clone(&store), Arc::clone(&ids));
            async move {
                store.get(&ids[i % ids.len()]).await.expect("get");
            }
        })
    });
    // Each task updates its own lease, so no CAS ever conflicts.
    let update_rate = rt.block_on(async {
        let owned: Vec<_> = futures::future::join_all((0..TASKS).map(|n| {
            let (store, ids) = (Arc::clone(&big), Arc::clone(&ids));
            async move { store.get(&ids[n]).await.expect("get") }
        }))
        .await;
        let slots: Arc<Vec<tokio::sync::Mutex<Lease>>> =
            Arc::new(owned.into_iter().map(tokio::sync::Mutex::new).collect());
        let store = Arc::clone(&big);
        throughput(BIG / 2, move |i| {
            let (store, slots) = (Arc::clone(&store), Arc::clone(&slots));
            async move {
                let mut lease = slots[i % TASKS].lock().await;
                let mut next = lease.clone();
                next.status = Status::Running;
                next.provision_attempts = next.provision_attempts.wrapping_add(1);
                *lease = store
                    .update(&next, &Admission::default())
                    .await
                    .expect("update");
            }
        })
        .await
    });
    // Claim throughput: 20,000 due leases claimed one per call.
    let claim_rate = rt.block_on(async {
        let pool = connect(&url, "claim").await;
        let leases: Vec<_> = (0..20_000)
            .map(|n| sample_lease(&format!("o{}", n % 50), Duration::minutes(-1)))
            .collect();
        futures::future::join_all(leases.chunks(1000).map(|chunk| {
            let pool = Arc::clone(&pool);
            async move {
                for lease in chunk {
                    pool.insert(lease, &Admission::default())
                        .await
                        .expect("insert");
                }
            }
        }))
        .await;
        let rate = {
            let pool = Arc::clone(&pool);
            throughput(leases.len(), move |_| {
                let pool = Arc::clone(&pool);
                async move {
                    let got = pool
                        .claim_expired(Utc::now(), 1, LONG)
                        .await
                        .expect("claim");
                    assert_eq!(got.len(), 1);
                }
            })
            .await
        };
        pool.delete_all().await.expect("cleanup");
        rate
    });
    rt.block_on(big.delete_all()).expect("cleanup");
    let (free_rate, limited_rate) = rt.block_on(admission_rates(&url));

    let set = redis_benchmark(&url, &["-t", "set"]);
    let get = redis_benchmark(&url, &["-t", "get"]);
    let zadd = redis_benchmark(&url, &["-t", "zadd"]);
    let sha = redis_cli(
        &url,
        &[
            "SCRIPT",
            "LOAD",
            "redis.call('SET', KEYS[1], ARGV[1]) return 1",
        ],
    );
    let evalsha = sha.as_deref().and_then(|sha| {
        redis_benchmark(&url, &["EVALSHA", sha, "1", "bench:key:__rand_int__", "v"])
    });
    let _ = redis_cli(
        &url,
        &[
            "EVAL",
            "for _, k in ipairs(redis.call('KEYS', 'bench:key:*')) do redis.call('DEL', k) end return 1",
            "0",
        ],
    );
    let _ = redis_cli(
        &url,
        &["DEL", "key:__rand_int__", "myzset", "counter:__rand_int__"],
    );

    let server = redis_cli(&url, &["INFO", "server"]).and_then(|info| {
        info.lines()
            .find_map(|line| line.strip_prefix("redis_version:").map(str::to_owned))
    });
    println!(
        "\nlease-store-redis throughput, {TASKS} concurrent tasks, one run, Redis {}",
        server.unwrap_or_default()
    );
    let fmt = |rate: Option<f64>| rate.map_or_else(|| "n/a".to_owned(), |r| format!("{r:>9.0}/s"));
    let ratio = |ours: f64, theirs: Option<f64>| {
        theirs.map_or_else(String::new, |t| format!("{:.2}", ours / t))
    };
    println!(
        "{:<34} {:>11}   {:<28} {:>11}  {:>6}",
        "store operation", "rate", "redis-benchmark (16 clients)", "rate", "ratio"
    );
    for (name, ours, theirs_name, theirs) in [
        ("insert (Lua, 6 keys)", insert_rate, "SET", set),
        ("insert, 20k, no limit set", free_rate, "SET", set),
        ("insert, 20k, every limit set", limited_rate, "SET", set),
        ("get (HGET+GET pipelined)", get_rate, "GET", get),
        ("CAS update (Lua)", update_rate, "EVALSHA (1 SET)", evalsha),
        (
            "claim_expired, 1 lease/call (Lua)",
            claim_rate,
            "EVALSHA (1 SET)",
            evalsha,
        ),
        ("", f64::NAN, "ZADD", zadd),
    ] {
        if name.is_empty() {
            println!(
                "{:<34} {:>11}   {:<28} {:>11}",
                "",
                "",
                theirs_name,
                fmt(theirs)
            );
        } else {
            println!(
                "{name:<34} {:>11}   {theirs_name:<28} {:>11}  {:>6}",
                fmt(Some(ours)),
                fmt(theirs),
                ratio(ours, theirs)
            );
        }
    }
}
