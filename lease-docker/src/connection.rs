//! Finding and reaching the Docker engine, the way the docker CLI does:
//! `DOCKER_HOST` if it is set (a unix socket or plain tcp), else the local
//! socket.

use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};
use lease_core::RuntimeError;

use crate::error::DockerError;

/// The engine's local socket, used when `DOCKER_HOST` is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Port of a `tcp://` host that names none (the docker CLI's plain-text port).
const DEFAULT_TCP_PORT: u16 = 2375;

/// How to reach the Docker engine.
///
/// ```
/// use std::time::Duration;
/// use lease_docker::ConnectOptions;
/// let options = ConnectOptions::from_env().connect_timeout(Duration::from_millis(500));
/// assert_eq!(options.connect_timeout, Duration::from_millis(500));
/// let local = ConnectOptions::default().host("unix:///run/docker.sock");
/// assert_eq!(local.host.as_deref(), Some("unix:///run/docker.sock"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The engine's address: `unix:///path/to/docker.sock`, or
    /// `tcp://host:port` (also `http://`; plain text only). `None`: the
    /// local socket ([`DEFAULT_HOST`]).
    pub host: Option<String>,
    /// How long connecting (and [`lease_core::ContainerRuntime::ping`]) may
    /// take before the engine counts as unavailable. Default 1.5 s.
    pub connect_timeout: Duration,
    /// How long any later request may wait for the engine's answer to
    /// begin (streams such as logs are not cut by it). Whole seconds, at
    /// least 1. Default 60 s.
    pub request_timeout: Duration,
    /// How many containers may be in creation (create + start) at once;
    /// further creations wait their turn, and their request timeout starts
    /// only then. Bounding them keeps a burst of hundreds of provisions
    /// from overloading the engine until its answers exceed the request
    /// timeout. At least 1. Default 8.
    pub max_concurrent_creations: usize,
    /// Whether `DOCKER_TLS_VERIFY` asked for TLS, which this crate does not
    /// speak: a tcp host is then refused rather than used in plain text.
    pub tls_requested: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            host: None,
            connect_timeout: Duration::from_millis(1500),
            request_timeout: Duration::from_secs(60),
            max_concurrent_creations: 8,
            tls_requested: false,
        }
    }
}

impl ConnectOptions {
    /// The defaults, with the host from `DOCKER_HOST` (and TLS from
    /// `DOCKER_TLS_VERIFY`) when set and not empty.
    pub fn from_env() -> Self {
        let non_empty = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        ConnectOptions {
            host: non_empty("DOCKER_HOST"),
            tls_requested: non_empty("DOCKER_TLS_VERIFY").is_some(),
            ..ConnectOptions::default()
        }
    }

    /// With the engine at `host` (`unix://…` or `tcp://…`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// With a connect (and ping) timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// With a request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// With at most `limit` container creations at once (0 counts as 1).
    pub fn max_concurrent_creations(mut self, limit: usize) -> Self {
        self.max_concurrent_creations = limit;
        self
    }
}

/// Where the engine is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A unix socket's path.
    Unix(String),
    /// `host:port` over plain tcp.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{path}"),
            Endpoint::Tcp(address) => write!(f, "tcp://{address}"),
        }
    }
}

