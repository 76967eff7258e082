//! Admission on Redis: the counters `insert.lua`, `update.lua` and
//! `finish.lua` keep so that a limit is checked in the same script as the
//! write, and what those scripts are told and answer.
//!
//! Each active lease's hash keeps its *weights* beside its record: its
//! charge ([`Lease::charge`], nano-dollars), its creation day (UTC day
//! number), its nano-CPUs and MiB. The scripts move them in and out of two
//! kinds of counters:
//!
//! - the host's totals (`{p}:capacity`: Σ nano-CPUs and Σ MiB of the active
//!   leases); the lease counts are the cardinalities of the active indexes;
//! - each owner's spend per UTC day (`{p}:spend:<owner>`: field = day
//!   number, value = Σ charge in nano-dollars of the owner's leases created
//!   that day, active *and* finished — a finished lease counts its final
//!   charge).
//!
//! The owner's spend "today" is the sum over the days from
//! [`Admission::day_start`]'s day on, so the store counts whole UTC days:
//! exact for the engine's `day_start`, a UTC midnight. Days older than a
//! week before both the lease's day and the store's own day are dropped
//! from the hash as leases are inserted.
//!
//! The decision is the script's (it is the only place that is atomic); the
//! wording is lease-core's: a refusing script answers the figures it saw,
//! and [`Admission::check`] / [`Admission::check_update`] turn them into
//! the same [`StoreError::LimitReached`] every store gives.

use chrono::{DateTime, Utc};
use lease_core::{Admission, AdmissionUsage, Lease, Money, StoreError};
use redis::{FromRedisValue, ParsingError, RedisWrite, ToRedisArgs, Value};

use crate::error::{RedisStoreError, other};
use crate::record::{Outcome, decode};

/// Days of spend kept before the older of the inserted lease's day and the
/// store's own day; older days count toward no limit any more.
pub(crate) const SPEND_DAYS_KEPT: i64 = 7;

/// The UTC day `at` falls in, as days since the epoch.
pub(crate) fn utc_day(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400)
}

/// What one active lease weighs in the counters, in the order the scripts
/// take it: charge (nano-dollars), creation day, nano-CPUs, MiB.
pub(crate) struct Weights {
    charge: i64,
    day: i64,
    nano_cpus: i64,
    memory_mb: u32,
}

impl Weights {
    /// The weights of `lease`.
    pub(crate) fn of(lease: &Lease) -> Self {
        Weights {
            charge: lease.charge().nanos(),
            day: utc_day(lease.created_at),
            nano_cpus: lease.nano_cpus,
            memory_mb: lease.memory_mb,
        }
    }

    /// The charge (nano-dollars) and creation day only, for `finish.lua`.
    pub(crate) fn spend(&self) -> (i64, i64) {
        (self.charge, self.day)
    }
}

impl ToRedisArgs for Weights {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        self.charge.write_redis_args(out);
        self.day.write_redis_args(out);
        self.nano_cpus.write_redis_args(out);
        self.memory_mb.write_redis_args(out);
    }
}

/// A limit as a script argument: its number, or `''` for none (an absent
/// argument would shift the ones after it).
fn limit_arg(limit: Option<impl ToString>) -> String {
    limit.map_or_else(String::new, |limit| limit.to_string())
}

/// The daily spend limit for `lease` (none when it is not created "today")
/// and the first day of "today".
fn spend_args(admission: &Admission, lease: &Lease) -> (String, i64) {
    let limit = admission
        .max_daily_spend
        .filter(|_| admission.counts_today(lease))
        .map(Money::nanos);
    (limit_arg(limit), utc_day(admission.day_start))
}

/// The limits `insert.lua` checks for `lease`, in the order it takes them:
/// leases per owner, daily spend, first day of today, leases, nano-CPUs,
/// MiB, then the oldest spend day to keep.
pub(crate) struct InsertLimits(Vec<String>);

