//! Shared test setup: the Redis the tests run against.
//!
//! `LEASE_TEST_REDIS_URL` names it (`scripts/test.sh` starts a private one
//! through `scripts/redis.sh`). Without it the tests skip with a printed
//! reason; with `CI=true` a missing or unreachable Redis fails them instead
//! (`lease_testkit::skip`). Private `redis-server` processes (restarts, TLS,
//! Sentinel) are `lease_testkit::redis::PrivateRedis`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lease_core::{LeaseId, LeaseStore};
use lease_store_redis::{RedisStore, RedisStoreConfig};

/// The variable naming the test Redis.
pub const URL_VAR: &str = lease_testkit::redis::URL_VAR;

/// Whether this is a CI run, where skipping is a failure.
pub fn in_ci() -> bool {
    lease_testkit::in_ci()
}

/// The test Redis URL, or `None` (after printing why) when there is none.
/// Panics under `CI=true` when it is not set.
pub fn redis_url() -> Option<String> {
    lease_testkit::redis::test_redis_url()
}

/// A prefix no other test uses.
pub fn unique_prefix(tag: &str) -> String {
    format!("test-{tag}-{}", LeaseId::generate().short(16))
}

/// A config for the test Redis with a fresh prefix.
pub fn config(tag: &str) -> Option<RedisStoreConfig> {
    redis_url().map(|url| RedisStoreConfig::new(url).prefix(unique_prefix(tag)))
}

/// Connects with `config`; `None` (skip) if Redis cannot be reached, a panic
/// under `CI=true`.
pub async fn connect(config: RedisStoreConfig) -> Option<Arc<RedisStore>> {
    match RedisStore::connect(config.clone()).await {
        Ok(store) => Some(Arc::new(store)),
        Err(error) => lease_testkit::skip(format!(
            "Redis at {} is unavailable: {}",
            config.url,
            lease_core::error::error_chain(&error)
        )),
    }
}

/// A fresh, empty store under its own prefix, or `None` to skip.
pub async fn store() -> Option<Arc<RedisStore>> {
    connect(config("store")?).await
}

/// The same, as the port.
pub async fn dyn_store() -> Option<Arc<dyn LeaseStore>> {
    Some(store().await? as Arc<dyn LeaseStore>)
}

/// Polls `done` every 50 ms until it holds; panics after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
