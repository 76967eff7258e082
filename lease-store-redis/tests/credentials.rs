//! What the credential conformance suite cannot see on Redis: records that
//! expire in Redis with their session, every key under the prefix, mints
//! racing from several replicas, purges larger than one script's batch,
//! corrupt records and an unreachable server.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use lease_core::testing::conformance::{now_ms, unique_owner};
use lease_core::testing::credential_conformance::{
    insert_session, insert_token, random_sha256, sample_session, sample_token,
};
use lease_core::{CredentialError, CredentialStore, StoreError};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use redis::aio::MultiplexedConnection;

/// A plain connection to the test Redis, for looking at keys.
async fn raw(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Every key of `prefix`.
async fn keys_of(connection: &mut MultiplexedConnection, prefix: &str) -> BTreeSet<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}}}:*"))
        .query_async(connection)
        .await
        .expect("KEYS");
    keys.into_iter().collect()
}

async fn pttl(connection: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(connection)
        .await
        .expect("PTTL")
}

/// A session's record and its owner's index expire in Redis with the
/// session; once gone, nothing of it is left to sign out.
#[tokio::test]
async fn session_records_expire_in_redis() {
    let Some(config) = common::config("cred-ttl") else {
        return;
    };
    let Some(store) = common::connect(config.clone()).await else {
        return;
    };
    let mut connection = raw(&config.url).await;
    let owner = unique_owner("ttl");
    let long = sample_session(&owner, Duration::hours(12));
    let short = sample_session(&owner, Duration::milliseconds(700));
    insert_session(&*store, &long).await;
    insert_session(&*store, &short).await;

    let base = format!("{{{}}}:", store.prefix());
    let record_ttl = pttl(
        &mut connection,
        &format!("{base}session:{}", long.id_sha256),
    )
    .await;
    let twelve_hours = 12 * 3600 * 1000;
    assert!(
        (twelve_hours - 60_000..=twelve_hours).contains(&record_ttl),
        "the record expires with the session: {record_ttl} ms"
    );
    let index_ttl = pttl(&mut connection, &format!("{base}sessions-of:{owner}")).await;
    assert!(
        (twelve_hours - 60_000..=twelve_hours).contains(&index_ttl),
        "the owner's index expires with the owner's last session: {index_ttl} ms"
    );

    tokio::time::sleep(StdDuration::from_millis(1000)).await;
    let short_key = format!("{base}session:{}", short.id_sha256);
    assert_eq!(
        pttl(&mut connection, &short_key).await,
        -2,
        "the short record is gone"
    );
    assert_eq!(
        store
            .session(&short.id_sha256, short.created_at)
            .await
            .expect("read"),
        None,
        "an expired record is no session, whatever `now` says"
    );
    assert!(
        matches!(store.delete_sessions_of(&owner).await, Ok(1)),
        "only the live session was left to sign out"
    );
    store.delete_all().await.expect("clean up");
}

/// Every key the credentials write lives under the store's prefix, and
/// `delete_all` removes them.
#[tokio::test]
async fn credential_keys_live_under_the_prefix() {
    let Some(config) = common::config("cred-keys") else {
        return;
    };
    let Some(store) = common::connect(config.clone()).await else {
        return;
    };
    let mut connection = raw(&config.url).await;
    let owner = unique_owner("keys");
    let now = now_ms();
    let session = sample_session(&owner, Duration::hours(1));
    let token = sample_token(&owner, "laptop", now, Some(now + Duration::days(1)));
    insert_session(&*store, &session).await;
    insert_token(&*store, &token).await;
    store
        .touch_token(&token.id, now)
        .await
        .expect("touch the token");

    let base = format!("{{{}}}:", store.prefix());
    // `layout` and `rollup:split` are the lease side's (written when the
    // store connects).
    let lease_side = BTreeSet::from([format!("{base}layout"), format!("{base}rollup:split")]);
    let expected: BTreeSet<String> = lease_side
        .iter()
        .cloned()
        .chain([
            format!("{base}session:{}", session.id_sha256),
            format!("{base}sessions-of:{owner}"),
            format!("{base}sessions"),
            format!("{base}token:{}", token.token_sha256),
            format!("{base}token-ids"),
            format!("{base}tokens-of:{owner}"),
            format!("{base}token-expiry"),
        ])
        .collect();
    assert_eq!(keys_of(&mut connection, store.prefix()).await, expected);

    assert!(store.revoke_token(&owner, &token.id).await.expect("revoke"));
    assert!(
        store
            .delete_session(&session.id_sha256)
            .await
            .expect("sign out")
    );
    assert_eq!(
        keys_of(&mut connection, store.prefix()).await,
        lease_side,
        "signing out and revoking leave no credential key behind"
    );
    insert_session(&*store, &sample_session(&owner, Duration::hours(1))).await;
    store.delete_all().await.expect("delete everything");
    assert!(keys_of(&mut connection, store.prefix()).await.is_empty());
}

