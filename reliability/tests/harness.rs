//! A smoke test of the harness itself: start a server, provision, THE
//! CHECK, delete everything, and see Docker's events.

use std::time::Duration;

use lease_reliability::api::lease_id;
use lease_reliability::check::{assert_consistent, delete_all_and_assert_empty};
use lease_reliability::docker::{self, EventWatcher, NamespaceGuard};
use lease_reliability::random_namespace;
use lease_reliability::server::{self, Server, ServerApi};

#[test]
fn harness_smoke() {
    if !docker::docker_ready() {
        return;
    }
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let events = EventWatcher::start(&namespace);
    let Some(mut server) = Server::start(server::config(&namespace)) else {
        return;
    };
    let api = server.api();
    let lease = api
        .provision("busybox", 5)
        .expect("provision")
        .ok()
        .expect("202");
    let id = lease_id(&lease).expect("id");
    let look = assert_consistent(&api, &namespace, Duration::from_secs(60));
    assert_eq!(look.live.get(&id).map(String::as_str), Some("running"));
    assert_eq!(look.containers.len(), 1);
    server.restart();
    let api = server.api();
    assert_consistent(&api, &namespace, Duration::from_secs(60));
    delete_all_and_assert_empty(&api, &namespace, Duration::from_secs(60));
    assert!(
        events.wait_until(Duration::from_secs(10), |e| e
            .iter()
            .any(|e| e.action == "destroy" && e.lease_id == id)),
        "no destroy event for {id}: {:?}",
        events.events()
    );
    assert_eq!(events.destroy_counts().get(&id), Some(&1));
    let history = api.history().expect("history");
    assert!(
        history
            .iter()
            .any(|l| lease_id(l).ok().as_deref() == Some(id.as_str()))
    );
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}");
}
