//! The catalog of offerings: data, not code.
//!
//! Each offering has a key (`alpine`, `ubuntu`, …), an image, a keep-alive
//! command, resource limits and an hourly rate. The built-in catalog mirrors
//! the seed (alpine $0.01/h, ubuntu $0.04/h); deployments load their own
//! from TOML:
//!
//! ```
//! use lease_core::Catalog;
//! let catalog = Catalog::from_toml(r#"
//!     [[offering]]
//!     key = "alpine"
//!     image = "alpine:3.20"
//!     hourly_rate = "0.01"
//!     cpus = "0.5"
//!     memory_mb = 256
//! "#).unwrap();
//! let alpine = catalog.get("alpine").unwrap();
//! assert_eq!(alpine.nano_cpus, 500_000_000);
//! assert_eq!(alpine.command, ["sleep", "infinity"]);
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::money::{Money, ParseAmountError, parse_nanos};

/// Default booking when a request names no duration (the seed's 2 hours).
pub const DEFAULT_MINUTES: u32 = 120;
/// Default longest lifetime of a lease, extensions included.
pub const DEFAULT_MAX_MINUTES: u32 = 480;

/// One thing that can be rented.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offering {
    /// The key clients ask for (the seed's `imageType`).
    pub key: String,
    /// Image reference the container runs.
    pub image: String,
    /// Command that keeps the container up as a dev environment.
    #[serde(default = "default_command")]
    pub command: Vec<String>,
    /// Price per hour.
    pub hourly_rate: Money,
    /// CPU limit in billionths of a CPU (parsed from `cpus = "0.5"`).
    #[serde(
        rename = "cpus",
        deserialize_with = "deserialize_cpus",
        serialize_with = "serialize_cpus"
    )]
    pub nano_cpus: i64,
    /// Memory limit in MiB.
    pub memory_mb: u32,
    /// Process-count limit.
    #[serde(default = "default_pids")]
    pub pids: u32,
    /// Booking when a request names no duration.
    #[serde(default = "default_minutes")]
    pub default_minutes: u32,
    /// Longest lifetime, extensions included.
    #[serde(default = "default_max_minutes")]
    pub max_minutes: u32,
}

impl Offering {
    /// The CPU limit as a number of CPUs, for display (the limit itself is
    /// kept exactly in [`Offering::nano_cpus`]): `0.5` for 500,000,000.
    pub fn cpus(&self) -> f64 {
        // Both operands are exact in an f64 (below 2^53), and one division
        // rounds correctly: the same value as parsing the decimal text.
        self.nano_cpus as f64 / 1e9
    }
}

fn default_command() -> Vec<String> {
    vec!["sleep".into(), "infinity".into()]
}
fn default_pids() -> u32 {
    256
}
fn default_minutes() -> u32 {
    DEFAULT_MINUTES
}
fn default_max_minutes() -> u32 {
    DEFAULT_MAX_MINUTES
}

fn deserialize_cpus<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Int(i64),
        Float(f64),
        Text(String),
    }
    let text = match Repr::deserialize(deserializer)? {
        Repr::Int(whole) => whole.to_string(),
        Repr::Float(number) => number.to_string(),
        Repr::Text(text) => text,
    };
    parse_nanos(&text).map_err(serde::de::Error::custom)
}

fn serialize_cpus<S: serde::Serializer>(nano_cpus: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&Money::from_nanos(*nano_cpus).to_string())
}

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read catalog {path}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not describe a catalog.
    #[error("catalog is not valid TOML for offerings")]
    Parse(#[from] toml::de::Error),
    /// An amount is not exact.
    #[error("catalog amount")]
    Amount(#[from] ParseAmountError),
    /// An offering breaks a rule (empty key, duplicate, zero limits, …).
    #[error("catalog offering `{key}`: {problem}")]
    Invalid {
        /// The offering's key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    offering: Vec<Offering>,
}

/// The offerings a deployment rents out, by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    offerings: BTreeMap<String, Offering>,
}

impl Catalog {
    /// Builds a catalog, checking each offering.
    pub fn new(offerings: impl IntoIterator<Item = Offering>) -> Result<Self, CatalogError> {
        let mut map = BTreeMap::new();
        for offering in offerings {
            validate(&offering)?;
            if map.contains_key(&offering.key) {
                return Err(invalid(&offering.key, "appears twice"));
            }
            map.insert(offering.key.clone(), offering);
        }
        if map.is_empty() {
            return Err(invalid("", "the catalog has no offerings"));
        }
        Ok(Catalog { offerings: map })
    }

    /// Parses a catalog from TOML (`[[offering]]` tables).
    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = toml::from_str(text)?;
        Catalog::new(file.offering)
    }

    /// Reads a catalog from a TOML file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, CatalogError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Catalog::from_toml(&text)
    }

    /// The offering with `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Offering> {
        self.offerings.get(key)
    }

    /// All offerings, by key.
    pub fn offerings(&self) -> impl Iterator<Item = &Offering> {
        self.offerings.values()
    }

    /// The offerings' keys, by key.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.offerings.keys().map(String::as_str)
    }
}

