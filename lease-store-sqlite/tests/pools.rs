//! The warm-pool conformance cases and engine scenarios on the SQLite
//! store, each on a fresh file.

mod common;

use common::TempStore;

lease_core::pool_conformance_tests!(TempStore, async {
    Some(std::sync::Arc::new(TempStore::new().await))
});

lease_core::pool_scenario_tests!(async { Some(std::sync::Arc::new(TempStore::new().await)) });
