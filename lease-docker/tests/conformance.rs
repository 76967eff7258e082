//! The runtime conformance suite (`lease_core::testing::runtime_conformance`)
//! on the real Docker engine and the local test image: each case gets two
//! fresh `test-…` namespaces on one connection, guarded so that their
//! containers and networks go even when a case panics.
//!
//! Without a reachable engine or the test image (`scripts/test-images.sh`)
//! the cases skip with the reason; with `CI=true` they fail instead.

mod common;

use std::sync::Arc;

use lease_core::testing::runtime_conformance::RuntimeFixture;
use lease_docker::DockerRuntime;
use lease_testkit::docker::NamespaceGuard;
use lease_testkit::{IMAGE, random_namespace};

/// A fixture on two fresh namespaces, or `None` (skipped) without Docker.
async fn fixture() -> Option<RuntimeFixture<DockerRuntime>> {
    let test = common::TestDocker::start().await?;
    let other_namespace = random_namespace();
    let other_guard = NamespaceGuard::new(&other_namespace);
    let other = test
        .runtime
        .in_namespace(&other_namespace)
        .expect("a valid namespace");
    Some(
        RuntimeFixture::new(Arc::new(test.runtime), Arc::new(other), IMAGE)
            .guard(test.guard)
            .guard(other_guard),
    )
}

lease_core::runtime_conformance_tests!(DockerRuntime, fixture());
