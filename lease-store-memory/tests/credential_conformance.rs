//! The credential conformance suite, run against the memory store.

use lease_store_memory::MemoryStore;

lease_core::credential_conformance_tests!(MemoryStore, async {
    Some(std::sync::Arc::new(MemoryStore::new()))
});
