//! Lease identifiers.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The prefix every lease id starts with, as in the seed (`container-…`).
pub const LEASE_ID_PREFIX: &str = "container-";

/// Random characters in a newly generated id (about 119 bits of entropy).
const RANDOM_LEN: usize = 20;
/// Shortest random part accepted when parsing.
const MIN_RANDOM_LEN: usize = 16;
/// Longest random part accepted when parsing.
const MAX_RANDOM_LEN: usize = 64;

/// An opaque, unguessable lease id: `container-` followed by random
/// URL-safe characters. Cheap to clone.
///
/// ```
/// use lease_core::LeaseId;
/// let id = LeaseId::generate();
/// assert!(id.as_str().starts_with("container-"));
/// assert_eq!(id.as_str().parse::<LeaseId>().unwrap(), id);
/// assert!("container-short".parse::<LeaseId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(Arc<str>);

/// Why a text is not a lease id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a lease id (expected `container-` and 16 to 64 letters, digits, `-` or `_`)")]
pub struct InvalidLeaseId(pub String);

impl LeaseId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let random = random_lowercase(RANDOM_LEN);
        LeaseId(format!("{LEASE_ID_PREFIX}{random}").into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first `len` characters of the random part, for compact display.
    pub fn short(&self, len: usize) -> &str {
        let random = &self.0[LEASE_ID_PREFIX.len()..];
        &random[..len.min(random.len())]
    }
}

impl FromStr for LeaseId {
    type Err = InvalidLeaseId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let random = text
            .strip_prefix(LEASE_ID_PREFIX)
            .ok_or_else(|| InvalidLeaseId(text.to_owned()))?;
        let valid_len = (MIN_RANDOM_LEN..=MAX_RANDOM_LEN).contains(&random.len());
        let valid_chars = random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid_len && valid_chars {
            Ok(LeaseId(text.into()))
        } else {
            Err(InvalidLeaseId(text.to_owned()))
        }
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for LeaseId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LeaseId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `len` random lowercase letters and digits (lease and pool slot ids).
pub(crate) fn random_lowercase(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(|byte| char::from(byte).to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_and_valid() {
        let a = LeaseId::generate();
        let b = LeaseId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), LEASE_ID_PREFIX.len() + RANDOM_LEN);
        assert_eq!(a.short(12).len(), 12);
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "",
            "container-",
            "lease-abcdefghijklmnopq",
            "container-abc/defghijklmnopqr",
            "container-ääääääääääääääää",
        ] {
            assert!(bad.parse::<LeaseId>().is_err(), "{bad}");
        }
    }
}
