//! The warm-pool conformance cases and engine scenarios against a real
//! PostgreSQL; every test gets a fresh namespace (schema).

mod common;

use lease_store_postgres::PostgresStore;

lease_core::pool_conformance_tests!(PostgresStore, async { common::store().await });

lease_core::pool_scenario_tests!(async { common::store().await });
