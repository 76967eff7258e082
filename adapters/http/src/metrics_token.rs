//! The scrape token of `GET /metrics`: a bearer token that reads the
//! metrics and nothing else, so a Prometheus server needs no admin token.
//!
//! Its file holds the token itself (one line, surrounding whitespace
//! ignored): the same file Prometheus reads with
//! `authorization: { credentials_file: … }`, so there is one secret to keep
//! (mode `0600` or `0640`). Only its SHA-256 is kept in memory, and it is
//! never logged.
//!
//! ```
//! use lease_http::auth::MetricsToken;
//!
//! let scrape = MetricsToken::new("prom-3f9a1c7e5b2d4a60").unwrap();
//! assert!(scrape.matches("prom-3f9a1c7e5b2d4a60"));
//! assert!(!scrape.matches("prom-3f9a1c7e5b2d4a61"));
//! assert!(MetricsToken::new("short").is_err());
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

/// Fewest characters a scrape token may have.
const MIN_LEN: usize = 16;
/// Most characters a scrape token may have.
const MAX_LEN: usize = 1024;

/// Why a metrics token (file) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsTokenError {
    /// The file could not be read.
    #[error("cannot read the metrics token file {path}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The token breaks a rule (the message never contains the token).
    #[error(
        "the metrics token must be 16-1024 visible ASCII characters without spaces \
         (e.g. the output of `openssl rand -hex 32`)"
    )]
    Invalid,
}

/// The scrape token in effect: a cheap-to-clone handle whose clones all see
/// a [`MetricsToken::reload_from`] at once.
#[derive(Clone)]
pub struct MetricsToken {
    hash: Arc<ArcSwap<[u8; 32]>>,
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsToken(…)")
    }
}

/// The SHA-256 of `token` after checking it.
fn digest(token: &str) -> Result<[u8; 32], MetricsTokenError> {
    let token = token.trim();
    let length_ok = (MIN_LEN..=MAX_LEN).contains(&token.len());
    if !length_ok || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MetricsTokenError::Invalid);
    }
    Ok(Sha256::digest(token.as_bytes()).into())
}

fn read(path: &Path) -> Result<[u8; 32], MetricsTokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| MetricsTokenError::Read {
        path: path.display().to_string(),
        source,
    })?;
    digest(&text)
}

impl MetricsToken {
    /// A scrape token (surrounding whitespace ignored).
    pub fn new(token: &str) -> Result<Self, MetricsTokenError> {
        Ok(MetricsToken {
            hash: Arc::new(ArcSwap::from_pointee(digest(token)?)),
        })
    }

    /// The token in the file at `path`.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, MetricsTokenError> {
        Ok(MetricsToken {
            hash: Arc::new(ArcSwap::from_pointee(read(path.as_ref())?)),
        })
    }

    /// Re-reads the file at `path` and puts its token in effect; `Ok(true)`
    /// if the token changed. A file that cannot be read or holds no valid
    /// token changes nothing.
    pub fn reload_from(&self, path: impl AsRef<Path>) -> Result<bool, MetricsTokenError> {
        let next = read(path.as_ref())?;
        let before = self.hash.swap(Arc::new(next));
        Ok(*before != next)
    }

    /// Whether `presented` is the scrape token.
    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Comparing digests: how long a mismatch takes tells nothing of the token.
        presented == **self.hash.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_trimmed() {
        let token = MetricsToken::new("  abcdefghijklmnop\n").expect("valid");
        assert!(token.matches("abcdefghijklmnop"));
        assert!(!token.matches(" abcdefghijklmnop"));
        for bad in [
            "",
            "short",
            "has a space inside!",
            "tab\tinside-0123456789",
            "é-0123456789abcdef",
        ] {
            assert!(MetricsToken::new(bad).is_err(), "{bad:?}");
        }
        assert!(MetricsToken::new(&"x".repeat(MAX_LEN + 1)).is_err());
        assert_eq!(format!("{token:?}"), "MetricsToken(…)");
    }

    #[test]
    fn a_reload_swaps_the_token_and_a_bad_file_keeps_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("metrics-token");
        std::fs::write(&path, "first-token-0123456789\n").expect("write");
        let token = MetricsToken::from_path(&path).expect("valid file");
        let seen_by_server = token.clone();
        assert!(!token.reload_from(&path).expect("same file"));

        std::fs::write(&path, "second-token-0123456789").expect("write");
        assert!(token.reload_from(&path).expect("new token"));
        assert!(seen_by_server.matches("second-token-0123456789"));
        assert!(!seen_by_server.matches("first-token-0123456789"));

        std::fs::write(&path, "").expect("write");
        let error = token.reload_from(&path).expect_err("empty file");
        assert!(!error.to_string().contains("second"), "{error}");
        std::fs::remove_file(&path).expect("remove");
        assert!(matches!(
            token.reload_from(&path),
            Err(MetricsTokenError::Read { .. })
        ));
        assert!(seen_by_server.matches("second-token-0123456789"));
    }
}
