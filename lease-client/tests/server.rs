//! The client against a real `lease-server` (tokens mode) on real Docker
//! with the local test image: events, a lease's life, shell sessions
//! (create, list, attach with typed frames, delete) and typed errors with
//! the API's codes. One namespace (its guard, made before the server,
//! removes the containers even on failure) and one server.

use std::time::Duration;

use lease_client::{Channel, Client, ClientError, Event, Frame, SessionRequest};
use lease_testkit::TempDir;
use lease_testkit::docker::{NamespaceGuard, containers_of, docker_ready};
use lease_testkit::server::{Server, ServerConfig, mint_token};

/// Waits up to 30 s for `future`.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The next lease event of kind `kind` for lease `id`.
async fn event(events: &mut lease_client::EventStream, id: &str, kind: &str) {
    within(&format!("a `{kind}` event"), async {
        loop {
            match events.next().await {
                Some(Ok(Event::Lease(json))) if json.lease.id == id && json.kind == kind => {
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("event stream failed: {error}"),
                None => panic!("the event stream ended"),
            }
        }
    })
    .await;
}

/// All frames of an attached session until it closes.
async fn frames(stream: &mut lease_client::SessionStream) -> Vec<Frame> {
    within("the session's end", async {
        let mut frames = Vec::new();
        while let Some(frame) = stream.next().await {
            frames.push(frame.expect("a frame"));
        }
        frames
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_and_its_sessions_through_the_client() {
    if !docker_ready() {
        return;
    }
    let guard = NamespaceGuard::random();
    let Some(binary) = lease_testkit::server::binary() else {
        return;
    };
    let alice = mint_token(&binary, "alice", false);
    let bob = mint_token(&binary, "bob", false);
    let dir = TempDir::new("lease-client-tokens");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, format!("{}\n{}", alice.toml_entry, bob.toml_entry))
        .expect("tokens file");
    let Some(server) = Server::start(
        ServerConfig::new(guard.namespace())
            .binary(binary)
            .ready_path("/healthz")
            .args(["--tokens", &tokens.display().to_string()]),
    ) else {
        return;
    };
    let client = Client::new(&server.url(), Some(alice.token.clone())).expect("client");
    let other = Client::new(&server.url(), Some(bob.token.clone())).expect("client");
    let nobody = Client::new(&server.url(), None).expect("client");

    // Typed errors: the API's status and code.
    let refused = nobody.list(None).await.expect_err("no token");
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(401), Some("unauthorized"))
    );
    let unknown = client
        .provision("nosuch", None)
        .await
        .expect_err("unknown offering");
    assert!(
        matches!(&unknown, ClientError::Api { status: 422, field: Some(f), .. } if f == "imageType"),
        "{unknown:?}"
    );

    // A lease's life, seen on the event stream too.
    let mut events = client.events().await.expect("event stream");
    let lease = client
        .provision("busybox", Some(5))
        .await
        .expect("provision");
    assert_eq!(lease.status, "pending");
    event(&mut events, &lease.id, "created").await;
    event(&mut events, &lease.id, "running").await;
    assert_eq!(containers_of(guard.namespace()).len(), 1);
    assert!(
        other
            .status(&lease.id)
            .await
            .expect_err("bob")
            .is_not_found()
    );
    let extended = client.extend(&lease.id, 2).await.expect("extend");
    assert_eq!(extended.duration_minutes, 7);
    event(&mut events, &lease.id, "extended").await;

    // A session without a terminal: stdin in, stdout and stderr apart, exit code.
    let request = SessionRequest {
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "read x; echo got $x; echo oops >&2; exit 2".into(),
        ]),
        tty: Some(false),
        ..SessionRequest::default()
    };
    let session = client
        .create_session(&lease.id, &request)
        .await
        .expect("session");
    assert_eq!(session.session_id.len(), 26);
    assert!(
        other
            .create_session(&lease.id, &request)
            .await
            .expect_err("bob")
            .is_not_found()
    );
    let listed = client.sessions(&lease.id).await.expect("sessions");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_id, session.session_id);
    let mut attached = client
        .attach(&lease.id, &session.session_id, 0)
        .await
        .expect("attach");
    attached.sender.stdin(b"hi\n").await.expect("stdin");
    let got = frames(&mut attached.stream).await;
    assert!(
        matches!(
            &got[0],
            Frame::Attached {
                offset: 0,
                missed: 0,
                tty: false,
                ..
            }
        ),
        "{got:?}"
    );
    let output = |wanted: Channel| -> Vec<u8> {
        got.iter()
            .filter_map(|frame| match frame {
                Frame::Output { channel, bytes } if *channel == wanted => Some(bytes.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    assert_eq!(output(Channel::Stdout), b"got hi\n");
    assert_eq!(output(Channel::Stderr), b"oops\n");
    assert_eq!(got.last(), Some(&Frame::Exit { code: 2 }), "{got:?}");
    assert_eq!(attached.stream.offset(), 12);
    assert!(attached.stream.finished());

    // DELETE on a session; an unknown one is 404.
    let long = SessionRequest {
        command: Some(vec!["sleep".into(), "300".into()]),
        ..SessionRequest::default()
    };
    let sleeper = client
        .create_session(&lease.id, &long)
        .await
        .expect("session");
    client
        .delete_session(&lease.id, &sleeper.session_id)
        .await
        .expect("delete the session");
    let gone = client
        .delete_session(&lease.id, "aaaaaaaaaaaaaaaaaaaaaaaaaa")
        .await
        .expect_err("unknown session");
    assert!(gone.is_not_found(), "{gone:?}");

    // The logs WebSocket: the container's first line.
    let mut logs = client
        .logs(&lease.id, Some(1000), true)
        .await
        .expect("logs");
    let first = within("a log line", logs.next_line()).await;
    assert_eq!(first.expect("a line").expect("no error"), "ready");
    logs.close().await;

    // The end.
    let deleted = client.delete(&lease.id).await.expect("delete");
    assert!(matches!(deleted.status.as_str(), "deleting" | "deleted"));
    event(&mut events, &lease.id, "deleted").await;
    let history = client.history(None).await.expect("history");
    assert_eq!(history[0].id, lease.id);
    let usage = client.usage(None).await.expect("usage");
    assert_eq!((usage.owner.as_str(), usage.ended_leases), ("alice", 1));
    drop(server);
    drop(guard);
}
