//! Property tests (proptest) of pricing, exact money, the lease status
//! state machine and lease ids.
//!
//! Expected values come from independent oracles written here (exact `i128`
//! arithmetic, the transition table copied from DESIGN.md, the id grammar),
//! not from the code under test.

use chrono::{DateTime, TimeDelta, Utc};
use lease_core::{InvalidTransition, Lease, LeaseId, Money, Status, pricing};
use proptest::prelude::*;

/// Most nano-dollars per hour a generated rate has ($1,000,000/h).
const MAX_RATE_NANOS: i64 = 1_000_000 * 1_000_000_000;
/// Longest held time generated, in milliseconds (about 31,700 years).
const MAX_HELD_MILLIS: i64 = 1_000_000_000_000_000;

fn rate() -> impl Strategy<Value = Money> {
    prop_oneof![
        // Realistic rates, including the seed's $0.01 and $0.04.
        (0i64..=100_000_000_000).prop_map(Money::from_nanos),
        (0i64..=MAX_RATE_NANOS).prop_map(Money::from_nanos),
        Just(Money::from_nanos(10_000_000)),
        Just(Money::from_nanos(40_000_000)),
    ]
}

/// `numerator / denominator` rounded half away from zero, for a
/// non-negative numerator and a positive denominator, saturated to `i64`.
fn round_half_up(numerator: i128, denominator: i128) -> i64 {
    let rounded = (2 * numerator + denominator) / (2 * denominator);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

proptest! {
    #[test]
    fn estimate_is_rate_times_minutes_over_60_rounded_to_the_nano(
        rate in rate(),
        minutes in any::<u32>(),
    ) {
        let expected = round_half_up(i128::from(rate.nanos()) * i128::from(minutes), 60);
        let estimate = pricing::estimate(rate, minutes);
        prop_assert_eq!(estimate.nanos(), expected);
        prop_assert!(!estimate.is_negative());
    }

    #[test]
    fn accrued_is_rate_times_held_time_rounded_to_the_nano(
        rate in rate(),
        millis in 0..=MAX_HELD_MILLIS,
    ) {
        let expected = round_half_up(i128::from(rate.nanos()) * i128::from(millis), 3_600_000);
        let accrued = pricing::accrued(rate, TimeDelta::milliseconds(millis));
        prop_assert_eq!(accrued.nanos(), expected);
        prop_assert!(!accrued.is_negative());
    }

    #[test]
    fn accrued_is_never_negative_even_for_negative_held_time(
        rate in rate(),
        millis in -MAX_HELD_MILLIS..=MAX_HELD_MILLIS,
    ) {
        let accrued = pricing::accrued(rate, TimeDelta::milliseconds(millis));
        prop_assert!(!accrued.is_negative(), "{accrued} for {millis} ms");
        if millis <= 0 {
            prop_assert_eq!(accrued, Money::ZERO);
        }
    }

    #[test]
    fn estimate_is_monotone_in_minutes(
        rate in rate(),
        a in any::<u32>(),
        b in any::<u32>(),
    ) {
        let (shorter, longer) = (a.min(b), a.max(b));
        prop_assert!(pricing::estimate(rate, shorter) <= pricing::estimate(rate, longer));
    }

    #[test]
    fn accrued_is_monotone_in_held_time(
        rate in rate(),
        a in -MAX_HELD_MILLIS..=MAX_HELD_MILLIS,
        b in -MAX_HELD_MILLIS..=MAX_HELD_MILLIS,
    ) {
        let (shorter, longer) = (a.min(b), a.max(b));
        prop_assert!(
            pricing::accrued(rate, TimeDelta::milliseconds(shorter))
                <= pricing::accrued(rate, TimeDelta::milliseconds(longer))
        );
    }

    #[test]
    fn accrued_never_decreases_as_seconds_pass(
        rate in rate(),
        seconds in 0i64..=10 * 24 * 3600,
        later_by_millis in 0i64..=60_000,
    ) {
        let held = TimeDelta::seconds(seconds);
        prop_assert!(
            pricing::accrued(rate, held)
                <= pricing::accrued(rate, held + TimeDelta::milliseconds(later_by_millis))
        );
    }

    /// A lease held for exactly its booking is charged exactly its estimate.
    #[test]
    fn estimate_equals_accrued_for_the_whole_booking(
        rate in rate(),
        minutes in any::<u32>(),
    ) {
        prop_assert_eq!(
            pricing::estimate(rate, minutes),
            pricing::accrued(rate, TimeDelta::minutes(i64::from(minutes)))
        );
    }

    /// Splitting a booking changes its price by at most the two roundings.
    #[test]
    fn split_bookings_cost_the_same_within_rounding(
        rate in rate(),
        a in 0u32..=1_000_000,
        b in 0u32..=1_000_000,
    ) {
        let whole = pricing::estimate(rate, a + b).nanos();
        let parts = (pricing::estimate(rate, a) + pricing::estimate(rate, b)).nanos();
        prop_assert!((whole - parts).abs() <= 1, "whole {whole}, parts {parts}");
    }

    #[test]
    fn money_sums_are_exact(
        amounts in prop::collection::vec(-1_000_000_000_000_000i64..=1_000_000_000_000_000, 0..200),
    ) {
        let expected: i128 = amounts.iter().copied().map(i128::from).sum();
        let moneys: Vec<Money> = amounts.iter().copied().map(Money::from_nanos).collect();
        let summed: Money = moneys.iter().copied().sum();
        prop_assert_eq!(i128::from(summed.nanos()), expected);
        let mut folded = Money::ZERO;
        for money in &moneys {
            folded += *money;
        }
        prop_assert_eq!(folded, summed);
    }

    #[test]
    fn money_addition_and_subtraction_are_exact(
        a in -1_000_000_000_000_000_000i64..=1_000_000_000_000_000_000,
        b in -1_000_000_000_000_000_000i64..=1_000_000_000_000_000_000,
    ) {
        let (x, y) = (Money::from_nanos(a), Money::from_nanos(b));
        prop_assert_eq!((x + y).nanos(), a + b);
        prop_assert_eq!((x - y).nanos(), a - b);
        prop_assert_eq!(x + y - y, x);
    }

    #[test]
    fn money_display_parses_back_exactly(nanos in any::<i64>()) {
        let money = Money::from_nanos(nanos);
        let text = money.to_string();
        let back: Money = text
            .parse()
            .map_err(|error| TestCaseError::fail(format!("{text:?} does not parse: {error}")))?;
        prop_assert_eq!(back, money, "via {}", text);
    }

    /// Display is plain decimal dollars: an optional sign, digits, and at
    /// most nine decimals without trailing zeros.
    #[test]
    fn money_display_is_plain_decimal_dollars(nanos in any::<i64>()) {
        let text = Money::from_nanos(nanos).to_string();
        let unsigned = text.strip_prefix('-').unwrap_or(&text);
        prop_assert_eq!(text.starts_with('-'), nanos < 0, "{}", text);
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        prop_assert!(!whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()), "{}", text);
        prop_assert!(fraction.len() <= 9 && fraction.bytes().all(|b| b.is_ascii_digit()), "{}", text);
        prop_assert!(!fraction.ends_with('0'), "{}", text);
        let expected_whole = (i128::from(nanos).abs() / 1_000_000_000).to_string();
        prop_assert_eq!(whole, expected_whole.as_str());
    }

    /// JSON renders a number of dollars; amounts a JSON number (an f64)
    /// holds exactly — up to 15 significant digits, i.e. below $1,000,000 to
    /// the nano-dollar — read back to the same amount.
    #[test]
    fn money_json_round_trips(nanos in -999_999_999_999_999i64..=999_999_999_999_999) {
        let money = Money::from_nanos(nanos);
        let json = serde_json::to_string(&money)
            .map_err(|error| TestCaseError::fail(format!("{money} does not serialize: {error}")))?;
        let value: serde_json::Value = serde_json::from_str(&json)
            .map_err(|error| TestCaseError::fail(format!("{json} is not JSON: {error}")))?;
        let dollars: f64 = money.to_string().parse()
            .map_err(|error| TestCaseError::fail(format!("{money}: {error}")))?;
        prop_assert_eq!(value.as_f64(), Some(dollars), "JSON {} is a number of dollars", json);
        let back: Money = serde_json::from_str(&json)
            .map_err(|error| TestCaseError::fail(format!("{json} does not read back: {error}")))?;
        prop_assert_eq!(back, money, "via {}", json);
    }

    /// A money amount written as a JSON string reads back exactly, whatever its size.
    #[test]
    fn money_json_strings_read_back_exactly(nanos in any::<i64>()) {
        let money = Money::from_nanos(nanos);
        let json = serde_json::to_string(&money.to_string())
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let back: Money = serde_json::from_str(&json)
            .map_err(|error| TestCaseError::fail(format!("{json} does not read back: {error}")))?;
        prop_assert_eq!(back, money);
    }

    /// Reading money never panics, whatever the text.
    #[test]
    fn money_parsing_never_panics(text in any::<String>()) {
        let _ = text.parse::<Money>();
    }

    #[test]
    fn money_parsing_of_number_like_text_never_panics(
        text in "-?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{1,12})?",
    ) {
        if let Ok(money) = text.parse::<Money>() {
            // Whatever parses prints back as the same amount.
            prop_assert_eq!(money.to_string().parse::<Money>().ok(), Some(money));
        }
    }
}

