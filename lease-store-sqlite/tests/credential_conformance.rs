//! The credential conformance suite against the SQLite store, each test on
//! a fresh file in its own temporary directory (removed after).

mod common;

use common::TempStore;

lease_core::credential_conformance_tests!(TempStore, async {
    Some(std::sync::Arc::new(TempStore::new().await))
});

/// The same suite with every read on the writer's thread (`readers(0)`).
mod reads_on_the_writer {
    use super::common::TempStore;

    lease_core::credential_conformance_tests!(TempStore, async {
        Some(std::sync::Arc::new(
            TempStore::with(|config| config.readers(0)).await,
        ))
    });
}
