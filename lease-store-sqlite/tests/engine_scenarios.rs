//! The lease-core engine scenarios (the whole `LeaseManager` over a store
//! and a fake runtime, with a manual clock) against the SQLite store, each
//! on a fresh file: every scenario, since this store claims by the caller's
//! clock.

mod common;

use common::TempStore;

lease_core::engine_scenario_tests!(async { Some(std::sync::Arc::new(TempStore::new().await)) });
