//! A [`Lease`] as a table row, and the other values as PostgreSQL integers.
//!
//! Times are BIGINT nanoseconds since the Unix epoch (UTC): exact to the
//! nanosecond, cheap to index and compare, good for 1677–2262; a time
//! outside that range is refused on write (computed index columns, like a
//! claim's end, saturate instead). Money is BIGINT nano-dollars, exactly
//! [`Money::nanos`]. Statuses and end reasons are their lowercase names.

use chrono::{DateTime, Utc};
use lease_core::{EndReason, Lease, LeaseId, Money, Status, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// The lease columns in the order [`from_row`] reads and [`params`] binds.
pub(crate) const COLUMNS: &str = "id, owner, offering, container_id, status, created_at, \
     expires_at, ended_at, end_reason, hourly_rate, estimated_cost, final_cost, error, \
     provision_attempts, removal_failures, revision, nano_cpus, memory_mb";

/// `$1, $2, …` for [`COLUMNS`].
pub(crate) const PLACEHOLDERS: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18";

/// How many values [`params`] binds.
pub(crate) const PARAMS: usize = 18;

/// The database's clock in nanoseconds since the epoch (exact to its
/// microsecond): what claims, `next_due` and retention compare with.
pub(crate) const NOW_NANOS: &str = "((extract(epoch from clock_timestamp()) * 1000000000)::bigint)";

/// A value to bind.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Borrows bound values the way the driver takes them.
pub(crate) fn refs(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|value| value.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// A time outside what the store can keep exactly.
#[derive(Debug, thiserror::Error)]
#[error("{0} is outside the years 1677–2262 that the PostgreSQL store keeps to the nanosecond")]
pub(crate) struct TimeOutOfRange(DateTime<Utc>);

/// `at` in nanoseconds since the epoch, or a typed error naming `operation`.
pub(crate) fn nanos(at: DateTime<Utc>, operation: &'static str) -> Result<i64, StoreError> {
    at.timestamp_nanos_opt().ok_or_else(|| StoreError::Other {
        operation: operation.to_owned(),
        source: Box::new(TimeOutOfRange(at)),
    })
}

/// `at` in nanoseconds since the epoch, saturating (for computed times such
/// as the end of a claim of unlimited length).
pub(crate) fn saturating_nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// A duration in nanoseconds, saturating.
pub(crate) fn duration_nanos(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The time `nanos` after the epoch.
pub(crate) fn time(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

fn end_reason_name(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Deleted => "deleted",
        EndReason::Expired => "expired",
        EndReason::Error => "error",
        EndReason::Exited => "exited",
    }
}

fn end_reason(name: &str) -> Option<EndReason> {
    match name {
        "deleted" => Some(EndReason::Deleted),
        "expired" => Some(EndReason::Expired),
        "error" => Some(EndReason::Error),
        "exited" => Some(EndReason::Exited),
        _ => None,
    }
}

/// A row that does not decode, as [`StoreError::Corrupt`].
fn corrupt(id: &str, what: String) -> StoreError {
    StoreError::Corrupt {
        key: format!("lease {id}"),
        source: what.into(),
    }
}

/// Reads column `index`, a decoding failure reported as corrupt.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(|error| StoreError::Corrupt {
        key: format!("column {index}"),
        source: Box::new(error),
    })
}

/// A non-negative integer column as a `u32`/`u64`/….
fn unsigned<T: TryFrom<i64>>(row: &Row, index: usize, id: &str) -> Result<T, StoreError> {
    let value: i64 = column(row, index)?;
    T::try_from(value).map_err(|_| corrupt(id, format!("column {index} holds {value}")))
}

