//! The lease-core engine scenarios against a real Redis; every scenario gets
//! a fresh key prefix. Redis claims due leases by its server's clock, not
//! the scenarios' manual one, so the scenarios that move the manual clock
//! past an expiry and then reap are left out (`server_clock`; see
//! `lease_core::testing::engine_scenarios`).

mod common;

lease_core::engine_scenario_tests!(server_clock, async { common::store().await });
