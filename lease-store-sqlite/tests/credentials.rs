//! What the credential conformance suite cannot see on SQLite: the token
//! limit holding across stores (writers) sharing one file, and expired
//! sessions deleted as others sign in.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{TempStore, db_path};
use lease_core::testing::conformance::{now_ms, unique_owner};
use lease_core::testing::credential_conformance::{insert_session, sample_session, sample_token};
use lease_core::{CredentialError, CredentialStore};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig};

/// Three stores on one file (three writers, as three processes would be)
/// race 30 mints at a limit of 4: exactly 4 are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_sharing_a_file_race_mints_to_exactly_the_limit() {
    const STORES: usize = 3;
    const MINTS: usize = 10;
    const LIMIT: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    let mut stores = Vec::new();
    for _ in 0..STORES {
        stores.push(Arc::new(
            SqliteStore::open(SqliteStoreConfig::new(&path))
                .await
                .expect("open the shared file"),
        ));
    }
    let owner = unique_owner("race");
    let now = now_ms();
    let barrier = Arc::new(tokio::sync::Barrier::new(STORES * MINTS));
    let mut tasks = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        for m in 0..MINTS {
            let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
            let token = sample_token(&owner, &format!("{n}/{m}"), now, None);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.insert_token(&token, LIMIT).await
            }));
        }
    }
    let mut stored = 0;
    for task in tasks {
        match task.await.expect("a mint panicked") {
            Ok(()) => stored += 1,
            Err(CredentialError::TooManyTokens { limit: LIMIT }) => {}
            Err(other) => panic!("expected Ok or TooManyTokens, got {other:?}"),
        }
    }
    assert_eq!(stored, LIMIT);
    for store in &stores {
        assert_eq!(store.tokens_of(&owner).await.expect("list").len(), LIMIT);
    }
}

/// Storing a session deletes sessions that had expired by its creation
/// (any owner's), so the table does not grow with sign-ins; live ones stay.
#[tokio::test]
async fn a_sign_in_deletes_sessions_expired_by_then() {
    let store = TempStore::new().await;
    let (ada, bob) = (unique_owner("ada"), unique_owner("bob"));
    let short = sample_session(&ada, Duration::minutes(5));
    let long = sample_session(&bob, Duration::hours(12));
    insert_session(&store, &short).await;
    insert_session(&store, &long).await;

    let mut later = sample_session(&bob, Duration::hours(12));
    later.created_at = short.expires_at + Duration::seconds(1);
    later.expires_at = later.created_at + Duration::hours(12);
    insert_session(&store, &later).await;

    assert!(
        !store
            .delete_session(&short.id_sha256)
            .await
            .expect("delete"),
        "the expired session was already deleted"
    );
    assert!(
        store
            .session(&long.id_sha256, later.created_at)
            .await
            .expect("read")
            .is_some(),
        "a live session stays"
    );
    assert!(matches!(store.delete_sessions_of(&bob).await, Ok(2)));
}
