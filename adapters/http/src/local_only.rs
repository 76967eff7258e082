//! Single-user mode serves this machine only, whatever a browser is made to
//! do.
//!
//! Without tokens, anyone who can send a request acts as the local user. The
//! server listens on a loopback address, but a web page can still reach it
//! through the browser of the person running it:
//!
//! - **DNS rebinding**: `evil.example` first resolves to the attacker's
//!   server, then to `127.0.0.1`; the page's requests reach us as same-origin
//!   requests, with `Host: evil.example:8080`. Refused here (**421**
//!   `wrong_host`) unless the `Host` (or the authority of an absolute
//!   request target) is a loopback name: `localhost`, `*.localhost`,
//!   `127.0.0.0/8` or `[::1]`, with any port. A request without a `Host` is
//!   refused too.
//! - **Cross-site requests**: a page on `evil.example` posting to
//!   `http://127.0.0.1:8080/api/provision`, or opening a WebSocket or an
//!   event stream there (browsers send those without asking). Refused here
//!   (**403** `foreign_origin`) when the request carries an `Origin` that is
//!   not an `http(s)` loopback origin nor one of the configured CORS
//!   origins. Requests without an `Origin` (curl, the CLI, same-origin
//!   `GET`s of the page) pass.
//!
//! With tokens the router does not install this check: the bearer token,
//! which a browser never adds by itself, is the protection, and the server
//! may be reached under any name.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::uri::Authority;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::error::{ApiError, echo};

/// The origins allowed besides loopback ones (the configured CORS origins).
#[derive(Clone, Debug, Default)]
pub(crate) struct LocalOnly {
    pub(crate) extra_origins: Arc<[HeaderValue]>,
}

/// Middleware: answers 421 for a request not addressed to a loopback name
/// and 403 for one from a foreign origin; passes the rest on.
pub(crate) async fn guard(
    State(allowed): State<LocalOnly>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(refusal) = check(&request, &allowed) {
        return refusal.into_response();
    }
    next.run(request).await
}

fn check(request: &Request, allowed: &LocalOnly) -> Result<(), ApiError> {
    let host = request_authority(request);
    if !host.as_deref().is_some_and(is_loopback_authority) {
        let shown = host.as_deref().map(echo).unwrap_or_default();
        warn!(host = %shown, path = %echo(request.uri().path()), "refused: single-user mode serves loopback names only (DNS rebinding?)");
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_host",
            format!(
                "this server runs single-user and answers only requests for localhost, 127.0.0.1 or [::1], not `{shown}`"
            ),
        ));
    }
    let mut origins = request.headers().get_all(ORIGIN).iter();
    if let Some(origin) = origins.next() {
        let single = origins.next().is_none();
        if !(single && is_allowed_origin(origin, &allowed.extra_origins)) {
            let shown = echo(&String::from_utf8_lossy(origin.as_bytes()));
            warn!(origin = %shown, path = %echo(request.uri().path()), "refused: a request from a foreign web page");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "foreign_origin",
                format!("requests from the web page at `{shown}` are not accepted"),
            ));
        }
    }
    Ok(())
}

/// The authority the request is for: the one of an absolute request target
/// (which takes precedence, RFC 9112 §3.2.2, and is where HTTP/2 carries
/// it), else the one `Host` header. `None` when missing, repeated or not
/// text.
pub(crate) fn request_authority(request: &Request) -> Option<String> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    let mut hosts = request.headers().get_all(HOST).iter();
    let host = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    host.to_str().ok().map(str::to_owned)
}

/// Whether `authority` (`host[:port]`) names this machine by a loopback
/// name or address.
pub(crate) fn is_loopback_authority(authority: &str) -> bool {
    let Ok(parsed) = authority.parse::<Authority>() else {
        return false;
    };
    // No `user@`, and after the host nothing or `:<port>`.
    let host = parsed.host();
    let port_ok = match authority.strip_prefix(host) {
        Some("") => true,
        Some(rest) => rest.strip_prefix(':').is_some_and(|port| {
            port.parse::<u16>().is_ok() && port.bytes().all(|b| b.is_ascii_digit())
        }),
        None => false,
    };
    !authority.contains('@') && port_ok && is_loopback_host(host)
}

fn is_loopback_host(host: &str) -> bool {
    // `localhost.` is the same name as `localhost`.
    let host = host.strip_suffix('.').unwrap_or(host);
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" {
        return true;
    }
    if let Some(label) = lower.strip_suffix(".localhost") {
        return !label.is_empty() && !label.starts_with('.');
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `origin` is `http(s)://<loopback>[:port]` or one of `extra`.
fn is_allowed_origin(origin: &HeaderValue, extra: &[HeaderValue]) -> bool {
    let Ok(text) = origin.to_str() else {
        return false;
    };
    if extra
        .iter()
        .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(text.as_bytes()))
    {
        return true;
    }
    let Some((scheme, authority)) = text.split_once("://") else {
        return false;
    };
    let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    web && !authority.contains(['/', '?', '#']) && is_loopback_authority(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_pass() {
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST:1",
            "localhost.",
            "app.localhost:3000",
            "a.b.localhost",
            "127.0.0.1",
            "127.0.0.1:65535",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_authority(host), "{host}");
        }
    }

    #[test]
    fn other_names_and_tricks_are_refused() {
        for host in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "localhost.evil.example:8080",
            "evillocalhost",
            ".localhost",
            "..localhost",
            "127.0.0.1.evil.example",
            "127.0.0.1.nip.io",
            "0.0.0.0",
            "10.0.0.1",
            "128.0.0.1",
            "2130706433",
            "127.1",
            "0x7f.0.0.1",
            "[::ffff:127.0.0.1]",
            "[::]",
            "::1",
            "[::1",
            "user@localhost",
            "localhost@evil.example",
            "localhost:99999",
            "localhost:http",
            "local host",
        ] {
            assert!(!is_loopback_authority(host), "{host}");
        }
    }

    #[test]
    fn origins_must_be_loopback_web_origins_or_configured() {
        let extra = [HeaderValue::from_static("https://dev.example.com")];
        let allowed = |origin: &str| {
            is_allowed_origin(&HeaderValue::from_str(origin).expect("header"), &extra)
        };
        for origin in [
            "http://127.0.0.1:8080",
            "http://localhost:5173",
            "https://localhost",
            "http://[::1]:8080",
            "HTTPS://DEV.EXAMPLE.COM",
        ] {
            assert!(allowed(origin), "{origin}");
        }
        for origin in [
            "http://evil.example",
            "null",
            "file://",
            "ftp://127.0.0.1",
            "ws://127.0.0.1:8080",
            "http://localhost.evil.example",
            "http://127.0.0.1:8080/path",
            "http://127.0.0.1@evil.example",
            "https://dev.example.com.evil.example",
            "",
        ] {
            assert!(!allowed(origin), "{origin}");
        }
    }
}
