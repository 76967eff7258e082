//! Forwarding one HTTP request to a lease's port over a [`Reached`]
//! connection: bodies streamed both ways, hop-by-hop headers dropped,
//! `X-Forwarded-*` set, the viewer's credentials stripped, and upgrades
//! (WebSockets) passed through byte for byte once the app answers 101.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_SECURITY_POLICY, COOKIE, HOST, HeaderName, HeaderValue,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, REFERRER_POLICY, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use axum::http::{HeaderMap, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

use super::reach::Reached;
use crate::error::ApiError;
use crate::limits::StreamPermit;

/// The policy every response of the same-origin forms (path and `/p/`)
/// carries: the app runs sandboxed in an opaque origin, so its scripts
/// cannot read the portal's storage nor call the API with the viewer's
/// cookies; without `allow-same-origin` on purpose.
pub(crate) const SANDBOX_CSP: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/// The cookie that carries a viewer's port grant.
pub(crate) const GRANT_COOKIE: &str = "cl_port";

/// How the request reached us, for `X-Forwarded-*`.
#[derive(Clone, Debug)]
pub(crate) struct Forwarding {
    /// The viewer's address, when known.
    pub(crate) client: Option<SocketAddr>,
    /// `https` when the request came over TLS (as a front proxy says).
    pub(crate) proto: &'static str,
    /// The path prefix the app is served under (`""` for the host form).
    pub(crate) prefix: String,
    /// The path and query to ask the app for.
    pub(crate) target: String,
    /// Add [`SANDBOX_CSP`] to responses.
    pub(crate) sandbox: bool,
}

const HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHORIZATION,
    PROXY_AUTHENTICATE,
];

/// The upgrade protocol a request or response asks for (`Connection:
/// upgrade` with an `Upgrade` header).
fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers.get_all(CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    asks.then(|| headers.get(UPGRADE).cloned()).flatten()
}

/// Drops the hop-by-hop headers of `headers`, those named by its
/// `Connection` header included.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// `Cookie` without ours (the app never sees the viewer's grant).
/// Cookies of ours that an app in a lease must never see.
const OUR_COOKIES: [&str; 3] = [
    GRANT_COOKIE,
    crate::oidc::SESSION_COOKIE,
    crate::oidc::LOGIN_COOKIE,
];

fn strip_our_cookies(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty()
                && pair
                    .split_once('=')
                    .is_none_or(|(name, _)| !OUR_COOKIES.contains(&name.trim()))
        })
        .map(str::to_owned)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(COOKIE, value);
    }
}

/// The headers the app gets.
fn upstream_headers(incoming: &HeaderMap, how: &Forwarding) -> HeaderMap {
    let mut headers = incoming.clone();
    let upgrade = upgrade_of(&headers);
    strip_hop_by_hop(&mut headers);
    headers.remove(AUTHORIZATION);
    strip_our_cookies(&mut headers);
    if let Some(protocol) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol);
    }
    if let Some(host) = incoming.get(HOST) {
        headers.insert("x-forwarded-host", host.clone());
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(how.proto));
    if let Some(client) = how.client {
        let chain = match incoming
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(earlier) => format!("{earlier}, {}", client.ip()),
            None => client.ip().to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", value);
        }
    }
    if !how.prefix.is_empty()
        && let Ok(value) = HeaderValue::from_str(&how.prefix)
    {
        headers.insert("x-forwarded-prefix", value);
    }
    headers
}

fn bad_gateway(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "upstream_failed", message)
}

