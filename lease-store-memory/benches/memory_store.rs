//! Memory store operations at 10k, 100k and 1M active leases: insert, get,
//! list of one owner's 20 leases, and `claim_expired` of 100 due leases.
//!
//! `cargo bench -p lease-store-memory --bench memory_store`. Each store is
//! filled once per size, outside the timed loops; timed loops leave it at the
//! same size (inserted leases are finished, claimed ones released, untimed).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use lease_core::testing::conformance::{finished, sample_lease};
use lease_core::{Admission, Lease, LeaseId, LeaseStore, ListQuery, Money};
use lease_store_memory::MemoryStore;
use tokio::runtime::Runtime;

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
/// Due leases in each store, claimed in one call.
const DUE: usize = 100;
/// Leases of the owner whose list is measured.
const LISTED: usize = 20;
const LISTED_OWNER: &str = "listed-owner";

/// A lease of one of 1,000 owners that expires in 1 to 11 hours.
fn not_due_lease(template: &Lease, n: usize) -> Lease {
    let mut lease = template.clone();
    lease.id = LeaseId::generate();
    lease.owner = format!("user-{}", n % 1000);
    lease.created_at += Duration::microseconds(i64::try_from(n).unwrap_or(0));
    lease.expires_at += Duration::seconds(i64::try_from(n % 36_000).unwrap_or(0));
    lease
}

/// `size` leases: `DUE` due, `LISTED` of `LISTED_OWNER`, the rest not due.
/// Returns the store and every id, for `get`.
fn filled(rt: &Runtime, size: usize) -> (Arc<MemoryStore>, Vec<LeaseId>) {
    let store = Arc::new(MemoryStore::new());
    let template = sample_lease("template", Duration::hours(1));
    let ids = rt.block_on(async {
        let mut ids = Vec::with_capacity(size);
        for n in 0..size {
            let mut lease = not_due_lease(&template, n);
            if n % (size / DUE) == 0 {
                lease.expires_at = Utc::now() - Duration::minutes(1);
            } else if n % (size / LISTED) == 1 {
                lease.owner = LISTED_OWNER.to_owned();
            }
            ids.push(
                store
                    .insert(&lease, &Admission::default())
                    .await
                    .expect("insert")
                    .id,
            );
        }
        ids
    });
    assert_eq!(store.active_len(), size);
    (store, ids)
}

fn bench_size(c: &mut Criterion, rt: &Runtime, size: usize) {
    let (store, ids) = filled(rt, size);
    let template = sample_lease("template", Duration::hours(1));
    let mut group = c.benchmark_group(format!("{size}_leases"));

    group.bench_function("get", |b| {
        let mut next = 0usize;
        b.to_async(rt).iter(|| {
            next = (next + 7919) % ids.len();
            let (store, id) = (Arc::clone(&store), ids[next].clone());
            async move { black_box(store.get(&id).await.expect("get")) }
        });
    });

    group.bench_function("list_owner_20", |b| {
        let query = ListQuery::owner(LISTED_OWNER);
        b.to_async(rt).iter(|| {
            let (store, query) = (Arc::clone(&store), query.clone());
            async move {
                let page = store.list(&query).await.expect("list");
                assert_eq!(page.items.len(), LISTED);
                black_box(page)
            }
        });
    });

    group.bench_function("claim_expired_100", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let store = Arc::clone(&store);
            async move {
                let mut took = StdDuration::ZERO;
                for _ in 0..iters {
                    let now = Utc::now();
                    let started = Instant::now();
                    let claimed = store
                        .claim_expired(now, DUE, StdDuration::from_secs(3600))
                        .await
                        .expect("claim");
                    took += started.elapsed();
                    assert_eq!(claimed.len(), DUE);
                    // Re-arm: give the claims back, untimed.
                    let past = now - Duration::minutes(1);
                    for lease in &claimed {
                        store.release(&lease.id, past).await.expect("release");
                    }
                }
                took
            }
        });
    });

    // Last: it leaves a large history behind (inserted leases are finished).
    group.bench_function("insert", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let store = Arc::clone(&store);
            let template = template.clone();
            async move {
                let leases: Vec<Lease> = (0..iters)
                    .map(|n| not_due_lease(&template, n as usize))
                    .collect();
                let started = Instant::now();
                for lease in &leases {
                    black_box(
                        store
                            .insert(lease, &Admission::default())
                            .await
                            .expect("insert"),
                    );
                }
                let took = started.elapsed();
                for lease in &leases {
                    let stored = Lease {
                        revision: 1,
                        ..lease.clone()
                    };
                    store
                        .finish(&finished(&stored, Utc::now(), Money::ZERO))
                        .await
                        .expect("finish");
                }
                took
            }
        });
    });

    group.finish();
}

fn memory_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for size in SIZES {
        bench_size(c, &rt, size);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(3))
        .sample_size(30);
    targets = memory_store
}
criterion_main!(benches);
