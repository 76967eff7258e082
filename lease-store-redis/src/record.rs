//! How a lease is stored and read back: its JSON record, checked against the
//! key it came from, the fields an active lease's hash keeps beside it, and
//! what the scripts that write a lease answer.

use lease_core::{Lease, LeaseId, StoreError};
use redis::{FromRedisValue, ParsingError, RedisWrite, ToRedisArgs, Value};

use crate::error::{RedisStoreError, corrupt, other};
use crate::keys::{ceil_millis, member, nanos};

/// The lease as JSON, the record every key holds.
pub(crate) fn encode(lease: &Lease) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(lease).map_err(|error| StoreError::Other {
        operation: "encode a lease".to_owned(),
        source: Box::new(error),
    })
}

/// The lease recorded at `key`, which must be lease `id`;
/// [`StoreError::Corrupt`] with the key otherwise.
pub(crate) fn decode(key: String, data: &[u8], id: &str) -> Result<Lease, StoreError> {
    let lease: Lease = match serde_json::from_slice(data) {
        Ok(lease) => lease,
        Err(error) => return Err(corrupt(key, error)),
    };
    if lease.id.as_str() != id {
        let found = lease.id.to_string();
        let expected = id.to_owned();
        return Err(corrupt(key, RedisStoreError::WrongId { expected, found }));
    }
    Ok(lease)
}

/// A counter field of the hash at `key` (0 when absent);
/// [`StoreError::Corrupt`] with the key when it is not a number.
pub(crate) fn counter<N: std::str::FromStr + Default>(
    key: &str,
    value: Option<String>,
) -> Result<N, StoreError> {
    match value {
        Some(text) => text
            .parse()
            .map_err(|_| corrupt(key.to_owned(), RedisStoreError::NotANumber(text))),
        None => Ok(N::default()),
    }
}

/// The fields of an active lease's hash, in the order `insert.lua` and
/// `update.lua` take them as arguments: record JSON, revision, due time
/// (ms, rounded up, and ns), index member, owner.
pub(crate) struct ActiveFields {
    data: Vec<u8>,
    revision: u64,
    due_ms: i64,
    due_ns: String,
    member: String,
    owner: String,
}

impl ActiveFields {
    /// The fields `lease` is stored with.
    pub(crate) fn of(lease: &Lease) -> Result<Self, StoreError> {
        let due = lease.due_at();
        Ok(ActiveFields {
            data: encode(lease)?,
            revision: lease.revision,
            due_ms: ceil_millis(due),
            due_ns: nanos(due).to_string(),
            member: member(lease.created_at, &lease.id),
            owner: lease.owner.clone(),
        })
    }
}

impl ToRedisArgs for ActiveFields {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        self.data.write_redis_args(out);
        self.revision.write_redis_args(out);
        self.due_ms.write_redis_args(out);
        self.due_ns.write_redis_args(out);
        self.member.write_redis_args(out);
        self.owner.write_redis_args(out);
    }
}

/// What a script that writes one lease answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done.
    Ok,
    /// No active lease with that id.
    NotFound,
    /// The stored revision is not the expected one.
    Conflict,
    /// The id is taken (insert).
    Exists,
}

impl Outcome {
    /// `Ok(())`, or the error the outcome means for lease `id`; `expected`
    /// is the revision a compare-and-set expected (`None` for a script that
    /// compares none, where a conflict is an unexpected reply).
    pub(crate) fn check(self, id: &LeaseId, expected: Option<u64>) -> Result<(), StoreError> {
        match (self, expected) {
            (Outcome::Ok, _) => Ok(()),
            (Outcome::NotFound, _) => Err(StoreError::NotFound(id.clone())),
            (Outcome::Conflict, Some(expected)) => Err(StoreError::Conflict {
                id: id.clone(),
                expected,
            }),
            (Outcome::Conflict, None) => Err(other(
                "check a script's reply",
                RedisStoreError::UnexpectedReply("conflict".to_owned()),
            )),
            (Outcome::Exists, _) => Err(StoreError::AlreadyExists(id.clone())),
        }
    }
}

impl FromRedisValue for Outcome {
    fn from_redis_value(value: Value) -> Result<Self, ParsingError> {
        let text = String::from_redis_value_ref(&value)
            .map_err(|_| ParsingError::from(format!("unexpected script reply {value:?}")))?;
        match text.as_str() {
            "ok" => Ok(Outcome::Ok),
            "notfound" => Ok(Outcome::NotFound),
            "conflict" => Ok(Outcome::Conflict),
            "exists" => Ok(Outcome::Exists),
            _ => Err(format!("unexpected script reply `{text}`").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_parse_and_map() {
        let parse = |text: &str| Outcome::from_redis_value(Value::SimpleString(text.to_owned()));
        assert_eq!(parse("ok").ok(), Some(Outcome::Ok));
        assert_eq!(parse("conflict").ok(), Some(Outcome::Conflict));
        assert!(parse("maybe").is_err());
        assert!(Outcome::from_redis_value(Value::Int(1)).is_err());
        let id = LeaseId::generate();
        assert!(matches!(
            Outcome::Conflict.check(&id, Some(4)),
            Err(StoreError::Conflict { expected: 4, .. })
        ));
        assert!(matches!(
            Outcome::Conflict.check(&id, None),
            Err(StoreError::Other { .. })
        ));
        assert!(matches!(
            Outcome::NotFound.check(&id, None),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            Outcome::Exists.check(&id, None),
            Err(StoreError::AlreadyExists(_))
        ));
        assert!(Outcome::Ok.check(&id, Some(4)).is_ok());
    }

    #[test]
    fn counters_default_to_zero_and_report_their_key() {
        assert_eq!(counter::<u64>("k", None).ok(), Some(0));
        assert_eq!(counter::<i64>("k", Some("-5".into())).ok(), Some(-5));
        match counter::<u64>("usage-key", Some("lots".into())) {
            Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "usage-key"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
