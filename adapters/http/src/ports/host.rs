//! The host form: with a preview domain `leases.example.com`, a request
//! for host `{port}-{shortid}.leases.example.com` goes to that port of
//! lease `container-{shortid}` at `/`. The shortid is the random part of
//! the lease id (what follows `container-`; 20 lowercase letters and
//! digits for the ids this server makes). Each port then has an origin of
//! its own: apps that need cookies, storage or absolute paths work, and
//! none can reach the portal's storage (another origin) — no sandbox here.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::reach::parse_port;
use super::routes::{Target, serve};
use crate::AppState;
use crate::local_only::request_authority;

/// What the host dispatcher needs.
#[derive(Clone, Debug)]
pub(crate) struct PreviewHosts {
    pub(crate) state: AppState,
    /// The preview domain, lowercase, without dots around.
    pub(crate) domain: String,
}

/// The lease and port a preview host names: `("container-{shortid}",
/// "{port}")`, or `None` when `authority` is not a preview host of
/// `domain`.
pub(crate) fn preview_target(authority: &str, domain: &str) -> Option<(String, String)> {
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority, |(host, _)| host)
        .to_ascii_lowercase();
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    let (port, short) = label.split_once('-')?;
    let valid = !short.is_empty()
        && short
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| {
        (
            format!("{}{short}", lease_core::id::LEASE_ID_PREFIX),
            port.to_owned(),
        )
    })
}

/// Middleware: a request for a preview host is proxied; any other goes on.
pub(crate) async fn dispatch(
    State(hosts): State<PreviewHosts>,
    request: Request,
    next: Next,
) -> Response {
    let found =
        request_authority(&request).and_then(|authority| preview_target(&authority, &hosts.domain));
    let Some((lease, port)) = found else {
        return next.run(request).await;
    };
    let port = match parse_port(&port) {
        Ok(port) => port,
        Err(error) => return axum::response::IntoResponse::into_response(error),
    };
    let rest = request.uri().path().to_owned();
    let target = Target {
        lease,
        port,
        prefix: String::new(),
        rest,
        sandbox: false,
    };
    serve(hosts.state, request, target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_hosts_name_a_lease_and_port() {
        let domain = "leases.example.com";
        assert_eq!(
            preview_target("8080-abc123.leases.example.com", domain),
            Some(("container-abc123".into(), "8080".into()))
        );
        assert_eq!(
            preview_target("3000-AbC.Leases.Example.com:8443", domain),
            Some(("container-abc".into(), "3000".into()))
        );
        for other in [
            "leases.example.com",
            "8080-abc.evil.com",
            "8080-abc.leases.example.com.evil.com",
            "x8080-abc.leasesXexample.com",
            "8080-.leases.example.com",
            "8080-a_b.leases.example.com",
            "127.0.0.1:8080",
        ] {
            assert_eq!(preview_target(other, domain), None, "{other}");
        }
    }
}
