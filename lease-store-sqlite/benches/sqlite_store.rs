//! Benchmarks of the SQLite store, each next to a bare rusqlite statement of
//! the same shape on the same schema in the same run (no store, no thread
//! hop: a prepared statement in a `BEGIN IMMEDIATE` transaction for writes).
//!
//! - criterion: insert, get, CAS update (store and bare), get with the read
//!   pool and on the writer thread, and `claim_expired` of 100 due leases
//!   among 100,000 and 1,000,000;
//! - then a summary: mean time per operation, store against bare, as the
//!   ratio bare / store (1.0 = as fast as the bare statement), inserts per
//!   second with 16 tasks at once (group commit) against the bare
//!   one-at-a-time rate, gets beside a writer with and without the read
//!   pool, the claim times, the time to open (with the integrity check) and
//!   the bytes on disk per lease at each size.
//!
//! ```text
//! cargo bench -p lease-store-sqlite
//! LEASE_BENCH_SQLITE_SIZES=100000 cargo bench -p lease-store-sqlite   # skip the million
//! ```
//!
//! The files live in a temporary directory on the disk that holds
//! `TMPDIR` (synchronous=FULL: every commit waits for that disk).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use criterion::Criterion;
use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, Lease, LeaseStore};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig};
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::runtime::Runtime;

/// Leases claimed per call.
const CLAIM: usize = 100;

fn sizes() -> Vec<usize> {
    std::env::var("LEASE_BENCH_SQLITE_SIZES")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![100_000, 1_000_000])
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn open(path: &Path, readers: usize) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(SqliteStoreConfig::new(path).readers(readers))
            .await
            .expect("open the bench database"),
    )
}

/// A bare connection to a database the store created (same schema), with
/// the store's pragmas.
fn bare(path: &Path) -> Connection {
    let connection = Connection::open(path).expect("open bare");
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .expect("pragmas");
    connection
}

const INSERT: &str = "INSERT INTO active (id, owner, offering, container_id, status, created_at, \
     expires_at, ended_at, end_reason, hourly_rate, estimated_cost, final_cost, error, \
     provision_attempts, removal_failures, revision, due_at, claimed_until, claimable_at) \
     VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, NULL, NULL, ?7, ?8, NULL, NULL, 0, 0, 1, ?6, NULL, ?6)";

fn nanos(at: chrono::DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().expect("in range")
}

/// The bare insert of `lease`: one statement in one write transaction.
fn bare_insert(connection: &mut Connection, lease: &Lease) {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("begin");
    transaction
        .prepare_cached(INSERT)
        .and_then(|mut statement| {
            statement.execute(params![
                lease.id.as_str(),
                lease.owner,
                lease.offering,
                lease.status.as_str(),
                nanos(lease.created_at),
                nanos(lease.expires_at),
                lease.hourly_rate.nanos(),
                lease.estimated_cost.nanos(),
            ])
        })
        .expect("bare insert");
    transaction.commit().expect("commit");
}

/// The bare get: the row by id, every column read.
fn bare_get(connection: &Connection, id: &str) -> (String, String, i64, i64) {
    connection
        .prepare_cached(
            "SELECT id, owner, offering, container_id, status, created_at, expires_at, ended_at, \
             end_reason, hourly_rate, estimated_cost, final_cost, error, provision_attempts, \
             removal_failures, revision FROM active WHERE id = ?1",
        )
        .and_then(|mut statement| {
            statement.query_row([id], |row| {
                let _: Option<String> = row.get(3)?;
                let _: Option<i64> = row.get(7)?;
                let _: Option<String> = row.get(8)?;
                let _: (i64, i64, Option<i64>) = (row.get(9)?, row.get(10)?, row.get(11)?);
                let _: (Option<String>, i64, i64) = (row.get(12)?, row.get(13)?, row.get(14)?);
                Ok((row.get(0)?, row.get(4)?, row.get(5)?, row.get(15)?))
            })
        })
        .expect("bare get")
}

/// The bare compare-and-set: bump the revision if it is `revision`.
fn bare_update(connection: &mut Connection, id: &str, revision: i64) -> usize {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("begin");
    let changed = transaction
        .prepare_cached(
            "UPDATE active SET revision = ?3, removal_failures = removal_failures + 1 \
             WHERE id = ?1 AND revision = ?2",
        )
        .and_then(|mut statement| statement.execute(params![id, revision, revision + 1]))
        .expect("bare update");
    transaction.commit().expect("commit");
    changed
}

