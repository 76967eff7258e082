//! The lease-core store conformance suite against a real PostgreSQL,
//! directly and through `Arc<dyn LeaseStore>`; every case gets a fresh
//! namespace (schema).

mod common;

use lease_store_postgres::PostgresStore;

lease_core::store_conformance_tests!(PostgresStore, async { common::store().await });