impl Endpoint {
    /// Reads a `DOCKER_HOST`-style address.
    pub(crate) fn parse(host: Option<&str>, tls_requested: bool) -> Result<Endpoint, RuntimeError> {
        let host = host
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .unwrap_or(DEFAULT_HOST);
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(RuntimeError::Invalid(format!(
                    "Docker host `{host}` names no socket path"
                )));
            }
            return Ok(Endpoint::Unix(path.to_owned()));
        }
        let address = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"));
        match address {
            Some(_) if tls_requested => Err(RuntimeError::Invalid(format!(
                "Docker host `{host}` asks for TLS (DOCKER_TLS_VERIFY), which lease-docker does not support"
            ))),
            Some(address) => {
                let address = address.trim_end_matches('/');
                if address.is_empty() || address.contains('/') {
                    return Err(RuntimeError::Invalid(format!(
                        "Docker host `{host}` is not `tcp://host:port`"
                    )));
                }
                let has_port = address
                    .rsplit_once(':')
                    .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
                    && !address.ends_with(']');
                Ok(Endpoint::Tcp(if has_port {
                    address.to_owned()
                } else {
                    format!("{address}:{DEFAULT_TCP_PORT}")
                }))
            }
            None => Err(RuntimeError::Invalid(format!(
                "Docker host `{host}` is not supported (use unix:///path or tcp://host:port)"
            ))),
        }
    }

    /// A bollard client for this endpoint (nothing is sent yet).
    fn client(&self, request_timeout: Duration) -> Result<Docker, DockerError> {
        let seconds = request_timeout.as_secs().max(1);
        let client = match self {
            Endpoint::Unix(path) => Docker::connect_with_unix(path, seconds, API_DEFAULT_VERSION),
            Endpoint::Tcp(address) => {
                Docker::connect_with_http(&format!("tcp://{address}"), seconds, API_DEFAULT_VERSION)
            }
        };
        client.map_err(|source| DockerError::Connect {
            endpoint: self.to_string(),
            source,
        })
    }
}

/// Connects to the engine and agrees on an API version (bollard speaks a
/// newer one than many engines), all within `options.connect_timeout`.
/// Returns the bollard client and the endpoint as `unix:///…` or
/// `tcp://host:port`. Public for runtimes built on the same engine
/// connection (lease-swarm's manager and node engines).
///
/// # Errors
///
/// [`RuntimeError::Invalid`] for a host this crate cannot speak to,
/// [`RuntimeError::Unavailable`] when the engine does not answer in time.
pub async fn connect(options: &ConnectOptions) -> Result<(Docker, String), RuntimeError> {
    let endpoint = Endpoint::parse(options.host.as_deref(), options.tls_requested)?;
    let name = endpoint.to_string();
    let client = endpoint
        .client(options.request_timeout)
        .map_err(|error| error.into_runtime(&name))?;
    match tokio::time::timeout(options.connect_timeout, client.negotiate_version()).await {
        Ok(Ok(client)) => Ok((client, name)),
        Ok(Err(source)) => Err(RuntimeError::Unavailable {
            endpoint: name.clone(),
            source: Box::new(DockerError::Connect {
                endpoint: name,
                source,
            }),
        }),
        Err(_elapsed) => Err(RuntimeError::Unavailable {
            endpoint: name.clone(),
            source: Box::new(DockerError::ConnectTimeout {
                endpoint: name,
                after: options.connect_timeout,
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_like_the_docker_cli() {
        let parse = |host| Endpoint::parse(host, false);
        assert_eq!(
            parse(None).unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            parse(Some("  ")).unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            parse(Some("unix:///tmp/d.sock")).unwrap(),
            Endpoint::Unix("/tmp/d.sock".into())
        );
        assert_eq!(
            parse(Some("tcp://10.0.0.2:2376")).unwrap(),
            Endpoint::Tcp("10.0.0.2:2376".into())
        );
        assert_eq!(
            parse(Some("tcp://docker")).unwrap(),
            Endpoint::Tcp("docker:2375".into())
        );
        assert_eq!(
            parse(Some("http://docker:1234/")).unwrap(),
            Endpoint::Tcp("docker:1234".into())
        );
        assert_eq!(
            parse(Some("tcp://docker:2375")).unwrap().to_string(),
            "tcp://docker:2375"
        );
        for bad in [
            "ssh://me@host",
            "npipe:////./pipe/docker_engine",
            "/var/run/docker.sock",
            "unix://",
            "tcp://",
        ] {
            assert!(
                matches!(parse(Some(bad)), Err(RuntimeError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Endpoint::parse(Some("tcp://h:2376"), true),
            Err(RuntimeError::Invalid(_))
        ));
    }
}