/// Fills a new database with `size` leases in one transaction, in creation
/// order: the oldest tenth due (expired a minute ago or earlier, oldest
/// first, as leases created earlier mostly expire earlier), the rest due in
/// an hour.
async fn big_database(path: &Path, size: usize) -> StdDuration {
    drop(open(path, 0).await);
    let mut connection = bare(path);
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("begin");
    {
        let mut statement = transaction.prepare(INSERT).expect("prepare");
        for n in 0..size {
            let due = size / 10;
            let expires = if n < due {
                Duration::minutes(-1) - Duration::milliseconds((due - n) as i64)
            } else {
                Duration::hours(1)
            };
            let lease = sample_lease(&format!("owner-{}", n % 1000), expires);
            statement
                .execute(params![
                    lease.id.as_str(),
                    lease.owner,
                    lease.offering,
                    lease.status.as_str(),
                    nanos(lease.created_at),
                    nanos(lease.expires_at),
                    lease.hourly_rate.nanos(),
                    lease.estimated_cost.nanos(),
                ])
                .expect("fill");
        }
    }
    transaction.commit().expect("commit");
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    drop(connection);
    let started = Instant::now();
    drop(open(path, 2).await);
    started.elapsed()
}

/// Mean time of `op` over `count` runs.
fn mean(count: u32, mut op: impl FnMut(u32)) -> StdDuration {
    let started = Instant::now();
    for n in 0..count {
        op(n);
    }
    started.elapsed() / count
}

/// Inserts per second by `tasks` concurrent tasks of `each` inserts.
async fn concurrent_inserts(store: Arc<SqliteStore>, tasks: usize, each: usize) -> f64 {
    let started = Instant::now();
    let mut running = Vec::new();
    for _ in 0..tasks {
        let store = Arc::clone(&store);
        running.push(tokio::spawn(async move {
            for _ in 0..each {
                store
                    .insert(
                        &sample_lease("many", Duration::hours(1)),
                        &Admission::default(),
                    )
                    .await
                    .expect("insert");
            }
        }));
    }
    for task in running {
        task.await.expect("inserter");
    }
    (tasks * each) as f64 / started.elapsed().as_secs_f64()
}

/// Mean time of a `get` by 4 concurrent tasks while 1 task inserts.
async fn reads_beside_writes(store: Arc<SqliteStore>, id: lease_core::LeaseId) -> StdDuration {
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for _ in 0..100 {
                store
                    .insert(
                        &sample_lease("busy", Duration::hours(1)),
                        &Admission::default(),
                    )
                    .await
                    .expect("insert");
            }
        })
    };
    let started = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (store, id) = (Arc::clone(&store), id.clone());
        readers.push(tokio::spawn(async move {
            for _ in 0..500 {
                store.get(&id).await.expect("get");
            }
        }));
    }
    for reader in readers {
        reader.await.expect("reader");
    }
    let reads = started.elapsed();
    writer.await.expect("writer");
    reads / 2000
}

fn bytes_per_lease(path: &Path, size: usize) -> u64 {
    let bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|meta| meta.len())
        .sum();
    bytes / size as u64
}

