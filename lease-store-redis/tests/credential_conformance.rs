//! The lease-core credential conformance suite against a real Redis,
//! directly and through `Arc<dyn CredentialStore>`; every case gets a fresh
//! key prefix.

mod common;

use lease_store_redis::RedisStore;

lease_core::credential_conformance_tests!(RedisStore, async { common::store().await });
