//! Opening a WebSocket to the server with the bearer token in the header.

use std::io;
use std::net::{IpAddr, SocketAddr};

use lease_http::pacing;
use reqwest::Url;
use reqwest::header::AUTHORIZATION;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{Client, without_query};
use crate::error::ClientError;

/// A WebSocket to the server.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest message accepted from the server (the attach protocol sends at
/// most 64 KiB of output per message, a tunnel 256 KiB, a log line is
/// shorter).
const MAX_MESSAGE: usize = 1 << 20;

/// Connects to `url` (`http(s)` turned into `ws(s)`), sending the token as
/// `Authorization: Bearer`. A refusal before the upgrade (401, 404, 429, …)
/// comes back as [`ClientError::Api`] with the server's code and message.
pub(crate) async fn connect(client: &Client, url: Url) -> Result<Socket, ClientError> {
    connect_with(client, url, config()).await
}

/// The buffering of [`connect`]: tungstenite's defaults, messages of at
/// most [`MAX_MESSAGE`].
pub(crate) fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// [`connect`] with buffering of the caller's choosing (a bulk transfer
/// wants other read and write buffers than an interactive session).
pub(crate) async fn connect_with(
    client: &Client,
    mut url: Url,
    config: WebSocketConfig,
) -> Result<Socket, ClientError> {
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    // Only fails for special/non-special mismatches, which http→ws is not.
    let _ = url.set_scheme(scheme);
    let shown = without_query(&url);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ClientError::websocket(&shown, e))?;
    if let Some(value) = client.authorization() {
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let stream = open(&url)
        .await
        .map_err(|e| ClientError::websocket(&shown, WsError::Io(e)))?;
    match tokio_tungstenite::client_async_tls_with_config(request, stream, Some(config), None).await
    {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().clone().unwrap_or_default();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            Err(ClientError::from_answer(status, &body, retry_after))
        }
        Err(other) => Err(ClientError::websocket(&shown, other)),
    }
}

/// The TCP connection for `url`: to the first of its host's addresses that
/// accepts, without Nagle (keystrokes and frames go out at once), and
/// without pacing when the server is on this host
/// ([`lease_http::pacing`]: it must be chosen before connecting).
async fn open(url: &Url) -> io::Result<TcpStream> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the URL has no port"))?;
    let host = url.host_str().unwrap_or_default();
    // An IPv6 literal comes bracketed (`[::1]`).
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port)).await?.collect(),
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for address in addresses {
        match connect_to(address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Connects to one address: Reno first when it is a loopback address.
async fn connect_to(address: SocketAddr) -> io::Result<TcpStream> {
    let socket = pacing::socket_for(address)?;
    pacing::unpaced_if_loopback(&socket, address);
    let stream = socket.connect(address).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
