//! Store settings.

use std::time::Duration;

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "containerlease";

/// How long finished leases stay in history by default: 7 days.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

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
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStoreConfig {
    /// Connection URL: `redis://[user:password@]host:port/db`, `rediss://…`
    /// for TLS (crate feature `tls`), or `redis+unix:///path/to/socket`.
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
}
