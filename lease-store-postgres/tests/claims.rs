//! Claim exclusivity between two store instances (two pools, as two
//! servers) on one database and namespace: every due lease is claimed by
//! exactly one of them.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, LeaseStore};
use lease_store_postgres::{PostgresStore, drop_schema};

/// Claims in small batches until a claim comes back empty.
async fn claim_all(store: PostgresStore) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let batch = store
            .claim_expired(Utc::now(), 7, Duration::from_secs(3600))
            .await
            .expect("claim");
        if batch.is_empty() {
            return ids;
        }
        ids.extend(batch.into_iter().map(|lease| lease.id.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_claim_each_due_lease_exactly_once() {
    let Some(config) = common::config("claims") else {
        return;
    };
    let Some(first) = common::connect(config.clone()).await else {
        return;
    };
    let second = PostgresStore::connect(config).await.expect("a second pool");
    let mut due = HashSet::new();
    for _ in 0..200 {
        let lease = sample_lease("claims-owner", chrono::Duration::minutes(-1));
        first
            .insert(&lease, &Admission::default())
            .await
            .expect("insert");
        due.insert(lease.id.to_string());
    }
    let mut claimers = Vec::new();
    for store in [&first, &second, &first, &second] {
        claimers.push(tokio::spawn(claim_all(store.clone())));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.expect("a claimer"));
    }
    let unique: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), unique.len(), "a lease was claimed twice");
    assert_eq!(unique, due, "every due lease is claimed");
    drop_schema(&first).await.expect("drop");
}
