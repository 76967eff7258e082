//! Heap bytes the memory store holds per active lease, at 100k and 1M leases.
//!
//! `cargo bench -p lease-store-memory --bench memory_per_lease`. The heap is
//! counted by `dhat`'s global allocator (no unsafe code here): leases are
//! built before counting starts, so only what the store itself keeps is
//! counted (its copies of the leases, maps, indexes, spare table capacity).
//! Counts are of requested bytes; the system allocator adds its own
//! rounding and headers on top. Target: under 1 KiB per lease.

use chrono::{Duration, Utc};
use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, Lease, LeaseId, LeaseStore};
use lease_store_memory::MemoryStore;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SIZES: [usize; 2] = [100_000, 1_000_000];
const TARGET_BYTES: usize = 1024;

/// `size` leases of 1,000 owners, expiring over the next 1 to 11 hours,
/// with a short container id as a running lease has.
fn leases(size: usize) -> Vec<Lease> {
    let template = sample_lease("template", Duration::hours(1));
    (0..size)
        .map(|n| {
            let mut lease = template.clone();
            lease.id = LeaseId::generate();
            lease.owner = format!("user-{}", n % 1000);
            lease.container_id = Some(format!("{:064x}", n));
            lease.expires_at += Duration::seconds(i64::try_from(n % 36_000).unwrap_or(0));
            lease
        })
        .collect()
}

fn main() {
    // Criterion-style arguments (`--bench`, filters) are ignored.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let inputs: Vec<Vec<Lease>> = SIZES.iter().map(|&size| leases(size)).collect();

    // Counting starts here: only allocations made from now on are counted.
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut worst = 0;
    for leases in &inputs {
        let before = dhat::HeapStats::get().curr_bytes;
        let started = Utc::now();
        let store = MemoryStore::new();
        rt.block_on(async {
            for lease in leases {
                store
                    .insert(lease, &Admission::default())
                    .await
                    .expect("insert");
            }
        });
        let held = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
        let per_lease = held / leases.len();
        worst = worst.max(per_lease);
        println!(
            "memory_per_lease/{}: {} bytes held, {} bytes per lease (target < {TARGET_BYTES}), filled in {} ms",
            leases.len(),
            held,
            per_lease,
            (Utc::now() - started).num_milliseconds()
        );
        drop(store);
    }
    assert!(
        worst < TARGET_BYTES,
        "{worst} bytes per lease is over the {TARGET_BYTES} target"
    );
}
