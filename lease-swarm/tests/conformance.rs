//! The runtime conformance suite (lease-core) on the real swarm: every case
//! that Docker and the fake runtime pass, with the same line.

mod common;

lease_core::runtime_conformance_tests!(lease_swarm::SwarmRuntime, common::fixture());