fn main() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(StdDuration::from_secs(3))
        .warm_up_time(StdDuration::from_millis(500));

    // Small databases for the per-operation comparison.
    let store_path = dir.path().join("store.db");
    let bare_path = dir.path().join("bare.db");
    let store = rt.block_on(open(&store_path, 2));
    let writer_reads = rt.block_on(open(&store_path, 0));
    drop(rt.block_on(open(&bare_path, 0)));
    let mut connection = bare(&bare_path);
    let probe = rt
        .block_on(store.insert(
            &sample_lease("bench", Duration::hours(1)),
            &Admission::default(),
        ))
        .expect("insert");
    let bare_probe = sample_lease("bench", Duration::hours(1));
    bare_insert(&mut connection, &bare_probe);

    {
        let mut group = criterion.benchmark_group("sqlite");
        group.bench_function("insert/store", |b| {
            b.to_async(&rt).iter(|| async {
                store
                    .insert(
                        &sample_lease("bench", Duration::hours(1)),
                        &Admission::default(),
                    )
                    .await
                    .expect("insert")
            })
        });
        group.bench_function("insert/bare", |b| {
            b.iter(|| bare_insert(&mut connection, &sample_lease("bench", Duration::hours(1))))
        });
        group.bench_function("get/store (read pool)", |b| {
            b.to_async(&rt)
                .iter(|| async { store.get(&probe.id).await.expect("get") })
        });
        group.bench_function("get/store (reads on the writer)", |b| {
            b.to_async(&rt)
                .iter(|| async { writer_reads.get(&probe.id).await.expect("get") })
        });
        group.bench_function("get/bare", |b| {
            b.iter(|| bare_get(&connection, bare_probe.id.as_str()))
        });
        let mut current = rt
            .block_on(store.insert(
                &sample_lease("bench", Duration::hours(1)),
                &Admission::default(),
            ))
            .expect("insert");
        group.bench_function("update/store", |b| {
            b.iter(|| {
                let mut next = current.clone();
                next.removal_failures += 1;
                current = rt
                    .block_on(store.update(&next, &Admission::default()))
                    .expect("update");
            })
        });
        let mut revision = 1;
        group.bench_function("update/bare", |b| {
            b.iter(|| {
                assert_eq!(
                    bare_update(&mut connection, bare_probe.id.as_str(), revision),
                    1
                );
                revision += 1;
            })
        });
        group.finish();
    }

    // The summary: the same operations timed back to back.
    let runs = 300;
    let store_insert = mean(runs, |_| {
        rt.block_on(store.insert(
            &sample_lease("sum", Duration::hours(1)),
            &Admission::default(),
        ))
        .expect("insert");
    });
    let bare_insert_time = mean(runs, |_| {
        bare_insert(&mut connection, &sample_lease("sum", Duration::hours(1)))
    });
    let store_get = mean(runs * 10, |_| {
        rt.block_on(store.get(&probe.id)).expect("get");
    });
    let writer_get = mean(runs * 10, |_| {
        rt.block_on(writer_reads.get(&probe.id)).expect("get");
    });
    let bare_get_time = mean(runs * 10, |_| {
        bare_get(&connection, bare_probe.id.as_str());
    });
    let mut current = rt.block_on(store.get(&probe.id)).expect("get");
    let store_update = mean(runs, |_| {
        let mut next = current.clone();
        next.removal_failures += 1;
        current = rt
            .block_on(store.update(&next, &Admission::default()))
            .expect("update");
    });
    let mut revision: i64 = connection
        .query_row(
            "SELECT revision FROM active WHERE id = ?1",
            [bare_probe.id.as_str()],
            |row| row.get(0),
        )
        .expect("revision");
    let bare_update_time = mean(runs, |_| {
        bare_update(&mut connection, bare_probe.id.as_str(), revision);
        revision += 1;
    });
    // Group commit: 16 tasks inserting at once share commits.
    let concurrent_inserts = rt.block_on(concurrent_inserts(Arc::clone(&store), 16, 50));
    let pool_busy = rt.block_on(reads_beside_writes(Arc::clone(&store), probe.id.clone()));
    let writer_busy = rt.block_on(reads_beside_writes(
        Arc::clone(&writer_reads),
        probe.id.clone(),
    ));

    let ratio = |bare: StdDuration, store: StdDuration| bare.as_secs_f64() / store.as_secs_f64();
    println!("\nSQLite store against a bare rusqlite statement (synchronous=FULL, same run):");
    println!(
        "  insert      store {store_insert:>10.2?}  bare {bare_insert_time:>10.2?}  ratio {:.2}x",
        ratio(bare_insert_time, store_insert)
    );
    println!(
        "  get         store {store_get:>10.2?}  bare {bare_get_time:>10.2?}  ratio {:.2}x (read pool)",
        ratio(bare_get_time, store_get)
    );
    println!(
        "  get         store {writer_get:>10.2?}  bare {bare_get_time:>10.2?}  ratio {:.2}x (reads on the writer thread)",
        ratio(bare_get_time, writer_get)
    );
    println!(
        "  CAS update  store {store_update:>10.2?}  bare {bare_update_time:>10.2?}  ratio {:.2}x",
        ratio(bare_update_time, store_update)
    );
    println!(
        "  insert, 16 tasks at once: {:.0} inserts/s through the store; bare, one at a time: {:.0}/s ({:.1}x)",
        concurrent_inserts,
        1.0 / bare_insert_time.as_secs_f64(),
        concurrent_inserts * bare_insert_time.as_secs_f64()
    );
    println!(
        "  get while 1 task inserts (4 readers): read pool {pool_busy:.2?}/get, on the writer {writer_busy:.2?}/get"
    );
    drop((store, writer_reads, connection));

    for size in sizes() {
        let path = dir.path().join(format!("big-{size}.db"));
        let open_time = rt.block_on(big_database(&path, size));
        let per_lease = bytes_per_lease(&path, size);
        let store = rt.block_on(open(&path, 2));
        // A claim of zero length leaves each claimed lease claimable again
        // behind the others: every call claims 100 due leases, and the due
        // set never runs dry.
        criterion.bench_function(&format!("sqlite/claim {CLAIM} due among {size}"), |b| {
            b.to_async(&rt).iter(|| async {
                let claimed = store
                    .claim_expired(Utc::now(), CLAIM, StdDuration::ZERO)
                    .await
                    .expect("claim");
                assert_eq!(claimed.len(), CLAIM);
            })
        });
        let claim = mean(200, |_| {
            let claimed = rt
                .block_on(store.claim_expired(Utc::now(), CLAIM, StdDuration::ZERO))
                .expect("claim");
            assert_eq!(claimed.len(), CLAIM);
        });
        let next_due = mean(1000, |_| {
            rt.block_on(store.next_due()).expect("next_due");
        });
        println!(
            "  {size} leases: claim {CLAIM} due {claim:.2?} (target <= 5 ms), next_due {next_due:.2?}, \
             open with integrity check {open_time:.2?}, {per_lease} bytes on disk per lease"
        );
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
    criterion.final_summary();
}