impl Default for Catalog {
    /// The seed's offerings: alpine at $0.01/h and ubuntu (medium) at $0.04/h.
    fn default() -> Self {
        let alpine = Offering {
            key: "alpine".into(),
            image: "alpine:3.20".into(),
            command: default_command(),
            hourly_rate: Money::from_nanos(10_000_000),
            nano_cpus: 500_000_000,
            memory_mb: 256,
            pids: default_pids(),
            default_minutes: DEFAULT_MINUTES,
            max_minutes: DEFAULT_MAX_MINUTES,
        };
        let ubuntu = Offering {
            key: "ubuntu".into(),
            image: "ubuntu:24.04".into(),
            hourly_rate: Money::from_nanos(40_000_000),
            nano_cpus: 2_000_000_000,
            memory_mb: 2048,
            pids: 1024,
            ..alpine.clone()
        };
        Catalog {
            offerings: [alpine, ubuntu]
                .into_iter()
                .map(|o| (o.key.clone(), o))
                .collect(),
        }
    }
}

fn invalid(key: &str, problem: &str) -> CatalogError {
    CatalogError::Invalid {
        key: key.to_owned(),
        problem: problem.to_owned(),
    }
}

fn validate(offering: &Offering) -> Result<(), CatalogError> {
    let key = offering.key.as_str();
    let key_ok = !key.is_empty()
        && key.len() <= 63
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        });
    let checks: [(bool, &str); 8] = [
        (
            key_ok,
            "key must be 1-63 lowercase letters, digits, `-`, `_` or `.`",
        ),
        (!offering.image.trim().is_empty(), "image is empty"),
        (!offering.command.is_empty(), "command is empty"),
        (
            !offering.hourly_rate.is_negative(),
            "hourly_rate is negative",
        ),
        (offering.nano_cpus > 0, "cpus must be above zero"),
        (
            offering.memory_mb > 0 && offering.pids > 0,
            "memory_mb and pids must be above zero",
        ),
        (offering.max_minutes >= 1, "max_minutes must be at least 1"),
        (
            (1..=offering.max_minutes).contains(&offering.default_minutes),
            "default_minutes must be within 1..=max_minutes",
        ),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, problem)) => Err(invalid(key, problem)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_mirror_the_seed() {
        let catalog = Catalog::default();
        assert_eq!(
            catalog.get("alpine").unwrap().hourly_rate.to_string(),
            "0.01"
        );
        assert_eq!(
            catalog.get("ubuntu").unwrap().hourly_rate.to_string(),
            "0.04"
        );
    }

    #[test]
    fn rejects_bad_catalogs() {
        assert!(Catalog::from_toml("").is_err());
        let dup = r#"
            [[offering]]
            key = "a"
            image = "x"
            hourly_rate = 0.01
            cpus = 1
            memory_mb = 1
            [[offering]]
            key = "a"
            image = "x"
            hourly_rate = 0.01
            cpus = 1
            memory_mb = 1
        "#;
        assert!(matches!(
            Catalog::from_toml(dup),
            Err(CatalogError::Invalid { .. })
        ));
        let negative = "[[offering]]\nkey='a'\nimage='x'\nhourly_rate='-1'\ncpus=1\nmemory_mb=1\n";
        assert!(Catalog::from_toml(negative).is_err());
        let unknown = "[[offering]]\nkey='a'\nimage='x'\nhourly_rate='1'\ncpus=1\nmemory_mb=1\nprivileged=true\n";
        assert!(Catalog::from_toml(unknown).is_err());
    }

    #[test]
    fn float_rates_are_read_exactly() {
        let c = Catalog::from_toml(
            "[[offering]]\nkey='a'\nimage='x'\nhourly_rate=0.04\ncpus=0.25\nmemory_mb=64\n",
        )
        .unwrap();
        let a = c.get("a").unwrap();
        assert_eq!(a.hourly_rate.nanos(), 40_000_000);
        assert_eq!(a.nano_cpus, 250_000_000);
        assert_eq!(a.cpus(), 0.25);
    }
}
