//! The lease-core store conformance suite against a real Redis, directly and
//! through `Arc<dyn LeaseStore>`; every case gets a fresh key prefix.

mod common;

use lease_store_redis::RedisStore;

lease_core::store_conformance_tests!(RedisStore, async { common::store().await });
