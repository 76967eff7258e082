//! Finding and reaching the Docker engine, the way the docker CLI does:
//! `DOCKER_HOST` if it is set (a unix socket, or tcp in plain text or with
//! TLS when `DOCKER_TLS_VERIFY` is set), else the local socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};
use lease_core::RuntimeError;

use crate::error::DockerError;
use crate::tls::{CertFiles, cert_dir_from_env};

/// The engine's local socket, used when `DOCKER_HOST` is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Port of a `tcp://` host that names none (the docker CLI's plain-text port).
const DEFAULT_TCP_PORT: u16 = 2375;

/// Port of a `tcp://` host with TLS that names none (the docker CLI's TLS port).
const DEFAULT_TLS_PORT: u16 = 2376;

/// How to reach the Docker engine.
///
/// ```
/// use std::time::Duration;
/// use lease_docker::ConnectOptions;
/// let options = ConnectOptions::from_env().connect_timeout(Duration::from_millis(500));
/// assert_eq!(options.connect_timeout, Duration::from_millis(500));
/// let local = ConnectOptions::default().host("unix:///run/docker.sock");
/// assert_eq!(local.host.as_deref(), Some("unix:///run/docker.sock"));
/// let remote = ConnectOptions::default().host("tcp://10.0.0.3:2376").tls("/etc/lease/worker-1");
/// assert_eq!(remote.tls_cert_dir.as_deref(), Some(std::path::Path::new("/etc/lease/worker-1")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The engine's address: `unix:///path/to/docker.sock`, or
    /// `tcp://host:port` (also `http://`; TLS with
    /// [`tls_cert_dir`](Self::tls_cert_dir)). `None`: the local socket
    /// ([`DEFAULT_HOST`]).
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
    /// TLS to a `tcp://` host, with the certificates of this directory:
    /// `ca.pem` verifies the engine's certificate (and its name or IP),
    /// `cert.pem` and `key.pem` are the client's (see [`crate::tls`]).
    /// `None`: plain text. Ignored for a unix socket. A tcp host without a
    /// port gets 2376 with TLS, 2375 without.
    pub tls_cert_dir: Option<PathBuf>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            host: None,
            connect_timeout: Duration::from_millis(1500),
            request_timeout: Duration::from_secs(60),
            max_concurrent_creations: 8,
            tls_cert_dir: None,
        }
    }
}

impl ConnectOptions {
    /// The defaults, with the host from `DOCKER_HOST` when set and not
    /// empty, and TLS when `DOCKER_TLS_VERIFY` is set and not empty, with
    /// the certificates of `DOCKER_CERT_PATH` (default `~/.docker`).
    pub fn from_env() -> Self {
        let non_empty = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        ConnectOptions {
            host: non_empty("DOCKER_HOST"),
            tls_cert_dir: non_empty("DOCKER_TLS_VERIFY").map(|_| cert_dir_from_env()),
            ..ConnectOptions::default()
        }
    }

    /// With the engine at `host` (`unix://…` or `tcp://…`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// With TLS to the tcp host, using the `ca.pem`, `cert.pem` and
    /// `key.pem` of `cert_dir`.
    pub fn tls(mut self, cert_dir: impl Into<PathBuf>) -> Self {
        self.tls_cert_dir = Some(cert_dir.into());
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
    /// `host:port` over tcp with TLS, with the certificates of `cert_dir`.
    Tls { address: String, cert_dir: PathBuf },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{path}"),
            Endpoint::Tcp(address) | Endpoint::Tls { address, .. } => {
                write!(f, "tcp://{address}")
            }
        }
    }
}

impl Endpoint {
    /// Reads a `DOCKER_HOST`-style address; a tcp one uses TLS when
    /// `cert_dir` is given.
    pub(crate) fn parse(
        host: Option<&str>,
        cert_dir: Option<&Path>,
    ) -> Result<Endpoint, RuntimeError> {
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
                let default_port = match cert_dir {
                    Some(_) => DEFAULT_TLS_PORT,
                    None => DEFAULT_TCP_PORT,
                };
                let address = if has_port {
                    address.to_owned()
                } else {
                    format!("{address}:{default_port}")
                };
                Ok(match cert_dir {
                    Some(dir) => Endpoint::Tls {
                        address,
                        cert_dir: dir.to_owned(),
                    },
                    None => Endpoint::Tcp(address),
                })
            }
            None => Err(RuntimeError::Invalid(format!(
                "Docker host `{host}` is not supported (use unix:///path or tcp://host:port)"
            ))),
        }
    }

    /// A bollard client for this endpoint (nothing is sent yet; a TLS
    /// endpoint's certificate files are checked readable).
    fn client(&self, request_timeout: Duration) -> Result<Docker, RuntimeError> {
        let seconds = request_timeout.as_secs().max(1);
        let name = self.to_string();
        let client = match self {
            Endpoint::Unix(path) => Docker::connect_with_unix(path, seconds, API_DEFAULT_VERSION),
            Endpoint::Tcp(address) => {
                Docker::connect_with_http(&format!("tcp://{address}"), seconds, API_DEFAULT_VERSION)
            }
            Endpoint::Tls { address, cert_dir } => {
                let files = CertFiles::load(cert_dir, &name)
                    .map_err(|error| RuntimeError::operation("load the TLS certificates", error))?;
                Docker::connect_with_ssl(
                    address,
                    &files.key,
                    &files.cert,
                    &files.ca,
                    seconds,
                    API_DEFAULT_VERSION,
                )
            }
        };
        client.map_err(|source| {
            DockerError::Connect {
                endpoint: name.clone(),
                source,
            }
            .into_runtime(&name)
        })
    }
}

/// Connects to the engine and agrees on an API version (bollard speaks a
/// newer one than many engines), all within `options.connect_timeout`.
/// Returns the bollard client and the endpoint as `unix:///…` or
/// `tcp://host:port` (also with TLS). Public for runtimes built on the same engine
/// connection (lease-swarm's manager and node engines).
///
/// # Errors
///
/// [`RuntimeError::Invalid`] for a host this crate cannot speak to,
/// [`RuntimeError::Operation`] with a [`CertFileError`](crate::CertFileError)
/// when a TLS certificate file cannot be read,
/// [`RuntimeError::Unavailable`] when the engine does not answer in time
/// (or refuses the TLS handshake).
pub async fn connect(options: &ConnectOptions) -> Result<(Docker, String), RuntimeError> {
    let endpoint = Endpoint::parse(options.host.as_deref(), options.tls_cert_dir.as_deref())?;
    let name = endpoint.to_string();
    let client = endpoint.client(options.request_timeout)?;
    tracing::debug!(endpoint = %name, tls = matches!(endpoint, Endpoint::Tls { .. }), "connecting to the Docker engine");
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
        let parse = |host| Endpoint::parse(host, None);
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
        let certs = Some(Path::new("/certs"));
        let tls = |address: &str| Endpoint::Tls {
            address: address.into(),
            cert_dir: "/certs".into(),
        };
        assert_eq!(
            Endpoint::parse(Some("tcp://h:2376"), certs).unwrap(),
            tls("h:2376")
        );
        assert_eq!(
            Endpoint::parse(Some("tcp://h"), certs).unwrap(),
            tls("h:2376")
        );
        assert_eq!(
            Endpoint::parse(Some("tcp://h"), certs).unwrap().to_string(),
            "tcp://h:2376"
        );
        assert_eq!(
            Endpoint::parse(Some("unix:///d.sock"), certs).unwrap(),
            Endpoint::Unix("/d.sock".into())
        );
    }
}
