//! The lease-core engine scenarios against a real PostgreSQL; every
//! scenario gets a fresh namespace. PostgreSQL claims due leases by the
//! database's clock, not the scenarios' manual one, so the scenarios that
//! move the manual clock past an expiry and then reap are left out
//! (`server_clock`; see `lease_core::testing::engine_scenarios`).

mod common;

lease_core::engine_scenario_tests!(server_clock, async { common::store().await });
