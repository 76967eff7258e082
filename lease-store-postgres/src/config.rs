//! [`PostgresStoreConfig`]: where the database is and how to use it.

use std::time::Duration;

pub use lease_core::DEFAULT_HISTORY_RETENTION;

/// Connections the pool opens at most, unless configured otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// How long connecting (and waiting for a pooled connection) may take,
/// unless configured otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// How to reach the database and what to keep; a builder.
///
/// ```
/// use std::time::Duration;
/// use lease_store_postgres::PostgresStoreConfig;
///
/// let config = PostgresStoreConfig::new("postgres://lease@db.internal/leases")
///     .namespace("prod")
///     .history_retention(Duration::from_secs(30 * 24 * 3600))
///     .pool_size(32);
/// assert_eq!(config.schema(), "containerlease_prod");
/// ```
#[derive(Clone)]
pub struct PostgresStoreConfig {
    pub(crate) url: String,
    pub(crate) namespace: String,
    pub(crate) history_retention: Duration,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: Duration,
}

impl std::fmt::Debug for PostgresStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStoreConfig")
            .field("url", &crate::redact(&self.url))
            .field("namespace", &self.namespace)
            .field("history_retention", &self.history_retention)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl PostgresStoreConfig {
    /// The database at `url` (`postgres://user:password@host:port/db`, or
    /// `postgresql://…`; libpq's query parameters such as `sslmode` are
    /// not supported beyond what `tokio-postgres` reads).
    pub fn new(url: impl Into<String>) -> Self {
        PostgresStoreConfig {
            url: url.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            history_retention: DEFAULT_HISTORY_RETENTION,
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The deployment namespace: its tables live in the PostgreSQL schema
    /// [`PostgresStoreConfig::schema`], so namespaces sharing a database
    /// never see each other's leases.
    pub fn namespace(mut self, ns: &str) -> Self {
        ns.clone_into(&mut self.namespace);
        self
    }

    /// How long finished leases stay in history (by the database's clock).
    pub fn history_retention(mut self, d: Duration) -> Self {
        self.history_retention = d;
        self
    }

    /// Most connections the pool opens (at least 1).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// How long opening a connection, or waiting for a free one, may take
    /// before a request fails with `StoreError::Unavailable`.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The URL, password hidden.
    pub fn redacted_url(&self) -> String {
        crate::redact(&self.url)
    }

    /// The PostgreSQL schema of the namespace: `containerlease_` and the
    /// namespace in lowercase letters, digits and `_`. A namespace that
    /// needed changing for that (other characters, upper case, too long)
    /// gets a hash of its exact text appended, so two namespaces never
    /// share a schema.
    pub fn schema(&self) -> String {
        schema_name(&self.namespace)
    }
}

/// PostgreSQL's longest identifier, in bytes.
const MAX_IDENTIFIER: usize = 63;

/// The schema for `namespace` (see [`PostgresStoreConfig::schema`]).
pub(crate) fn schema_name(namespace: &str) -> String {
    const PREFIX: &str = "containerlease_";
    let clean: String = namespace
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            _ => '_',
        })
        .collect();
    let room = MAX_IDENTIFIER - PREFIX.len();
    if clean == namespace && !clean.is_empty() && clean.len() <= room {
        return format!("{PREFIX}{clean}");
    }
    let hash = format!("_{:016x}", fnv1a(namespace.as_bytes()));
    let keep: String = clean.chars().take(room - hash.len()).collect();
    format!("{PREFIX}{keep}{hash}")
}

/// FNV-1a, 64 bits: a hash that is the same in every build (names, lock keys).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_safe_identifiers_and_distinct() {
        assert_eq!(schema_name("prod"), "containerlease_prod");
        assert_eq!(schema_name("a_b"), "containerlease_a_b");
        let dashed = schema_name("a-b");
        assert!(dashed.starts_with("containerlease_a_b_"), "{dashed}");
        assert_ne!(dashed, schema_name("a_b"));
        assert_ne!(schema_name("A"), schema_name("a"));
        let hostile = schema_name("x\"; DROP SCHEMA public; --ü");
        let long = schema_name(&"n".repeat(500));
        for name in [&dashed, &hostile, &long, &schema_name("")] {
            assert!(name.len() <= MAX_IDENTIFIER, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let config = PostgresStoreConfig::new("postgres://ada:hunter2@db/x");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