/// Forwards `request` over `reached`. `permit` is kept by an upgraded
/// connection for as long as it lives.
pub(crate) async fn forward(
    reached: Reached,
    mut request: Request<Body>,
    how: Forwarding,
    permit: Option<StreamPermit>,
) -> Result<Response<Body>, ApiError> {
    let Reached {
        stream,
        lease,
        address,
        ended,
    } = reached;
    let span = info_span!("proxy", lease_id = %lease.id, %address);
    let wants_upgrade = upgrade_of(request.headers()).is_some();
    let downstream = wants_upgrade.then(|| hyper::upgrade::on(&mut request));
    let uri: Uri = how
        .target
        .parse()
        .map_err(|_| ApiError::bad_request("the path cannot be forwarded"))?;
    let (parts, body) = request.into_parts();
    let mut upstream = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(body)
        .map_err(|error| bad_gateway(format!("the request cannot be forwarded: {error}")))?;
    *upstream.headers_mut() = upstream_headers(&parts.headers, &how);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| bad_gateway(format!("the app's port did not speak HTTP: {error}")))?;
    let conn_ended = ended.clone();
    tokio::spawn(
        async move {
            tokio::select! {
                result = connection.with_upgrades() => {
                    if let Err(error) = result {
                        debug!(%error, "upstream connection ended with an error");
                    }
                }
                () = conn_ended.cancelled() => debug!("lease ended: upstream connection closed"),
            }
        }
        .instrument(span.clone()),
    );
    let mut response = sender.send_request(upstream).await.map_err(|error| {
        bad_gateway(format!(
            "the app on port {} closed the connection without an answer: {error}",
            address.port()
        ))
    })?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(downstream) = downstream
    {
        let upstream_io = hyper::upgrade::on(&mut response);
        tokio::spawn(splice(downstream, upstream_io, ended, permit).instrument(span));
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if how.sandbox {
        parts.headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(SANDBOX_CSP),
        );
        // `/p/{secret}/` URLs must not leak through `Referer`.
        parts
            .headers
            .insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Copies bytes both ways between the viewer's upgraded connection and the
/// app's until either side closes, the lease ends or the server stops.
async fn splice(
    downstream: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    ended: CancellationToken,
    permit: Option<StreamPermit>,
) {
    let _permit = permit;
    let (down, up) = match tokio::join!(downstream, upstream) {
        (Ok(down), Ok(up)) => (down, up),
        (Err(error), _) | (_, Err(error)) => {
            debug!(%error, "upgrade failed");
            return;
        }
    };
    let mut down = TokioIo::new(down);
    let mut up = TokioIo::new(up);
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut down, &mut up) => match result {
            Ok((sent, received)) => debug!(sent, received, "upgraded connection closed"),
            Err(error) => debug!(%error, "upgraded connection failed"),
        },
        () = ended.cancelled() => debug!("lease ended: upgraded connection closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
                HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        map
    }

    fn how() -> Forwarding {
        Forwarding {
            client: Some(SocketAddr::from(([10, 0, 0, 9], 5555))),
            proto: "https",
            prefix: "/leases/x/ports/80".into(),
            target: "/".into(),
            sandbox: true,
        }
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_here() {
        let incoming = headers(&[
            ("host", "portal.example"),
            ("authorization", "Bearer secret"),
            ("cookie", "a=1; cl_port=grant; b=2"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "drop me"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("accept", "text/html"),
        ]);
        let out = upstream_headers(&incoming, &how());
        assert!(out.get(AUTHORIZATION).is_none());
        assert_eq!(
            out.get(COOKIE).and_then(|v| v.to_str().ok()),
            Some("a=1; b=2")
        );
        for gone in ["connection", "x-private", "keep-alive", "te"] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        assert_eq!(
            out.get("accept").and_then(|v| v.to_str().ok()),
            Some("text/html")
        );
        assert_eq!(
            out.get("x-forwarded-host").and_then(|v| v.to_str().ok()),
            Some("portal.example")
        );
        assert_eq!(
            out.get("x-forwarded-proto").and_then(|v| v.to_str().ok()),
            Some("https")
        );
        assert_eq!(
            out.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
            Some("10.0.0.9")
        );
        assert_eq!(
            out.get("x-forwarded-prefix").and_then(|v| v.to_str().ok()),
            Some("/leases/x/ports/80")
        );
    }

    #[test]
    fn only_our_cookie_removed_and_upgrades_kept() {
        let incoming = headers(&[
            ("cookie", "cl_port=x"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "chat, superchat"),
        ]);
        let out = upstream_headers(&incoming, &how());
        assert!(out.get(COOKIE).is_none());
        assert_eq!(
            out.get(CONNECTION).and_then(|v| v.to_str().ok()),
            Some("upgrade")
        );
        assert_eq!(
            out.get(UPGRADE).and_then(|v| v.to_str().ok()),
            Some("websocket")
        );
        assert_eq!(
            out.get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("chat, superchat")
        );
    }
}