/// Money is exact (DESIGN.md) and renders in JSON as a number of dollars,
/// so every amount, large ones and the saturated bounds included, must read
/// back from its JSON unchanged.
#[test]
fn large_money_json_round_trips() {
    for nanos in [12_345_678_123_456_789, i64::MAX, i64::MIN] {
        let money = Money::from_nanos(nanos);
        let json = serde_json::to_string(&money).expect("money serializes");
        let back = serde_json::from_str::<Money>(&json);
        assert_eq!(back.ok(), Some(money), "{money} via JSON {json}");
    }
}

// ---------------------------------------------------------------------------
// The status state machine
// ---------------------------------------------------------------------------

/// The transitions DESIGN.md allows (besides staying in the same status).
const EDGES: [(Status, Status); 10] = [
    (Status::Pending, Status::Running),
    (Status::Pending, Status::Error),
    (Status::Pending, Status::Deleting),
    (Status::Running, Status::Exited),
    (Status::Running, Status::Error),
    (Status::Running, Status::Deleting),
    (Status::Error, Status::Exited),
    (Status::Error, Status::Deleting),
    (Status::Exited, Status::Deleting),
    (Status::Deleting, Status::Deleted),
];

/// The oracle: a DESIGN.md edge, or an update that keeps the status (except
/// `deleted`, which is terminal).
fn allowed(from: Status, to: Status) -> bool {
    (from == to && from != Status::Deleted) || EDGES.contains(&(from, to))
}

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL.to_vec())
}

