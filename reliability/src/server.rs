//! `lease-server` as the scenarios run it: `lease-testkit`'s launcher
//! ([`Server`]: spawn, `kill -9`, SIGTERM, restart, logs) with the suite's
//! settings ([`config`]) and its API client ([`ServerApi::api`]).

pub use lease_testkit::server::{Server, ServerConfig, binary};

use crate::api::Api;

/// The suite's server on `namespace`: the memory store (set `store` for
/// another, or let [`crate::store::ScenarioStore::configure`] do it; the
/// Redis prefix defaults to `containerlease-<namespace>`, unique per test), the offline catalog, sweeping every second, no lease
/// quota, no rate limit (`--rate-limit 0`: the scenarios send hundreds of
/// provisions from one client to load the engine, not the limiter; the
/// connection-limit scenarios set their own), JSON logs.
pub fn config(namespace: &str) -> ServerConfig {
    ServerConfig::new(namespace)
        .store("memory")
        .sweep_interval("1s")
        .max_leases_per_owner(0)
        .args(["--rate-limit", "0"])
}

/// The suite's client of a [`Server`].
pub trait ServerApi {
    /// A client of this server (its address changes on restart: ask again).
    fn api(&self) -> Api;
}

impl ServerApi for Server {
    fn api(&self) -> Api {
        Api::new(self.address())
    }
}