/// The lease in a row selected with [`COLUMNS`] first.
pub(crate) fn from_row(row: &Row) -> Result<Lease, StoreError> {
    let id_text: String = column(row, 0)?;
    let id: LeaseId = id_text
        .parse()
        .map_err(|error| corrupt(&id_text, format!("bad id: {error}")))?;
    let status_text: String = column(row, 4)?;
    let status: Status = status_text
        .parse()
        .map_err(|_| corrupt(&id_text, format!("bad status `{status_text}`")))?;
    let end_reason = match column::<Option<String>>(row, 8)? {
        Some(text) => Some(
            end_reason(&text)
                .ok_or_else(|| corrupt(&id_text, format!("bad end reason `{text}`")))?,
        ),
        None => None,
    };
    Ok(Lease {
        id,
        owner: column(row, 1)?,
        offering: column(row, 2)?,
        container_id: column(row, 3)?,
        status,
        created_at: time(column(row, 5)?),
        expires_at: time(column(row, 6)?),
        ended_at: column::<Option<i64>>(row, 7)?.map(time),
        end_reason,
        hourly_rate: Money::from_nanos(column(row, 9)?),
        estimated_cost: Money::from_nanos(column(row, 10)?),
        final_cost: column::<Option<i64>>(row, 11)?.map(Money::from_nanos),
        error: column(row, 12)?,
        provision_attempts: unsigned(row, 13, &id_text)?,
        removal_failures: unsigned(row, 14, &id_text)?,
        revision: unsigned(row, 15, &id_text)?,
        nano_cpus: column(row, 16)?,
        memory_mb: unsigned(row, 17, &id_text)?,
    })
}

/// Decodes every row.
pub(crate) fn leases(rows: &[Row]) -> Result<Vec<Lease>, StoreError> {
    rows.iter().map(from_row).collect()
}

/// The values of [`COLUMNS`] for `lease`, stored with `revision`.
pub(crate) fn params(
    lease: &Lease,
    revision: u64,
    operation: &'static str,
) -> Result<Vec<Param>, StoreError> {
    let revision = i64::try_from(revision).map_err(|error| StoreError::Other {
        operation: operation.to_owned(),
        source: Box::new(error),
    })?;
    Ok(vec![
        Box::new(lease.id.as_str().to_owned()),
        Box::new(lease.owner.clone()),
        Box::new(lease.offering.clone()),
        Box::new(lease.container_id.clone()),
        Box::new(lease.status.as_str()),
        Box::new(nanos(lease.created_at, operation)?),
        Box::new(nanos(lease.expires_at, operation)?),
        Box::new(lease.ended_at.map(|at| nanos(at, operation)).transpose()?),
        Box::new(lease.end_reason.map(end_reason_name)),
        Box::new(lease.hourly_rate.nanos()),
        Box::new(lease.estimated_cost.nanos()),
        Box::new(lease.final_cost.map(Money::nanos)),
        Box::new(lease.error.clone()),
        Box::new(i64::from(lease.provision_attempts)),
        Box::new(i64::from(lease.removal_failures)),
        Box::new(revision),
        Box::new(lease.nano_cpus),
        Box::new(i64::from(lease.memory_mb)),
    ])
}

/// What a compare-and-set of `lease` stores (its revision + 1) and the
/// values it binds: [`COLUMNS`] of the stored lease, then `key` (`$19`: the
/// due time or the history key, from the stored lease), then the expected
/// revision (`$20`).
pub(crate) fn cas_values(
    lease: &Lease,
    key: impl Fn(&Lease) -> i64,
    operation: &'static str,
) -> Result<(Lease, Vec<Param>), StoreError> {
    let stored = Lease {
        revision: lease.revision.saturating_add(1),
        ..lease.clone()
    };
    let mut values = params(&stored, stored.revision, operation)?;
    values.push(Box::new(key(&stored)));
    values.push(Box::new(i64::try_from(lease.revision).unwrap_or(-1)));
    Ok((stored, values))
}

/// When a lease can be claimed once no claim holds it, in nanoseconds.
pub(crate) fn due_nanos(lease: &Lease) -> i64 {
    saturating_nanos(lease.due_at())
}

/// Where a finished lease sorts in history: its end (or its expiry).
pub(crate) fn ended_nanos(lease: &Lease) -> i64 {
    saturating_nanos(lease.ended_at.unwrap_or(lease.expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reasons_round_trip() {
        for reason in [
            EndReason::Deleted,
            EndReason::Expired,
            EndReason::Error,
            EndReason::Exited,
        ] {
            assert_eq!(end_reason(end_reason_name(reason)), Some(reason));
        }
        assert!(end_reason("gone").is_none());
    }

    #[test]
    fn times_out_of_range_are_refused_or_saturate() {
        assert!(nanos(DateTime::<Utc>::MAX_UTC, "test").is_err());
        assert_eq!(saturating_nanos(DateTime::<Utc>::MAX_UTC), i64::MAX);
        assert_eq!(saturating_nanos(DateTime::<Utc>::MIN_UTC), i64::MIN);
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid");
        assert_eq!(time(nanos(at, "test").expect("in range")), at);
    }
}
