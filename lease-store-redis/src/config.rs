//! Store settings.

use std::fmt;
use std::time::Duration;

/// The URL schemes [`RedisStoreConfig::url`] accepts.
pub const URL_SCHEMES: [&str; 6] = [
    "redis://",
    "rediss://",
    "redis+unix://",
    "unix://",
    "redis+sentinel://",
    "rediss+sentinel://",
];

/// Whether `text` starts with one of the [`URL_SCHEMES`]: how a program
/// that takes `memory` or a Redis URL tells the two apart.
///
/// ```
/// assert!(lease_store_redis::is_store_url("redis+sentinel://s1:26379/mymaster"));
/// assert!(!lease_store_redis::is_store_url("memory"));
/// ```
pub fn is_store_url(text: &str) -> bool {
    URL_SCHEMES.iter().any(|scheme| text.starts_with(scheme))
}

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "containerlease";

/// How long finished leases stay in history by default: 7 days (the same
/// default as every store, [`lease_core::DEFAULT_HISTORY_RETENTION`]).
pub const DEFAULT_HISTORY_RETENTION: Duration = lease_core::DEFAULT_HISTORY_RETENTION;

/// How to reach Redis and where to keep the leases.
///
/// ```
/// use std::time::Duration;
/// use lease_store_redis::RedisStoreConfig;
///
/// let config = RedisStoreConfig::new("redis://127.0.0.1:6379/0")
///     .prefix("containerlease-staging")
///     .history_retention(Duration::from_secs(30 * 24 * 3600));
/// assert_eq!(config.prefix, "containerlease-staging");
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStoreConfig {
    /// Connection URL: `redis://[user:password@]host:port/db`, `rediss://…`
    /// for TLS (crate feature `tls`), `redis+unix:///path/to/socket`, or
    /// `redis+sentinel://[user:password@]host[:port][,host[:port]…]/master[/db]`
    /// to find the primary through Redis Sentinel (`rediss+sentinel://` for
    /// TLS to the Redis nodes).
    pub url: String,
    /// Every key starts with `{prefix}:`; deployments (and tests) sharing one
    /// Redis use different prefixes. Not empty, no `{` or `}`. Default
    /// [`DEFAULT_PREFIX`].
    pub prefix: String,
    /// How long a finished lease stays in history. Default
    /// [`DEFAULT_HISTORY_RETENTION`]. Usage totals are kept forever.
    pub history_retention: Duration,
    /// Longest wait for a connection to be established. Default 2 s.
    pub connection_timeout: Duration,
    /// Longest wait for one reply; after it the call fails as unavailable.
    /// Default 5 s.
    pub response_timeout: Duration,
    /// Reconnection attempts (with exponential backoff from 100 ms, at most
    /// 1 s apart) before a call fails as unavailable; the next call starts
    /// over. Default 2.
    pub reconnect_retries: usize,
    /// A CA certificate (PEM) to trust for `rediss://` instead of the
    /// platform's roots, e.g. a managed service's server CA. Needs the crate
    /// feature `tls`.
    pub tls_root_certificate: Option<Vec<u8>>,
}

impl fmt::Debug for RedisStoreConfig {
    /// Leaves the password out of the URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreConfig")
            .field("url", &redacted(&self.url))
            .field("prefix", &self.prefix)
            .field("history_retention", &self.history_retention)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("reconnect_retries", &self.reconnect_retries)
            .field(
                "tls_root_certificate",
                &self.tls_root_certificate.as_ref().map(|_| "set"),
            )
            .finish()
    }
}

/// `url` with any password replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = RedisStoreConfig::new("rediss://app:s3cr%40t@cache.example:6380/2");
        let text = format!("{config:?}");
        assert!(!text.contains("s3cr"), "{text}");
        assert!(
            text.contains("rediss://app:***@cache.example:6380/2"),
            "{text}"
        );
        assert_eq!(redacted("redis://:pw@h/0"), "redis://:***@h/0");
        assert_eq!(redacted("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(
            redacted("redis+unix:///run/redis.sock"),
            "redis+unix:///run/redis.sock"
        );
    }
}

impl RedisStoreConfig {
    /// The defaults, connecting to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisStoreConfig {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            history_retention: DEFAULT_HISTORY_RETENTION,
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            reconnect_retries: 2,
            tls_root_certificate: None,
        }
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the history retention.
    pub fn history_retention(mut self, retention: Duration) -> Self {
        self.history_retention = retention;
        self
    }

    /// Sets the connection timeout.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Sets the response timeout.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets the reconnection attempts per call.
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// Trusts `pem` (a CA certificate) for TLS connections (feature `tls`).
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificate = Some(pem.into());
        self
    }

    /// Checks the settings.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(ConfigError::Prefix(self.prefix.clone()));
        }
        if self.history_retention.as_millis() < 1000 {
            return Err(ConfigError::Retention);
        }
        if self.connection_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(ConfigError::Timeout);
        }
        if self.tls_root_certificate.is_some() && !cfg!(feature = "tls") {
            return Err(ConfigError::TlsDisabled);
        }
        Ok(())
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The prefix is empty or has braces.
    #[error("key prefix `{0}` must not be empty nor contain `{{` or `}}`")]
    Prefix(String),
    /// The retention is too short.
    #[error("history retention must be at least one second")]
    Retention,
    /// A timeout is zero.
    #[error("connection and response timeouts must be above zero")]
    Timeout,
    /// TLS settings without the `tls` feature.
    #[error("a TLS root certificate needs lease-store-redis's `tls` feature")]
    TlsDisabled,
}
