//! Helpers shared by the tests that run the real `lease-server` binary
//! against real Docker: skipping (or failing under `CI=true`) when a service
//! is missing, unique namespaces, free ports, and finding containers by label.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::process::{Command, Stdio};

use rand::Rng;

/// The local test image built by `scripts/test-images.sh`.
pub const IMAGE: &str = "containerlease-test/busybox:latest";
/// The namespace label every managed container carries.
pub const NAMESPACE_LABEL: &str = "io.containerlease.namespace";
/// The lease-id label every managed container carries.
pub const LEASE_LABEL: &str = "io.containerlease.lease-id";

/// Whether this is a CI run, where a missing service is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints why the test is skipped, or fails under `CI=true`.
pub fn skip_or_fail(reason: &str) {
    if in_ci() {
        panic!("CI=true and {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Whether Docker and the test image are there; prints why not.
pub fn docker_ready() -> bool {
    let engine = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    if !engine.is_ok_and(|o| o.status.success()) {
        skip_or_fail("the Docker engine is not reachable");
        return false;
    }
    let image = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !image.is_ok_and(|s| s.success()) {
        skip_or_fail(&format!("{IMAGE} is missing (run scripts/test-images.sh)"));
        return false;
    }
    true
}

/// Ten random lowercase letters and digits.
pub fn random_suffix() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(10)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

/// A unique test namespace (`test-…`; scripts/test.sh checks none is left).
pub fn random_namespace() -> String {
    format!("test-{}", random_suffix())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// Ids of the containers carrying `label=value`.
pub fn containers_with(label: &str, value: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}={value}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Ids of the containers carrying `namespace`'s label.
pub fn containers_of(namespace: &str) -> Vec<String> {
    containers_with(NAMESPACE_LABEL, namespace)
}
