//! Benchmarks of the Redis store's credentials against a real Redis
//! (`LEASE_BENCH_REDIS_URL`, else `LEASE_TEST_REDIS_URL`; skipped without):
//! what each API request signed in with a browser session or a personal
//! token costs the store (`session`, `token_by_hash`, hit and miss), and the
//! writes of signing in, minting under the per-owner limit (one script) and
//! recording a token's use.
//!
//! The prefix holds 10,000 sessions and 10,000 tokens of 1,000 owners
//! first; it is deleted at the end.
//!
//! ```text
//! eval "$(scripts/redis.sh start)"
//! cargo bench -p lease-store-redis --bench credentials
//! scripts/redis.sh stop "$LEASE_TEST_REDIS_DIR"
//! ```

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use criterion::Criterion;
use lease_core::testing::conformance::{now_ms, unique_owner};
use lease_core::testing::credential_conformance::{random_sha256, sample_session, sample_token};
use lease_core::{CredentialStore, LeaseId};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// Sessions and tokens stored before measuring.
const FILL: usize = 10_000;
/// Owners they belong to.
const OWNERS: usize = 1_000;
/// The per-owner token limit (the server's default).
const LIMIT: usize = 20;

fn url() -> Option<String> {
    ["LEASE_BENCH_REDIS_URL", "LEASE_TEST_REDIS_URL"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|url| !url.is_empty()))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Stores `FILL` sessions and tokens; the hashes of the last of each.
async fn fill(store: &Arc<RedisStore>) -> (String, String) {
    let owners: Vec<String> = (0..OWNERS).map(|_| unique_owner("bench")).collect();
    let now = now_ms();
    let mut tasks = JoinSet::new();
    let (mut session_hash, mut token_hash) = (String::new(), String::new());
    for n in 0..FILL {
        let owner = &owners[n % OWNERS];
        let session = sample_session(owner, Duration::hours(12));
        let token = sample_token(owner, "bench", now, Some(now + Duration::days(90)));
        session_hash.clone_from(&session.id_sha256);
        token_hash.clone_from(&token.token_sha256);
        let store = Arc::clone(store);
        tasks.spawn(async move {
            store.insert_session(&session).await.expect("a session");
            store.insert_token(&token, LIMIT).await.expect("a token");
        });
        if tasks.len() >= 64
            && let Some(done) = tasks.join_next().await
        {
            done.expect("a fill task");
        }
    }
    tasks.join_all().await;
    (session_hash, token_hash)
}

fn main() {
    let Some(url) = url() else {
        eprintln!(
            "no LEASE_BENCH_REDIS_URL or LEASE_TEST_REDIS_URL: skipping the credential bench"
        );
        return;
    };
    let rt = runtime();
    let prefix = format!("bench-credentials-{}", LeaseId::generate().short(10));
    let store = Arc::new(
        rt.block_on(RedisStore::connect(
            RedisStoreConfig::new(url).prefix(prefix),
        ))
        .expect("connect to the bench Redis"),
    );
    let (session_hash, token_hash) = rt.block_on(fill(&store));
    let token_id = rt
        .block_on(store.token_by_hash(&token_hash, now_ms()))
        .expect("read")
        .expect("the last token")
        .id;
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(StdDuration::from_secs(3))
        .warm_up_time(StdDuration::from_millis(500));
    let mut group = criterion.benchmark_group("redis credentials");
    group.bench_function("session (hit)", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .session(&session_hash, now_ms())
                .await
                .expect("read")
                .expect("a session")
        })
    });
    let unknown = random_sha256();
    group.bench_function("token_by_hash (miss)", |b| {
        b.to_async(&rt)
            .iter(|| async { store.token_by_hash(&unknown, now_ms()).await.expect("read") })
    });
    group.bench_function("token_by_hash (hit)", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .token_by_hash(&token_hash, now_ms())
                .await
                .expect("read")
                .expect("a token")
        })
    });
    group.bench_function("insert_session", |b| {
        b.to_async(&rt).iter(|| async {
            let session = sample_session("bench-signin", Duration::hours(12));
            store.insert_session(&session).await.expect("a session")
        })
    });
    group.bench_function("insert_token (limit 20)", |b| {
        b.to_async(&rt).iter(|| async {
            let token = sample_token(&unique_owner("mint"), "bench", now_ms(), None);
            store.insert_token(&token, LIMIT).await.expect("a token")
        })
    });
    group.bench_function("touch_token", |b| {
        b.to_async(&rt)
            .iter(|| async { store.touch_token(&token_id, now_ms()).await.expect("touch") })
    });
    group.finish();
    criterion.final_summary();
    rt.block_on(store.delete_all())
        .expect("delete the bench keys");
}