/// Mints racing from several replicas (each its own store and connection
/// on the same prefix) store exactly the limit.
#[tokio::test]
async fn replicas_racing_at_the_token_limit_store_exactly_the_limit() {
    const REPLICAS: usize = 4;
    const MINTS: usize = 10;
    const LIMIT: usize = 7;
    let Some(config) = common::config("cred-race") else {
        return;
    };
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        let Some(store) = common::connect(config.clone()).await else {
            return;
        };
        replicas.push(store);
    }
    let owner = unique_owner("race");
    let now = now_ms();
    let barrier = Arc::new(tokio::sync::Barrier::new(REPLICAS * MINTS));
    let mut tasks = Vec::new();
    for (replica, store) in replicas.iter().enumerate() {
        for n in 0..MINTS {
            let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
            let token = sample_token(&owner, &format!("{replica}/{n}"), now, None);
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
    assert_eq!(
        replicas[0].tokens_of(&owner).await.expect("list").len(),
        LIMIT
    );
    replicas[0].delete_all().await.expect("clean up");
}

/// A purge deletes everything expired even when that takes several of its
/// scripts' batches.
#[tokio::test]
async fn a_purge_larger_than_a_batch_takes_everything() {
    const TOKENS: usize = 1_205;
    let Some(store) = common::store().await else {
        return;
    };
    let owner = unique_owner("purge");
    let now = now_ms();
    let mut inserts = Vec::with_capacity(TOKENS);
    for n in 0..TOKENS {
        let store = Arc::clone(&store);
        let token = sample_token(
            &owner,
            &format!("t{n}"),
            now,
            Some(now + Duration::minutes(1)),
        );
        inserts.push(tokio::spawn(async move {
            store.insert_token(&token, TOKENS).await
        }));
    }
    for insert in inserts {
        insert
            .await
            .expect("an insert panicked")
            .expect("insert a token");
    }
    insert_session(&*store, &sample_session(&owner, Duration::minutes(1))).await;
    let purged = store
        .purge_expired(now + Duration::hours(1))
        .await
        .expect("purge");
    assert_eq!(purged, TOKENS as u64 + 1);
    assert!(store.tokens_of(&owner).await.expect("list").is_empty());
    store.delete_all().await.expect("clean up");
}

/// A record that does not decode, or that another record's key holds, is
/// `Corrupt` with its key.
#[tokio::test]
async fn corrupt_credential_records_are_reported_with_their_key() {
    let Some(config) = common::config("cred-corrupt") else {
        return;
    };
    let Some(store) = common::connect(config.clone()).await else {
        return;
    };
    let mut connection = raw(&config.url).await;
    let base = format!("{{{}}}:", store.prefix());
    let now = Utc::now();

    let garbled = random_sha256();
    let key = format!("{base}session:{garbled}");
    let _: () = redis::cmd("HSET")
        .arg((&key, "data", "{not json"))
        .query_async(&mut connection)
        .await
        .expect("HSET");
    match store.session(&garbled, now).await {
        Err(StoreError::Corrupt { key: found, .. }) => assert_eq!(found, key),
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // A token's record copied under another hash.
    let token = sample_token(&unique_owner("corrupt"), "copied", now_ms(), None);
    insert_token(&*store, &token).await;
    let data: Vec<u8> = redis::cmd("HGET")
        .arg((format!("{base}token:{}", token.token_sha256), "data"))
        .query_async(&mut connection)
        .await
        .expect("HGET");
    let other_hash = random_sha256();
    let copy = format!("{base}token:{other_hash}");
    let _: () = redis::cmd("HSET")
        .arg((&copy, "data", data))
        .query_async(&mut connection)
        .await
        .expect("HSET");
    match store.token_by_hash(&other_hash, now).await {
        Err(StoreError::Corrupt { key: found, .. }) => assert_eq!(found, copy),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    store.delete_all().await.expect("clean up");
}

/// Against a server that is not there, every credential call fails as
/// `Unavailable` (no panic, no hang).
#[tokio::test]
async fn unreachable_redis_makes_credentials_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let config = RedisStoreConfig::new(format!("redis://127.0.0.1:{port}/0"))
        .connection_timeout(StdDuration::from_millis(500))
        .response_timeout(StdDuration::from_secs(2))
        .reconnect_retries(1);
    let store = RedisStore::connect_lazy(config).expect("a lazy store");
    let now = now_ms();
    let session = sample_session("nobody", Duration::hours(1));
    let token = sample_token("nobody", "t", now, None);
    let unavailable = |result: Result<(), CredentialError>| {
        matches!(
            result,
            Err(CredentialError::Store(StoreError::Unavailable(_)))
        )
    };
    assert!(unavailable(store.insert_session(&session).await));
    assert!(unavailable(store.insert_token(&token, 5).await));
    let results: Vec<(&str, Result<(), StoreError>)> = vec![
        ("session", store.session("x", now).await.map(drop)),
        ("delete_session", store.delete_session("x").await.map(drop)),
        (
            "delete_sessions_of",
            store.delete_sessions_of("nobody").await.map(drop),
        ),
        (
            "token_by_hash",
            store.token_by_hash("x", now).await.map(drop),
        ),
        ("tokens_of", store.tokens_of("nobody").await.map(drop)),
        (
            "revoke_token",
            store.revoke_token("nobody", "x").await.map(drop),
        ),
        ("touch_token", store.touch_token("x", now).await),
        ("purge_expired", store.purge_expired(now).await.map(drop)),
    ];
    for (call, result) in results {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{call}: expected Unavailable, got {result:?}"
        );
    }
}
