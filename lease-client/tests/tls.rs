//! `https://` and `wss://` go through rustls: against a peer that does not
//! speak TLS both fail cleanly at the handshake (a transport or WebSocket
//! error, not a panic over a missing crypto provider, not plain text).

use lease_client::{Client, ClientError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn https_and_wss_fail_cleanly_at_a_peer_without_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = tokio::spawn(async move {
        let mut count = 0;
        while count < 2 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return count;
            };
            count += 1;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\nplain").await;
        }
        count
    });
    let client =
        Client::new(&format!("https://127.0.0.1:{port}"), Some("t".into())).expect("a valid URL");
    let rest = client.catalog().await;
    assert!(
        matches!(rest, Err(ClientError::Transport { .. })),
        "{rest:?}"
    );
    let ws = client.logs("container-x", None, true).await;
    assert!(matches!(ws, Err(ClientError::WebSocket { .. })), "{ws:?}");
    // Both really connected: the failure is the handshake, not the dial.
    assert_eq!(accepted.await.expect("accept task"), 2);
}
