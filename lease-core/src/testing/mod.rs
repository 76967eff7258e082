//! Test support for stores and runtimes (feature `test-utils`).
//!
//! - [`conformance`]: the suite every [`crate::LeaseStore`] must pass, and the
//!   [`crate::store_conformance_tests`] macro that runs it (its admission
//!   and daily-statistics cases live in their own files and are re-exported
//!   there).
//! - [`credential_conformance`]: the suite every
//!   [`crate::CredentialStore`] must pass, and the
//!   [`crate::credential_conformance_tests`] macro that runs it.
//! - [`engine_scenarios`]: the whole engine over a store under test, and the
//!   [`crate::engine_scenario_tests`] macro that runs them.
//! - [`pool_conformance`]: the warm-pool part of the store port, and the
//!   [`crate::pool_conformance_tests`] macro that runs it.
//! - [`pool_scenarios`]: the engine's warm pools over a store under test,
//!   and the [`crate::pool_scenario_tests`] macro that runs them.
//! - [`runtime_conformance`]: the suite every [`crate::ContainerRuntime`]
//!   must pass, and the [`crate::runtime_conformance_tests`] macro that runs
//!   it.
//! - [`fake_runtime`]: an in-memory [`crate::ContainerRuntime`] with injectable
//!   latency, failures and slow placement, for engine scenarios.

mod admission_cases;
pub mod conformance;
pub mod credential_conformance;
pub mod engine_scenarios;
mod fake_files;
pub mod fake_runtime;
mod fake_shell;
pub mod pool_conformance;
pub mod pool_scenarios;
pub mod runtime_conformance;
mod stats_cases;
