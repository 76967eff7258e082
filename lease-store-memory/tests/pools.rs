//! The warm-pool conformance cases and engine scenarios on the memory store.

use lease_store_memory::MemoryStore;

lease_core::pool_conformance_tests!(MemoryStore, async {
    Some(std::sync::Arc::new(MemoryStore::new()))
});

lease_core::pool_scenario_tests!(async { Some(std::sync::Arc::new(MemoryStore::new())) });