impl InsertLimits {
    /// The limits of `admission` for inserting `lease`.
    pub(crate) fn new(admission: &Admission, lease: &Lease) -> Self {
        let (spend, first_day) = spend_args(admission, lease);
        let oldest_kept = utc_day(lease.created_at).min(utc_day(Utc::now())) - SPEND_DAYS_KEPT;
        InsertLimits(vec![
            limit_arg(admission.max_leases_per_owner),
            spend,
            first_day.to_string(),
            limit_arg(admission.max_leases),
            limit_arg(admission.max_nano_cpus),
            limit_arg(admission.max_memory_mb),
            oldest_kept.to_string(),
        ])
    }
}

impl ToRedisArgs for InsertLimits {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        self.0.write_redis_args(out);
    }
}

/// The daily spend limit `update.lua` checks a rise of `lease`'s charge
/// against, and the first day of today.
pub(crate) fn update_limits(admission: &Admission, lease: &Lease) -> (String, i64) {
    spend_args(admission, lease)
}

/// What a script that writes one lease under an admission answered.
#[derive(Debug)]
pub(crate) enum Admitted {
    /// Written, or not for a reason of its own ([`Outcome`]).
    Outcome(Outcome),
    /// A limit refused the write; the figures the script saw.
    Refused(Vec<Vec<u8>>),
}

impl FromRedisValue for Admitted {
    fn from_redis_value(value: Value) -> Result<Self, ParsingError> {
        match value {
            Value::Array(items) => {
                let mut items = Vec::<Vec<u8>>::from_redis_value(Value::Array(items))?;
                if items.first().map(Vec::as_slice) != Some(b"refused".as_slice()) {
                    return Err("unexpected script reply: an array that is no refusal".into());
                }
                items.remove(0);
                Ok(Admitted::Refused(items))
            }
            other => Outcome::from_redis_value(other).map(Admitted::Outcome),
        }
    }
}

/// A figure of a refusal as a number; `Other` (the script's fault) if not.
fn figure<N: std::str::FromStr>(figures: &[Vec<u8>], at: usize) -> Result<N, StoreError> {
    let text = figures
        .get(at)
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .unwrap_or_default();
    text.parse().map_err(|_| {
        other(
            "read a refusal's figures",
            RedisStoreError::NotANumber(text),
        )
    })
}

/// The figures of a refusal by `insert.lua`: owner's leases, owner's spend
/// today, leases, nano-CPUs, MiB.
fn usage(figures: &[Vec<u8>]) -> Result<AdmissionUsage, StoreError> {
    Ok(AdmissionUsage {
        owner_leases: figure(figures, 0)?,
        owner_spend_today: Money::from_nanos(figure(figures, 1)?),
        leases: figure(figures, 2)?,
        nano_cpus: figure(figures, 3)?,
        memory_mb: figure(figures, 4)?,
    })
}

/// The error a refusal by `insert.lua` means: the figures it saw, worded by
/// [`Admission::check`].
pub(crate) fn insert_refusal(
    figures: &[Vec<u8>],
    admission: &Admission,
    lease: &Lease,
) -> StoreError {
    match usage(figures) {
        Ok(usage) => admission
            .check(&usage, lease)
            .err()
            .unwrap_or_else(|| disagreement(figures)),
        Err(error) => error,
    }
}

/// The error a refusal by `update.lua` means: the owner's spend today and
/// the stored record it saw, worded by [`Admission::check_update`].
pub(crate) fn update_refusal(
    figures: &[Vec<u8>],
    admission: &Admission,
    lease_key: String,
    lease: &Lease,
) -> StoreError {
    let spent = match figure(figures, 0) {
        Ok(nanos) => Money::from_nanos(nanos),
        Err(error) => return error,
    };
    let Some(data) = figures.get(1) else {
        return disagreement(figures);
    };
    match decode(lease_key, data, lease.id.as_str()) {
        Ok(stored) => admission
            .check_update(spent, &stored, lease)
            .err()
            .unwrap_or_else(|| disagreement(figures)),
        Err(error) => error,
    }
}

