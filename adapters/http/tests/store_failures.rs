//! When the store fails: 503 while it is unreachable, 500 for a corrupt
//! record, and the server keeps serving afterwards.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use harness::{Harness, Options};
use lease_core::store::{HistoryQuery, ListQuery, Page, UsageTotals};
use lease_core::{Admission, Lease, LeaseId, LeaseStore, StoreError};
use lease_store_memory::MemoryStore;

const UP: u8 = 0;
const DOWN: u8 = 1;
const CORRUPT: u8 = 2;
const HANGING: u8 = 3;

/// A memory store that can be made unreachable, corrupt or hanging (every
/// call waits forever).
#[derive(Debug, Default)]
struct FailingStore {
    inner: MemoryStore,
    mode: AtomicU8,
}

impl FailingStore {
    async fn check(&self) -> Result<(), StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            HANGING => std::future::pending().await,
            DOWN => Err(StoreError::Unavailable("injected outage".into())),
            CORRUPT => Err(StoreError::Corrupt {
                key: "lease:x".into(),
                source: "injected corruption".into(),
            }),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl LeaseStore for FailingStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.check().await?;
        self.inner.ping().await
    }
    async fn insert(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        self.check().await?;
        self.inner.insert(lease, admission).await
    }
    async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError> {
        self.check().await?;
        self.inner.get(id).await
    }
    async fn update(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        self.check().await?;
        self.inner.update(lease, admission).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
        self.check().await?;
        self.inner.list(query).await
    }
    async fn claim_expired(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        claim_ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        self.check().await?;
        self.inner.claim_expired(now, limit, claim_ttl).await
    }
    async fn release(&self, id: &LeaseId, retry_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.check().await?;
        self.inner.release(id, retry_at).await
    }
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.check().await?;
        self.inner.next_due().await
    }
    async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError> {
        self.check().await?;
        self.inner.finish(lease).await
    }
    async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError> {
        self.check().await?;
        self.inner.history(query).await
    }
    async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError> {
        self.check().await?;
        self.inner.usage(owner).await
    }
    async fn daily_stats(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<lease_core::StatsRow>, StoreError> {
        self.check().await?;
        self.inner.daily_stats(from, to).await
    }
    async fn share_stats(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<lease_core::StatsRow>, StoreError> {
        self.check().await?;
        self.inner.share_stats(from, to).await
    }
}

#[tokio::test]
async fn an_unreachable_store_is_503_and_a_corrupt_one_500() {
    let store = Arc::new(FailingStore::default());
    let h = Harness::with(Options {
        store: Some(store.clone()),
        ..Options::default()
    });
    let lease = h.provision(None, r#"{"imageType":"alpine"}"#).await;
    let id = lease["id"].as_str().unwrap();
    let status_uri = format!("/api/containers/{id}/status");

    store.mode.store(DOWN, Ordering::SeqCst);
    for (method, uri, body) in [
        (
            Method::POST,
            "/api/provision",
            Some(r#"{"imageType":"alpine"}"#),
        ),
        (Method::GET, "/api/containers", None),
        (Method::GET, status_uri.as_str(), None),
        (Method::GET, "/api/usage", None),
        (Method::GET, "/api/history", None),
        (Method::GET, "/metrics", None),
    ] {
        let reply = h.call(method.clone(), uri, None, body).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}"
        );
        assert_eq!(reply.error_code(), "store_unavailable");
    }
    let ready = h.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready.text().contains("store: lease store unavailable"),
        "{}",
        ready.text()
    );

    store.mode.store(CORRUPT, Ordering::SeqCst);
    let corrupt = h.get(&status_uri, None).await;
    assert_eq!(corrupt.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(corrupt.error_code(), "internal");
    // The cause is logged, not shown.
    assert!(!corrupt.text().contains("lease:x"));

    store.mode.store(UP, Ordering::SeqCst);
    assert_eq!(h.get(&status_uri, None).await.status, StatusCode::OK);
    assert_eq!(h.get("/readyz", None).await.status, StatusCode::OK);
}

/// A request the store never answers is cut at the request timeout with
/// `503 request_timeout` (JSON like every error); streams are not timed.
#[tokio::test]
async fn a_request_the_store_never_answers_times_out() {
    let store = Arc::new(FailingStore::default());
    let h = Harness::with(Options {
        store: Some(store.clone()),
        limits: Some(lease_http::Limits::default().request_timeout(Duration::from_millis(200))),
        ..Options::default()
    });
    let lease = h.provision(None, r#"{"imageType":"alpine"}"#).await;
    let id = lease["id"].as_str().unwrap();

    store.mode.store(HANGING, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let reply = h.get(&format!("/api/containers/{id}/status"), None).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.error_code(), "request_timeout");
    assert!(reply.text().contains("0.2 s"), "{}", reply.text());
    assert!(started.elapsed() < Duration::from_secs(5));

    store.mode.store(UP, Ordering::SeqCst);
    let again = h.get(&format!("/api/containers/{id}/status"), None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
}
