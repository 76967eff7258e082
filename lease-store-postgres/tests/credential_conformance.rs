//! The lease-core credential conformance suite against a real PostgreSQL;
//! every case gets a fresh namespace (schema).

mod common;

use lease_store_postgres::PostgresStore;

lease_core::credential_conformance_tests!(PostgresStore, async { common::store().await });
