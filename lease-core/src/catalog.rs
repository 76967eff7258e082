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
//!
//! Beyond its limits, an offering says how its containers are confined
//! (see [`Confinement`]): on which network (`network = "egress"`, the
//! default, `"isolated"` or `"none"`), whether the root filesystem is
//! read-only with a sized scratch tmpfs at `/tmp` (`read_only = true`,
//! `scratch_mb = 64`), which non-root user runs (`user = "1000:1000"`) and
//! how large the writable layer may grow (`disk_mb`, where the engine's
//! storage can enforce it):
//!
//! ```
//! use lease_core::Catalog;
//! use lease_core::runtime::NetworkMode;
//! let catalog = Catalog::from_toml(r#"
//!     [[offering]]
//!     key = "locked"
//!     image = "alpine:3.20"
//!     hourly_rate = "0.01"
//!     cpus = "0.5"
//!     memory_mb = 256
//!     network = "isolated"
//!     read_only = true
//!     scratch_mb = 32
//!     user = "1000:1000"
//! "#).unwrap();
//! let confinement = catalog.get("locked").unwrap().confinement();
//! assert_eq!(confinement.network, NetworkMode::Isolated);
//! assert_eq!(confinement.scratch_bytes, Some(32 << 20));
//! assert_eq!(confinement.user.as_deref(), Some("1000:1000"));
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::money::{Money, ParseAmountError, parse_nanos};
use crate::runtime::{Confinement, NetworkMode};

/// Default booking when a request names no duration (the seed's 2 hours).
pub const DEFAULT_MINUTES: u32 = 120;
/// Default longest lifetime of a lease, extensions included.
pub const DEFAULT_MAX_MINUTES: u32 = 480;
/// Scratch size of a read-only offering that names none, in MiB.
pub const DEFAULT_SCRATCH_MB: u32 = 64;

/// Bytes in a MiB.
const MIB: i64 = 1024 * 1024;

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
    /// The network its containers are on (default `egress`).
    #[serde(default)]
    pub network: NetworkMode,
    /// Whether the root filesystem is read-only; the container then writes
    /// only to its scratch tmpfs at `/tmp`.
    #[serde(default)]
    pub read_only: bool,
    /// Size of the scratch tmpfs of a read-only offering, in MiB (default
    /// [`DEFAULT_SCRATCH_MB`]). It is memory, so at most `memory_mb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_mb: Option<u32>,
    /// A non-root numeric `uid` or `uid:gid` to run as, instead of the
    /// image's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Limit of the container's writable layer in MiB, where the engine's
    /// storage driver can enforce one (lease-docker refuses it otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u32>,
    /// How many started containers of this offering the engine keeps
    /// ready for the next provisions (a warm pool, see [`crate::pool`]);
    /// 0, the default, keeps none. At most [`MAX_POOL`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pool: u32,
    /// Where a cluster runtime may place its containers: Swarm placement
    /// constraints, each `<attribute>==<value>` or `<attribute>!=<value>`
    /// over `node.id`, `node.hostname`, `node.role`, `node.platform.os`,
    /// `node.platform.arch`, `node.labels.<label>` or
    /// `engine.labels.<label>` (`["node.labels.gpu==true"]`). Only the
    /// Swarm runtime places containers; the single-engine Docker runtime
    /// refuses a catalog that has any (see [`Catalog::constrained`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
}

/// The largest warm pool one offering may ask for.
pub const MAX_POOL: u32 = 256;

/// The most placement constraints one offering may have.
pub const MAX_CONSTRAINTS: usize = 32;

/// Node attributes a placement constraint may test (besides
/// `node.labels.<label>` and `engine.labels.<label>`).
const CONSTRAINT_ATTRIBUTES: [&str; 5] = [
    "node.id",
    "node.hostname",
    "node.role",
    "node.platform.os",
    "node.platform.arch",
];

