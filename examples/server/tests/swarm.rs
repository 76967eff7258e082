//! End to end on Swarm: the real `lease-server` binary with `--runtime
//! swarm`, through its HTTP API (lease-client): provision → running → a
//! shell session → expiry → the service and its container gone.
//!
//! The namespace is the test's own (`test-<random>`); a [`SwarmGuard`]
//! removes its services, containers and networks even when the test fails.

use std::time::{Duration, Instant};

use lease_client::{Client, Frame, SessionRequest};
use lease_testkit::docker::containers_of;
use lease_testkit::server::{Server, ServerConfig};
use lease_testkit::swarm::{SwarmGuard, services_of, swarm_ready};

const BINARY: &str = env!("CARGO_BIN_EXE_lease-server");

/// The second node's engine and hostname (`scripts/swarm.sh`), if any.
fn worker() -> Option<(String, String)> {
    let endpoint = std::env::var("LEASE_TEST_SWARM_WORKER").ok()?;
    let hostname = std::env::var("LEASE_TEST_SWARM_WORKER_HOSTNAME").ok()?;
    (!endpoint.is_empty() && !hostname.is_empty()).then_some((endpoint, hostname))
}

/// The server with `--runtime swarm` (and the second node's route when
/// there is one), overcommitting so a loaded test machine places every
/// lease, with a 2 s sweep.
fn start(namespace: &str) -> Option<Server> {
    let mut args = vec![
        "--runtime".to_owned(),
        "swarm".to_owned(),
        "--swarm-overcommit".to_owned(),
    ];
    if let Some((endpoint, hostname)) = worker() {
        args.push("--swarm-node-engine".to_owned());
        args.push(format!("{hostname}={endpoint}"));
    }
    let config = ServerConfig::new(namespace)
        .binary(BINARY)
        .store("memory")
        .sweep_interval("2s")
        .ready_path("/healthz")
        .ready_within(Duration::from_secs(60))
        .args(args);
    Server::start(config)
}

/// Polls the lease until its status is `wanted` (or `limit` passes).
async fn wait_status(client: &Client, id: &str, wanted: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let lease = client.status(id).await.expect("status");
        if lease.status == wanted || Instant::now() > deadline {
            return lease.status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_on_swarm_runs_takes_a_shell_and_is_gone_after_expiry() {
    if !swarm_ready() {
        return;
    }
    let guard = SwarmGuard::random();
    let namespace = guard.namespace().to_owned();
    let Some(server) = start(&namespace) else {
        return;
    };
    let client = Client::new(&server.url(), None).expect("client");

    let lease = client
        .provision("busybox", Some(1))
        .await
        .expect("provision");
    let status = wait_status(&client, &lease.id, "running", Duration::from_secs(60)).await;
    assert_eq!(status, "running", "server log:\n{}", server.log_text());
    assert_eq!(
        services_of(&namespace).len(),
        1,
        "one service for the lease"
    );

    // A shell session through the server, on the task's node.
    let request = SessionRequest {
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo swarm-shell-$((6*7)); exit 5".into(),
        ]),
        tty: Some(false),
        ..SessionRequest::default()
    };
    let session = client
        .create_session(&lease.id, &request)
        .await
        .expect("session");
    let mut attached = client
        .attach(&lease.id, &session.session_id, 0)
        .await
        .expect("attach");
    attached.sender.eof().await.expect("eof");
    let (mut output, mut code) = (String::new(), None);
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), attached.stream.next())
        .await
        .expect("session frames")
    {
        match frame.expect("frame") {
            Frame::Output { bytes, .. } => output.push_str(&String::from_utf8_lossy(&bytes)),
            Frame::Exit { code: exit } => code = Some(exit),
            _ => {}
        }
    }
    assert!(output.contains("swarm-shell-42"), "{output:?}");
    assert_eq!(code, Some(5));

    // One minute booked: the reaper removes the service and its container.
    let status = wait_status(&client, &lease.id, "deleted", Duration::from_secs(120)).await;
    assert_eq!(status, "deleted", "server log:\n{}", server.log_text());
    assert!(services_of(&namespace).is_empty(), "the service is gone");
    assert!(
        containers_of(&namespace).is_empty(),
        "its container is gone"
    );
    drop(server);
    drop(guard);
}