/// A script refused a write that lease-core's check admits with the same
/// figures: a bug, reported rather than guessed at.
fn disagreement(figures: &[Vec<u8>]) -> StoreError {
    let figures: Vec<String> = figures
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    other(
        "check a refusal",
        RedisStoreError::UnexpectedReply(format!("refused with {figures:?}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use lease_core::{LeaseId, Limit};

    fn lease(owner: &str) -> Lease {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 4, 12, 0, 0)
            .single()
            .expect("a valid time");
        Lease::new(
            LeaseId::generate(),
            owner,
            "alpine",
            "0.60".parse().expect("a rate"),
            at,
            at + Duration::hours(1),
        )
        .with_size(1_500_000_000, 256)
    }

    fn bulk(texts: &[&str]) -> Vec<Vec<u8>> {
        texts.iter().map(|t| t.as_bytes().to_vec()).collect()
    }

    #[test]
    fn days_are_utc_days_since_the_epoch() {
        let midnight = Utc.with_ymd_and_hms(1970, 1, 2, 0, 0, 0).single();
        assert_eq!(midnight.map(utc_day), Some(1));
        let before = Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).single();
        assert_eq!(before.map(utc_day), Some(-1));
    }

    #[test]
    fn unset_limits_are_empty_arguments_in_place() {
        let lease = lease("ada");
        let admission = Admission {
            max_leases: Some(3),
            max_daily_spend: Some("1".parse().expect("amount")),
            ..Admission::today(lease.created_at)
        };
        let InsertLimits(args) = InsertLimits::new(&admission, &lease);
        let day = utc_day(lease.created_at).to_string();
        assert_eq!(&args[..6], ["", "1000000000", day.as_str(), "3", "", ""]);
        // A lease created before the day starts does not count toward it.
        let yesterday = Admission {
            day_start: lease.created_at + Duration::hours(13),
            ..admission
        };
        let InsertLimits(args) = InsertLimits::new(&yesterday, &lease);
        assert_eq!(args[1], "");
    }

    #[test]
    fn weights_are_the_charge_day_and_size() {
        let lease = lease("ada");
        let weights = Weights::of(&lease);
        assert_eq!(weights.spend(), (600_000_000, utc_day(lease.created_at)));
        assert_eq!(
            redis::ToRedisArgs::to_redis_args(&weights),
            bulk(&[
                "600000000",
                &utc_day(lease.created_at).to_string(),
                "1500000000",
                "256"
            ])
        );
    }

    #[test]
    fn refusals_are_worded_by_lease_core() {
        let lease = lease("ada");
        let admission = Admission {
            max_memory_mb: Some(1024),
            ..Admission::today(lease.created_at)
        };
        let error = insert_refusal(&bulk(&["0", "0", "0", "0", "900"]), &admission, &lease);
        match error {
            StoreError::LimitReached { limit, message } => {
                assert_eq!(limit, Limit::Memory);
                assert!(message.contains("900"), "{message}");
            }
            other => panic!("expected LimitReached, got {other:?}"),
        }
        // Figures that fit are the script's fault, not a refusal.
        let error = insert_refusal(&bulk(&["0", "0", "0", "0", "10"]), &admission, &lease);
        assert!(matches!(error, StoreError::Other { .. }), "{error:?}");
        let error = insert_refusal(&bulk(&["x"]), &admission, &lease);
        assert!(matches!(error, StoreError::Other { .. }), "{error:?}");
    }

    #[test]
    fn replies_parse() {
        let ok = Admitted::from_redis_value(Value::SimpleString("ok".to_owned()));
        assert!(matches!(ok, Ok(Admitted::Outcome(Outcome::Ok))));
        let refused = Admitted::from_redis_value(Value::Array(vec![
            Value::BulkString(b"refused".to_vec()),
            Value::BulkString(b"3".to_vec()),
        ]));
        assert!(matches!(refused, Ok(Admitted::Refused(f)) if f == bulk(&["3"])));
        let odd = Admitted::from_redis_value(Value::Array(vec![Value::BulkString(b"x".to_vec())]));
        assert!(odd.is_err());
    }
}