/// Checks one placement constraint: `<attribute>==<value>` or
/// `<attribute>!=<value>`, a known attribute, a value without spaces or
/// control characters.
fn check_constraint(constraint: &str) -> Result<(), String> {
    let problem = || {
        format!(
            "constraint `{constraint}` must be `<attribute>==<value>` or `<attribute>!=<value>` \
             over node.id, node.hostname, node.role, node.platform.os, node.platform.arch, \
             node.labels.<label> or engine.labels.<label>"
        )
    };
    let (attribute, value) = constraint
        .split_once("==")
        .or_else(|| constraint.split_once("!="))
        .ok_or_else(problem)?;
    let (attribute, value) = (attribute.trim(), value.trim());
    let label = |prefix: &str| {
        attribute
            .strip_prefix(prefix)
            .is_some_and(|name| !name.is_empty() && !name.contains(char::is_whitespace))
    };
    let known = CONSTRAINT_ATTRIBUTES.contains(&attribute)
        || label("node.labels.")
        || label("engine.labels.");
    let value_ok = !value.is_empty()
        && !value.contains("==")
        && !value.contains("!=")
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if known && value_ok {
        Ok(())
    } else {
        Err(problem())
    }
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl Offering {
    /// The CPU limit as a number of CPUs, for display (the limit itself is
    /// kept exactly in [`Offering::nano_cpus`]): `0.5` for 500,000,000.
    pub fn cpus(&self) -> f64 {
        // Both operands are exact in an f64 (below 2^53), and one division
        // rounds correctly: the same value as parsing the decimal text.
        self.nano_cpus as f64 / 1e9
    }

    /// How its containers are confined: network, read-only root with its
    /// scratch, user, disk and placement, with the defaults filled in.
    pub fn confinement(&self) -> Confinement {
        let scratch_mb = self
            .read_only
            .then(|| self.scratch_mb.unwrap_or(DEFAULT_SCRATCH_MB));
        Confinement {
            network: self.network,
            read_only_root: self.read_only,
            scratch_bytes: scratch_mb.map(|mb| i64::from(mb) * MIB),
            user: self.user.clone(),
            disk_bytes: self.disk_mb.map(|mb| i64::from(mb) * MIB),
            placement: self.constraints.clone(),
        }
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
    /// An offering breaks a rule (empty key, duplicate, zero limits, an
    /// unknown field, a network, user or size it cannot have, …).
    #[error("catalog offering `{key}`: {problem}")]
    Invalid {
        /// The offering's key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The file: a list of `[[offering]]` tables, each read on its own so that
/// a problem in one names that offering.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    offering: Vec<toml::Table>,
}

/// Reads the `index`th offering table; its problems are
/// [`CatalogError::Invalid`] naming its key (or `#<n>` without one).
fn offering_from_table(index: usize, table: toml::Table) -> Result<Offering, CatalogError> {
    let key = match table.get("key").and_then(toml::Value::as_str) {
        Some(key) => key.to_owned(),
        None => format!("#{}", index + 1),
    };
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|error| {
        let field = error.path().to_string();
        let message = error.inner().message();
        if field == "." {
            invalid(&key, message)
        } else {
            invalid(&key, &format!("`{field}`: {message}"))
        }
    })
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
        let offerings = file
            .offering
            .into_iter()
            .enumerate()
            .map(|(index, table)| offering_from_table(index, table))
            .collect::<Result<Vec<_>, _>>()?;
        Catalog::new(offerings)
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

    /// The offerings with placement constraints, which only a cluster
    /// runtime (Swarm) can honour. A single-engine runtime's caller
    /// refuses to start with any: a constraint says where a lease *must*
    /// run (`node.labels.gpu==true`), and ignoring it would run the lease
    /// where that does not hold.
    ///
    /// ```
    /// use lease_core::Catalog;
    /// let catalog = Catalog::from_toml(r#"
    ///     [[offering]]
    ///     key = "gpu"
    ///     image = "cuda:12"
    ///     hourly_rate = "1"
    ///     cpus = "4"
    ///     memory_mb = 8192
    ///     constraints = ["node.labels.gpu==true", "node.role!=manager"]
    /// "#).unwrap();
    /// assert_eq!(catalog.constrained().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["gpu"]);
    /// assert!(Catalog::default().constrained().next().is_none());
    /// ```
    pub fn constrained(&self) -> impl Iterator<Item = &Offering> {
        self.offerings()
            .filter(|offering| !offering.constraints.is_empty())
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
            network: NetworkMode::default(),
            read_only: false,
            scratch_mb: None,
            user: None,
            disk_mb: None,
            pool: 0,
            constraints: Vec::new(),
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
    let checks: [(bool, &str); 9] = [
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
        (offering.pool <= MAX_POOL, "pool must be at most 256"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, problem)) => Err(invalid(key, problem)),
        None => validate_confinement(offering),
    }
}

/// The confinement fields: a scratch only with a read-only root and no
/// larger than the memory it uses, a non-root numeric user, a disk limit
/// above zero.
fn validate_confinement(offering: &Offering) -> Result<(), CatalogError> {
    let key = offering.key.as_str();
    if offering.scratch_mb.is_some() && !offering.read_only {
        return Err(invalid(
            key,
            "scratch_mb needs read_only = true (the scratch is where a read-only root writes)",
        ));
    }
    if let Some(scratch_mb) = offering.scratch_mb
        && !(1..=offering.memory_mb).contains(&scratch_mb)
    {
        return Err(invalid(
            key,
            "scratch_mb must be within 1..=memory_mb (the scratch is a tmpfs: it uses the container's memory)",
        ));
    }
    if let Some(user) = &offering.user {
        check_user(user).map_err(|problem| invalid(key, &problem))?;
    }
    if offering.disk_mb == Some(0) {
        return Err(invalid(key, "disk_mb must be above zero"));
    }
    if offering.constraints.len() > MAX_CONSTRAINTS {
        return Err(invalid(key, "at most 32 constraints"));
    }
    for constraint in &offering.constraints {
        check_constraint(constraint).map_err(|problem| invalid(key, &problem))?;
    }
    Ok(())
}

/// Largest uid or gid accepted (Linux ids are 32-bit; the top half is
/// reserved or invalid, `-1` meaning "unchanged").
const MAX_ID: u32 = i32::MAX as u32;

/// Checks `user`: a decimal `uid` or `uid:gid`, the uid not 0 (root).
/// Names are refused: they depend on the image's `/etc/passwd`, and a
/// missing name only fails when a lease starts.
fn check_user(user: &str) -> Result<(), String> {
    let format =
        || format!("user `{user}` must be a numeric `uid` or `uid:gid` such as \"1000:1000\"");
    let id = |text: &str| {
        if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<u32>().ok().filter(|id| *id <= MAX_ID)
    };
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (id(uid), Some(id(gid))),
        None => (id(user), None),
    };
    match (uid, gid) {
        (Some(0), _) => Err(format!(
            "user `{user}` is root (uid 0); leave `user` out to run as the image's user"
        )),
        (Some(_), None | Some(Some(_))) => Ok(()),
        _ => Err(format()),
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

    const BASE: &str =
        "[[offering]]\nkey='box'\nimage='x'\nhourly_rate='0.01'\ncpus=1\nmemory_mb=128\n";

    fn parse_with(extra: &str) -> Result<Catalog, CatalogError> {
        Catalog::from_toml(&format!("{BASE}{extra}\n"))
    }

    /// The problem of an offering that must be refused, or a panic.
    fn problem_of(extra: &str) -> String {
        match parse_with(extra) {
            Err(CatalogError::Invalid { key, problem }) => {
                assert_eq!(key, "box", "{extra}");
                problem
            }
            other => panic!("{extra}: expected CatalogError::Invalid, got {other:?}"),
        }
    }

    #[test]
    fn confinement_defaults_to_the_egress_network_and_nothing_else() {
        let catalog = parse_with("").unwrap();
        let confinement = catalog.get("box").unwrap().confinement();
        assert_eq!(confinement, Confinement::default());
        assert_eq!(confinement.network, NetworkMode::Egress);
        for offering in Catalog::default().offerings() {
            assert_eq!(offering.confinement(), Confinement::default());
        }
    }

    #[test]
    fn confinement_fields_are_read() {
        let catalog = parse_with(
            "network='none'\nread_only=true\nscratch_mb=16\nuser='1000:1001'\ndisk_mb=512",
        )
        .unwrap();
        let confinement = catalog.get("box").unwrap().confinement();
        assert_eq!(
            confinement,
            Confinement {
                network: NetworkMode::None,
                read_only_root: true,
                scratch_bytes: Some(16 << 20),
                user: Some("1000:1001".into()),
                disk_bytes: Some(512 << 20),
                placement: Vec::new(),
            }
        );
        let default_scratch = parse_with("read_only=true\nnetwork='isolated'").unwrap();
        let confinement = default_scratch.get("box").unwrap().confinement();
        assert_eq!(confinement.network, NetworkMode::Isolated);
        assert_eq!(
            confinement.scratch_bytes,
            Some(i64::from(DEFAULT_SCRATCH_MB) << 20)
        );
        assert!(parse_with("user='4242'").is_ok());
        assert!(parse_with("user='1000:0'").is_ok());
    }

    #[test]
    fn bad_confinement_is_an_invalid_offering_naming_the_problem() {
        let cases = [
            ("network='bridge'", "unknown variant `bridge`"),
            ("network='host'", "unknown variant `host`"),
            ("network=1", "network"),
            ("read_only='yes'", "read_only"),
            ("scratch_mb=8", "scratch_mb needs read_only = true"),
            ("read_only=true\nscratch_mb=0", "scratch_mb must be within"),
            (
                "read_only=true\nscratch_mb=129",
                "scratch_mb must be within",
            ),
            ("read_only=true\nscratch_mb=-1", "scratch_mb"),
            ("user='0'", "root"),
            ("user='0:1000'", "root"),
            ("user='root'", "numeric"),
            ("user='1000:'", "numeric"),
            ("user=':1000'", "numeric"),
            ("user=''", "numeric"),
            ("user='1000:1000:1'", "numeric"),
            ("user='-1'", "numeric"),
            ("user='+5'", "numeric"),
            ("user='4294967295'", "numeric"),
            ("user=' 1000'", "numeric"),
            ("user=1000", "user"),
            ("disk_mb=0", "disk_mb must be above zero"),
            ("disk_mb=-5", "disk_mb"),
            ("disk_mb=99999999999", "disk_mb"),
            ("privileged=true", "unknown field `privileged`"),
            ("constraints=['gpu']", "constraint `gpu`"),
            ("constraints=['node.labels.==x']", "constraint"),
            ("constraints=['node.labels.gpu==']", "constraint"),
            ("constraints=['node.color==red']", "constraint"),
            ("constraints=['node.hostname==a b']", "constraint"),
            ("constraints=['node.id==a==b']", "constraint"),
        ];
        for (extra, expected) in cases {
            let problem = problem_of(extra);
            assert!(
                problem.contains(expected),
                "{extra}: `{problem}` should mention `{expected}`"
            );
        }
    }

    #[test]
    fn placement_constraints_are_checked_and_kept() {
        for good in [
            "node.labels.gpu==true",
            "node.role!=manager",
            "node.hostname == worker-1",
            "engine.labels.zone==eu-1",
            "node.platform.arch==x86_64",
        ] {
            assert_eq!(check_constraint(good), Ok(()), "{good}");
        }
        let text = format!(
            "{BASE}[[offering]]\nkey='gpu'\nimage='x'\nhourly_rate='1'\ncpus=1\nmemory_mb=1\nconstraints=['node.labels.gpu==true']\n"
        );
        let catalog = Catalog::from_toml(&text).expect("valid");
        assert_eq!(
            catalog.get("gpu").map(|o| o.constraints.clone()),
            Some(vec!["node.labels.gpu==true".to_owned()])
        );
        assert_eq!(catalog.constrained().count(), 1);
    }

    #[test]
    fn an_offering_without_a_key_is_named_by_its_position() {
        let text = format!("{BASE}[[offering]]\nimage='x'\nhourly_rate='1'\ncpus=1\nmemory_mb=1\n");
        match Catalog::from_toml(&text) {
            Err(CatalogError::Invalid { key, problem }) => {
                assert_eq!(key, "#2");
                assert!(problem.contains("key"), "{problem}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}
