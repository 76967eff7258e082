//! Shared test setup: the PostgreSQL the tests run against.
//!
//! `LEASE_TEST_POSTGRES_URL` names it (`scripts/test.sh` starts a private
//! cluster through `scripts/postgres.sh`). Without it the tests skip with a
//! printed reason; with `CI=true` a missing or unreachable PostgreSQL fails
//! them instead (`lease_testkit::skip`). Each store gets a fresh random
//! namespace, so a schema of its own.

#![allow(dead_code)] // each test file uses a part

use std::sync::Arc;

use lease_core::LeaseId;
use lease_store_postgres::{PostgresStore, PostgresStoreConfig};

/// A namespace no other test uses.
pub fn unique_namespace(tag: &str) -> String {
    format!(
        "test_{tag}_{}",
        LeaseId::generate().short(12).to_lowercase()
    )
}

/// A config for the test database with a fresh namespace.
pub fn config(tag: &str) -> Option<PostgresStoreConfig> {
    lease_testkit::postgres::test_postgres_url()
        .map(|url| PostgresStoreConfig::new(url).namespace(&unique_namespace(tag)))
}

/// Connects with `config`; `None` (skip) if PostgreSQL cannot be reached,
/// a panic under `CI=true`.
pub async fn connect(config: PostgresStoreConfig) -> Option<PostgresStore> {
    match PostgresStore::connect(config.clone()).await {
        Ok(store) => Some(store),
        Err(error) => lease_testkit::skip(format!(
            "PostgreSQL at {} is unavailable: {}",
            config.redacted_url(),
            lease_core::error::error_chain(&error)
        )),
    }
}

/// A fresh, empty store in its own namespace, or `None` to skip.
pub async fn store() -> Option<Arc<PostgresStore>> {
    connect(config("store")?).await.map(Arc::new)
}