fn lease(status: Status) -> Lease {
    let created_at: DateTime<Utc> = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let booked = Lease::new(
        LeaseId::generate(),
        "prop",
        "alpine",
        Money::from_nanos(10_000_000),
        created_at,
        created_at + TimeDelta::minutes(30),
    );
    assert_eq!(booked.estimated_cost, Money::from_nanos(5_000_000));
    Lease {
        container_id: Some("cid".into()),
        status,
        provision_attempts: 1,
        revision: 7,
        ..booked
    }
}

#[test]
fn every_status_pair_follows_the_design_table() {
    let mut accepted = 0;
    for from in Status::ALL {
        for to in Status::ALL {
            assert_eq!(
                from.can_become(to),
                allowed(from, to),
                "can_become({from}, {to})"
            );
            accepted += usize::from(allowed(from, to));
        }
    }
    // 10 edges and 5 same-status updates; the other 21 pairs are refused.
    assert_eq!(accepted, 15);
}

proptest! {
    /// Any sequence of requested statuses, from any start: each accepted
    /// transition is allowed by DESIGN.md and moves the lease; each other one
    /// is refused with `InvalidTransition` and changes nothing.
    #[test]
    fn transitions_accept_exactly_the_allowed_moves(
        start in status(),
        targets in prop::collection::vec(status(), 0..40),
    ) {
        let mut lease = lease(start);
        for target in targets {
            let before = lease.clone();
            prop_assert_eq!(before.status.can_become(target), allowed(before.status, target));
            match lease.transition(target) {
                Ok(()) => {
                    prop_assert!(
                        allowed(before.status, target),
                        "accepted {} -> {}", before.status, target
                    );
                    let mut expected = before;
                    expected.status = target;
                    prop_assert_eq!(&lease, &expected, "only the status changes");
                }
                Err(error) => {
                    prop_assert!(
                        !allowed(before.status, target),
                        "refused {} -> {}", before.status, target
                    );
                    prop_assert_eq!(
                        error,
                        InvalidTransition { id: before.id.clone(), from: before.status, to: target }
                    );
                    prop_assert_eq!(&lease, &before, "a refused transition changes nothing");
                }
            }
        }
    }

    /// Walking only accepted transitions from `pending`, `deleted` is reached
    /// only through `deleting`, and once there nothing moves it.
    #[test]
    fn deleted_is_reached_only_through_deleting_and_is_terminal(
        targets in prop::collection::vec(status(), 0..60),
    ) {
        let mut lease = lease(Status::Pending);
        let mut previous = lease.status;
        for target in targets {
            if lease.transition(target).is_ok() && lease.status == Status::Deleted {
                prop_assert!(
                    previous == Status::Deleting,
                    "reached deleted from {}", previous
                );
            }
            if previous == Status::Deleted {
                prop_assert_eq!(lease.status, Status::Deleted, "deleted is terminal");
            }
            previous = lease.status;
        }
    }

    #[test]
    fn nothing_leaves_deleted(targets in prop::collection::vec(status(), 1..40)) {
        let mut lease = lease(Status::Deleted);
        for target in targets {
            prop_assert!(lease.transition(target).is_err(), "deleted -> {}", target);
            prop_assert_eq!(lease.status, Status::Deleted);
        }
    }

    #[test]
    fn status_names_round_trip(status in status()) {
        prop_assert_eq!(status.as_str().parse::<Status>().ok(), Some(status));
        prop_assert_eq!(status.to_string(), status.as_str());
        let json = serde_json::to_string(&status)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(json, format!("\"{}\"", status.as_str()));
    }
}

