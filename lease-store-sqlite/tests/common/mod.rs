//! Test support shared by this crate's test files: a store on a fresh file
//! in a temporary directory that is removed with the store.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lease_core::pool::Taken;
use lease_core::store::{HistoryQuery, LeaseStore, ListQuery, Page, UsageTotals};
use lease_core::{
    Admission, CredentialError, CredentialStore, Lease, LeaseId, PersonalToken, PoolSlot,
    SlotState, StoreError, WebSession,
};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig};
use tempfile::TempDir;

/// A [`SqliteStore`] on `leases.db` in its own temporary directory.
#[derive(Debug)]
pub struct TempStore {
    /// Declared first: closed before the directory goes.
    pub store: SqliteStore,
    pub dir: TempDir,
}

impl TempStore {
    /// A fresh store with the default settings.
    pub async fn new() -> TempStore {
        TempStore::with(|config| config).await
    }

    /// A fresh store with settings changed by `configure`.
    pub async fn with(configure: impl FnOnce(SqliteStoreConfig) -> SqliteStoreConfig) -> TempStore {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = configure(SqliteStoreConfig::new(dir.path().join("leases.db")));
        let store = SqliteStore::open(config)
            .await
            .expect("open a fresh SQLite store");
        TempStore { store, dir }
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("leases.db")
    }

    /// Closes the store and hands back the directory (for reopening).
    pub fn close(self) -> TempDir {
        drop(self.store);
        self.dir
    }
}

/// The database file in `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("leases.db")
}

#[async_trait]
impl LeaseStore for TempStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
    async fn insert(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        self.store.insert(lease, admission).await
    }
    async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError> {
        self.store.get(id).await
    }
    async fn update(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        self.store.update(lease, admission).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
        self.store.list(query).await
    }
    async fn claim_expired(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        claim_ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        self.store.claim_expired(now, limit, claim_ttl).await
    }
    async fn release(&self, id: &LeaseId, retry_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.store.release(id, retry_at).await
    }
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.store.next_due().await
    }
    async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError> {
        self.store.finish(lease).await
    }
    async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError> {
        self.store.history(query).await
    }
    async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError> {
        self.store.usage(owner).await
    }
    async fn daily_stats(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<lease_core::StatsRow>, StoreError> {
        self.store.daily_stats(from, to).await
    }
    async fn share_stats(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<lease_core::StatsRow>, StoreError> {
        self.store.share_stats(from, to).await
    }
    async fn pool_add(&self, slot: &PoolSlot, target: usize) -> Result<bool, StoreError> {
        self.store.pool_add(slot, target).await
    }
    async fn pool_ready(&self, slot_id: &str, container_id: &str) -> Result<bool, StoreError> {
        self.store.pool_ready(slot_id, container_id).await
    }
    async fn pool_take(
        &self,
        offering: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<Taken>, StoreError> {
        self.store.pool_take(offering, lease, now).await
    }
    async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        self.store.pool_slots().await
    }
    async fn pool_drop(&self, slot_id: &str, state: SlotState) -> Result<bool, StoreError> {
        self.store.pool_drop(slot_id, state).await
    }
}

#[async_trait]
impl CredentialStore for TempStore {
    async fn insert_session(&self, session: &WebSession) -> Result<(), CredentialError> {
        self.store.insert_session(session).await
    }
    async fn session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>, StoreError> {
        self.store.session(id_sha256, now).await
    }
    async fn delete_session(&self, id_sha256: &str) -> Result<bool, StoreError> {
        self.store.delete_session(id_sha256).await
    }
    async fn delete_sessions_of(&self, owner: &str) -> Result<u64, StoreError> {
        self.store.delete_sessions_of(owner).await
    }
    async fn insert_token(
        &self,
        token: &PersonalToken,
        max_per_owner: usize,
    ) -> Result<(), CredentialError> {
        self.store.insert_token(token, max_per_owner).await
    }
    async fn token_by_hash(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PersonalToken>, StoreError> {
        self.store.token_by_hash(token_sha256, now).await
    }
    async fn tokens_of(&self, owner: &str) -> Result<Vec<PersonalToken>, StoreError> {
        self.store.tokens_of(owner).await
    }
    async fn revoke_token(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        self.store.revoke_token(owner, id).await
    }
    async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.store.touch_token(id, at).await
    }
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.store.purge_expired(now).await
    }
}
