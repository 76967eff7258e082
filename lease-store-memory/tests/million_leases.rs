//! `claim_expired` at scale: 100 due leases among 1,000,000.

use std::collections::BTreeSet;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, LeaseStore, ListQuery};
use lease_store_memory::MemoryStore;

const TOTAL: usize = 1_000_000;
const DUE: usize = 100;
/// Longer than every lease's time left, so claims do not decide `next_due`.
const CLAIM: StdDuration = StdDuration::from_secs(24 * 3600);

#[tokio::test(flavor = "current_thread")]
async fn claims_exactly_the_100_due_leases_among_a_million() {
    let store = MemoryStore::new();
    let template = sample_lease("million", Duration::hours(1));
    let started = Instant::now();
    let mut due = BTreeSet::new();
    for n in 0..TOTAL {
        let mut lease = template.clone();
        lease.created_at += Duration::microseconds(i64::try_from(n).unwrap());
        // Parsing a made-up id is ten times cheaper than generating a random one.
        lease.id = format!("container-million-{n:014}").parse().unwrap();
        // Every 10,000th lease expired a minute ago (spread over the whole
        // range of ids and insertion order); the others expire in 1 to 11 hours.
        if n % (TOTAL / DUE) == 0 {
            lease.expires_at = Utc::now() - Duration::minutes(1);
            due.insert(lease.id.clone());
        } else {
            lease.expires_at += Duration::seconds(i64::try_from(n % 36_000).unwrap());
        }
        store.insert(&lease, &Admission::default()).await.unwrap();
    }
    assert_eq!(store.active_len(), TOTAL);
    eprintln!("inserted {TOTAL} leases in {:?}", started.elapsed());

    let started = Instant::now();
    let claimed = store.claim_expired(Utc::now(), 1000, CLAIM).await.unwrap();
    let took = started.elapsed();
    eprintln!("claimed {} leases in {took:?}", claimed.len());
    let claimed_ids: BTreeSet<_> = claimed.iter().map(|lease| lease.id.clone()).collect();
    assert_eq!(claimed.len(), DUE);
    assert_eq!(claimed_ids, due, "exactly the due leases");
    assert!(
        store
            .claim_expired(Utc::now(), 1000, CLAIM)
            .await
            .unwrap()
            .is_empty()
    );

    // The next due lease is the earliest of the others, an hour from now.
    let next = store.next_due().await.unwrap().unwrap();
    assert!(next > Utc::now() + Duration::minutes(55), "{next}");

    // Listing one page does not walk the million.
    let page = store
        .list(&ListQuery {
            limit: 10,
            ..ListQuery::owner("million")
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
    assert!(page.next_cursor.is_some());
}