// ---------------------------------------------------------------------------
// Lease ids
// ---------------------------------------------------------------------------

/// The id grammar of DESIGN.md and `LeaseId`'s docs: `container-` and 16 to
/// 64 URL-safe characters (ASCII letters, digits, `-`, `_`).
fn is_valid_id(text: &str) -> bool {
    text.strip_prefix("container-").is_some_and(|random| {
        (16..=64).contains(&random.len())
            && random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

proptest! {
    #[test]
    fn generated_ids_parse_back(count in 1usize..64, short in any::<usize>()) {
        let ids: Vec<LeaseId> = (0..count).map(|_| LeaseId::generate()).collect();
        for id in &ids {
            let text = id.to_string();
            prop_assert!(is_valid_id(&text), "{}", text);
            prop_assert_eq!(text.parse::<LeaseId>().ok(), Some(id.clone()));
            let json = serde_json::to_string(id)
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(serde_json::from_str::<LeaseId>(&json).ok(), Some(id.clone()));
            let prefix = id.short(short);
            prop_assert!(text["container-".len()..].starts_with(prefix));
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        prop_assert_eq!(unique.len(), ids.len(), "generated ids are distinct");
    }

    /// Arbitrary text never panics the parser, and parses exactly when it
    /// follows the grammar, keeping its text.
    #[test]
    fn id_parsing_follows_the_grammar(text in any::<String>()) {
        check_id_text(&text)?;
    }

    #[test]
    fn id_parsing_follows_the_grammar_near_valid_ids(
        text in "container-[A-Za-z0-9_\\-./ äß]{0,80}",
    ) {
        check_id_text(&text)?;
    }

    #[test]
    fn id_parsing_follows_the_grammar_at_the_length_bounds(
        text in "container-[A-Za-z0-9_\\-]{14,18}|container-[A-Za-z0-9_\\-]{62,66}",
    ) {
        check_id_text(&text)?;
    }

    #[test]
    fn every_id_in_the_grammar_parses(text in "container-[A-Za-z0-9_\\-]{16,64}") {
        prop_assert!(text.parse::<LeaseId>().is_ok(), "{}", text);
    }

    #[test]
    fn ids_of_the_wrong_length_are_refused(
        text in "container-[A-Za-z0-9_\\-]{0,15}|container-[A-Za-z0-9_\\-]{65,100}",
    ) {
        prop_assert!(text.parse::<LeaseId>().is_err(), "{}", text);
    }

    /// Reading an id from JSON never panics either.
    #[test]
    fn id_json_never_panics(text in any::<String>()) {
        let json = serde_json::to_string(&text)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let parsed = serde_json::from_str::<LeaseId>(&json);
        prop_assert_eq!(parsed.is_ok(), is_valid_id(&text));
    }
}

fn check_id_text(text: &str) -> Result<(), TestCaseError> {
    match text.parse::<LeaseId>() {
        Ok(id) => {
            prop_assert!(is_valid_id(text), "accepted {:?}", text);
            prop_assert_eq!(id.as_str(), text);
            // Any short prefix is safe to take.
            for len in [0, 1, 12, 64, usize::MAX] {
                let _ = id.short(len);
            }
        }
        Err(error) => {
            prop_assert!(!is_valid_id(text), "refused {:?}", text);
            prop_assert_eq!(error.0.as_str(), text);
        }
    }
    Ok(())
}
