//! The lease-core engine scenarios (the whole `LeaseManager` over a store
//! and a fake runtime, with a manual clock) against the memory store: every
//! scenario, since this store claims by the caller's clock.

use lease_store_memory::MemoryStore;

lease_core::engine_scenario_tests!(async { Some(std::sync::Arc::new(MemoryStore::new())) });
