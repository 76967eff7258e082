//! A [`Lease`] as a table row, and the other values as SQLite integers.
//!
//! Times are INTEGER nanoseconds since the Unix epoch (UTC): exact, cheap to
//! index and compare, and good for 1677–2262; a time outside that range is
//! refused on write (index columns that are computed, like a claim's end,
//! saturate instead). Money is INTEGER nano-dollars, exactly
//! [`Money::nanos`]. Statuses and end reasons are their lowercase names.

use chrono::{DateTime, Utc};
use lease_core::{EndReason, Lease, LeaseId, Money, Status};
use rusqlite::types::{FromSql, FromSqlError, ToSqlOutput, Type, ValueRef};
use rusqlite::{Row, ToSql};

/// The lease columns in the order [`from_row`] reads and [`params`] binds.
pub(crate) const COLUMNS: &str = "id, owner, offering, container_id, status, created_at, \
     expires_at, ended_at, end_reason, hourly_rate, estimated_cost, final_cost, error, \
     provision_attempts, removal_failures, revision, nano_cpus, memory_mb, running_at, \
     finished_at";

/// `?1, ?2, …` for [`COLUMNS`].
pub(crate) const PLACEHOLDERS: &str =
    "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20";

/// A time outside what the store can keep exactly.
#[derive(Debug, thiserror::Error)]
#[error("{0} is outside the years 1677–2262 that the SQLite store keeps to the nanosecond")]
pub(crate) struct TimeOutOfRange(DateTime<Utc>);

/// `at` in nanoseconds since the epoch, or an error for [`rusqlite`].
pub(crate) fn nanos(at: DateTime<Utc>) -> rusqlite::Result<i64> {
    at.timestamp_nanos_opt()
        .ok_or_else(|| rusqlite::Error::ToSqlConversionFailure(Box::new(TimeOutOfRange(at))))
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

/// The time `nanos` after the epoch.
pub(crate) fn time(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

/// A status as its stored name.
pub(crate) struct StatusColumn(pub(crate) Status);

impl ToSql for StatusColumn {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

impl FromSql for StatusColumn {
    fn column_result(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        value
            .as_str()?
            .parse()
            .map(StatusColumn)
            .map_err(|error| FromSqlError::Other(Box::new(error)))
    }
}

/// An end reason that is not one.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an end reason")]
struct InvalidEndReason(String);

fn end_reason_name(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Deleted => "deleted",
        EndReason::Expired => "expired",
        EndReason::Error => "error",
        EndReason::Exited => "exited",
    }
}

fn end_reason(name: &str) -> Result<EndReason, InvalidEndReason> {
    match name {
        "deleted" => Ok(EndReason::Deleted),
        "expired" => Ok(EndReason::Expired),
        "error" => Ok(EndReason::Error),
        "exited" => Ok(EndReason::Exited),
        other => Err(InvalidEndReason(other.to_owned())),
    }
}

/// Reads a column that must decode, naming the column on failure.
fn decoded<T, E>(
    row: &Row<'_>,
    index: usize,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> rusqlite::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(index)?;
    parse(text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
    })
}

fn count(row: &Row<'_>, index: usize) -> rusqlite::Result<u32> {
    row.get(index)
}

/// The lease in a row selected with [`COLUMNS`] first.
pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Lease> {
    let end_reason_text: Option<String> = row.get(8)?;
    let end_reason = end_reason_text
        .map(|text| {
            end_reason(&text).map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(8, Type::Text, Box::new(error))
            })
        })
        .transpose()?;
    let revision: i64 = row.get(15)?;
    Ok(Lease {
        id: decoded(row, 0, |text| text.parse::<LeaseId>())?,
        owner: row.get(1)?,
        offering: row.get(2)?,
        container_id: row.get(3)?,
        status: row.get::<_, StatusColumn>(4)?.0,
        created_at: time(row.get(5)?),
        expires_at: time(row.get(6)?),
        ended_at: row.get::<_, Option<i64>>(7)?.map(time),
        end_reason,
        hourly_rate: Money::from_nanos(row.get(9)?),
        estimated_cost: Money::from_nanos(row.get(10)?),
        final_cost: row.get::<_, Option<i64>>(11)?.map(Money::from_nanos),
        error: row.get(12)?,
        provision_attempts: count(row, 13)?,
        removal_failures: count(row, 14)?,
        revision: u64::try_from(revision)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(15, revision))?,
        nano_cpus: row.get(16)?,
        memory_mb: row.get(17)?,
        running_at: row.get::<_, Option<i64>>(18)?.map(time),
        finished_at: row.get::<_, Option<i64>>(19)?.map(time),
    })
}

/// The values of [`COLUMNS`] for `lease`, stored with `revision`.
pub(crate) fn params(lease: &Lease, revision: u64) -> rusqlite::Result<Vec<Box<dyn ToSql + '_>>> {
    let revision = i64::try_from(revision)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
    Ok(vec![
        Box::new(lease.id.as_str()),
        Box::new(lease.owner.as_str()),
        Box::new(lease.offering.as_str()),
        Box::new(lease.container_id.as_deref()),
        Box::new(StatusColumn(lease.status)),
        Box::new(nanos(lease.created_at)?),
        Box::new(nanos(lease.expires_at)?),
        Box::new(lease.ended_at.map(nanos).transpose()?),
        Box::new(lease.end_reason.map(end_reason_name)),
        Box::new(lease.hourly_rate.nanos()),
        Box::new(lease.estimated_cost.nanos()),
        Box::new(lease.final_cost.map(Money::nanos)),
        Box::new(lease.error.as_deref()),
        Box::new(lease.provision_attempts),
        Box::new(lease.removal_failures),
        Box::new(revision),
        Box::new(lease.nano_cpus),
        Box::new(lease.memory_mb),
        Box::new(lease.running_at.map(nanos).transpose()?),
        Box::new(lease.finished_at.map(nanos).transpose()?),
    ])
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
            assert_eq!(end_reason(end_reason_name(reason)).ok(), Some(reason));
        }
        assert!(end_reason("gone").is_err());
    }

    #[test]
    fn times_out_of_range_are_refused_or_saturate() {
        assert!(nanos(DateTime::<Utc>::MAX_UTC).is_err());
        assert_eq!(saturating_nanos(DateTime::<Utc>::MAX_UTC), i64::MAX);
        assert_eq!(saturating_nanos(DateTime::<Utc>::MIN_UTC), i64::MIN);
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid");
        assert_eq!(time(nanos(at).expect("in range")), at);
    }
}
