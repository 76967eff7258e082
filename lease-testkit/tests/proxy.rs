//! The Docker proxy's modes, in front of a stand-in engine (a unix socket
//! that answers each request with `HTTP/1.1 200 OK` and the request line it
//! got), so no Docker is needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use lease_testkit::TempDir;
use lease_testkit::proxy::{DockerProxy, Mode};

/// Serves every connection: reads one request line, answers with it.
fn fake_engine(socket: &Path) {
    let listener = UnixListener::bind(socket).expect("bind the fake engine");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                if reader.read_line(&mut line).is_ok() {
                    let mut stream = stream;
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\n\r\n{}", line.trim_end());
                }
            });
        }
    });
}

/// Sends `request_line` through the proxy; what came back (empty if the
/// connection was closed on us).
fn send(proxy: &DockerProxy, request_line: &str) -> String {
    let path = proxy.host().trim_start_matches("unix://").to_owned();
    let mut stream = UnixStream::connect(path).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = write!(stream, "{request_line}\r\nHost: docker\r\n\r\n");
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn passes_kills_deletes_and_goes_down_on_demand() {
    let dir = TempDir::new("lease-testkit-engine");
    let engine = dir.path().join("engine.sock");
    fake_engine(&engine);
    let proxy = DockerProxy::start(&engine).expect("start the proxy");

    let answer = send(&proxy, "GET /containers/json HTTP/1.1");
    assert!(
        answer.ends_with("GET /containers/json HTTP/1.1"),
        "{answer:?}"
    );
    assert_eq!((proxy.forwarded(), proxy.killed()), (1, 0));

    proxy.set_mode(Mode::KillDeletes);
    assert_eq!(
        send(&proxy, "DELETE /containers/abc?force=true HTTP/1.1"),
        ""
    );
    let answer = send(&proxy, "GET /containers/abc/json HTTP/1.1");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer:?}");
    assert_eq!((proxy.forwarded(), proxy.killed()), (2, 1));

    proxy.cut();
    assert!(proxy.is_cut());
    assert_eq!(send(&proxy, "GET /_ping HTTP/1.1"), "");
    assert_eq!(proxy.forwarded(), 2);
    assert!(proxy.killed() >= 2);

    proxy.restore();
    assert!(!proxy.is_cut());
    let answer = send(&proxy, "GET /_ping HTTP/1.1");
    assert!(answer.ends_with("GET /_ping HTTP/1.1"), "{answer:?}");
}

#[test]
fn a_cut_ends_live_connections() {
    let dir = TempDir::new("lease-testkit-engine");
    let engine = dir.path().join("engine.sock");
    // An engine that accepts and never answers: the connection stays live.
    let listener = UnixListener::bind(&engine).expect("bind");
    let held = std::thread::spawn(move || listener.accept().map(|(stream, _)| stream));
    let proxy = DockerProxy::start(&engine).expect("start the proxy");
    let path = proxy.host().trim_start_matches("unix://").to_owned();
    let mut client = UnixStream::connect(path).expect("connect");
    write!(client, "GET /events HTTP/1.1\r\n\r\n").expect("send");
    let _engine_side = held.join().expect("accept thread").expect("accepted");
    // Until the proxy has piped the request, a cut would count it as
    // refused instead; wait for the forward.
    let forwarded =
        lease_testkit::wait_for(Duration::from_secs(5), Duration::from_millis(10), || {
            (proxy.forwarded() == 1).then_some(())
        });
    assert!(forwarded.is_some(), "the request was not forwarded");

    proxy.cut();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut rest = Vec::new();
    let read = client.read_to_end(&mut rest);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "the live connection was not ended: {read:?}"
    );
    assert_eq!(proxy.killed(), 1);
}
