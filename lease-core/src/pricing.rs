//! What a lease costs.
//!
//! Rates are per hour. The estimate is known up front from the booked
//! minutes; the accrued cost follows the time actually held, to the
//! millisecond. Both round half away from zero to the nano-dollar, so a lease
//! held for its whole booking is charged exactly its estimate.
//!
//! ```
//! use lease_core::{pricing, Money};
//! let alpine: Money = "0.01".parse().unwrap();
//! let ubuntu: Money = "0.04".parse().unwrap();
//! assert_eq!(pricing::estimate(alpine, 2).to_string(), "0.000333333");
//! assert_eq!(pricing::estimate(ubuntu, 120).to_string(), "0.08");
//! ```

use chrono::Duration;

use crate::money::Money;

const MINUTES_PER_HOUR: i64 = 60;
const MILLIS_PER_HOUR: i64 = 3_600_000;

/// Price of `minutes` at `hourly_rate`: `rate × minutes / 60`.
pub fn estimate(hourly_rate: Money, minutes: u32) -> Money {
    hourly_rate.mul_ratio(i64::from(minutes), MINUTES_PER_HOUR)
}

/// Price of holding for `held` at `hourly_rate`: `rate × seconds / 3600`,
/// counted in milliseconds. A negative duration costs nothing.
pub fn accrued(hourly_rate: Money, held: Duration) -> Money {
    let millis = held.num_milliseconds().max(0);
    hourly_rate.mul_ratio(millis, MILLIS_PER_HOUR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_examples_are_exact() {
        let alpine = Money::from_nanos(10_000_000);
        let ubuntu = Money::from_nanos(40_000_000);
        assert_eq!(estimate(alpine, 2), Money::from_nanos(333_333));
        assert_eq!(estimate(ubuntu, 120), Money::from_nanos(80_000_000));
        assert_eq!(
            accrued(ubuntu, Duration::minutes(120)),
            estimate(ubuntu, 120)
        );
        assert_eq!(accrued(alpine, Duration::seconds(-5)), Money::ZERO);
    }
}
