//! The warm-pool conformance cases and engine scenarios against a real
//! Redis; every test gets a fresh prefix.

mod common;

use lease_store_redis::RedisStore;

lease_core::pool_conformance_tests!(RedisStore, async { common::store().await });

lease_core::pool_scenario_tests!(async { common::store().await });
