//! Test support for stores and runtimes (feature `test-utils`).
//!
//! - [`conformance`]: the suite every [`crate::LeaseStore`] must pass, and the
//!   [`crate::store_conformance_tests`] macro that runs it.
//! - [`fake_runtime`]: an in-memory [`crate::ContainerRuntime`] with injectable
//!   latency and failures, for engine scenarios.

pub mod conformance;
pub mod fake_runtime;
