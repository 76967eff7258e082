//! Exact amounts of money.
//!
//! [`Money`] counts whole nano-dollars in an `i64`: every sum is exact, and
//! nothing is ever computed in floating point. Decimal text (`"0.01"`) is parsed
//! with `rust_decimal` and must fit in nine decimal places.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Nano-dollars in one dollar.
pub const NANOS_PER_DOLLAR: i64 = 1_000_000_000;

/// An exact amount of US dollars, stored as whole nano-dollars.
///
/// Renders in JSON as a number of dollars (`0.000333333`), as the seed's API
/// did, and parses from a number or a decimal string.
///
/// ```
/// use lease_core::Money;
/// let rate: Money = "0.04".parse().unwrap();
/// assert_eq!(rate.nanos(), 40_000_000);
/// assert_eq!(rate.to_string(), "0.04");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a text could not be read as an exact amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAmountError {
    /// The text is not a decimal number.
    #[error("`{0}` is not a decimal number")]
    NotANumber(String),
    /// The number has more than nine decimal places or is too large.
    #[error("`{0}` does not fit in nine decimal places")]
    OutOfRange(String),
    /// The amount is below zero where only zero or more makes sense.
    #[error("`{0}` must not be negative")]
    Negative(String),
}

impl Money {
    /// Zero dollars.
    pub const ZERO: Money = Money(0);

    /// An amount of whole nano-dollars.
    pub const fn from_nanos(nanos: i64) -> Self {
        Money(nanos)
    }

    /// The amount in whole nano-dollars.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Whether the amount is below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Parses an amount that must not be below zero (a limit, a price).
    ///
    /// ```
    /// use lease_core::Money;
    /// assert_eq!(Money::parse_non_negative("2.5").unwrap().nanos(), 2_500_000_000);
    /// assert!(Money::parse_non_negative("-1").is_err());
    /// ```
    pub fn parse_non_negative(text: &str) -> Result<Money, ParseAmountError> {
        let money: Money = text.parse()?;
        if money.is_negative() {
            return Err(ParseAmountError::Negative(text.to_owned()));
        }
        Ok(money)
    }

    /// The amount as an exact decimal number of dollars.
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 9).normalize()
    }

    /// Multiplies by `numerator / denominator`, rounding half away from zero
    /// to the nearest nano-dollar. Intermediates are `i128`, so nothing
    /// overflows for any realistic amount; the result saturates at the `i64`
    /// bounds. `denominator` must not be zero (a zero gives zero).
    pub fn mul_ratio(self, numerator: i64, denominator: i64) -> Money {
        if denominator == 0 {
            return Money::ZERO;
        }
        let product = i128::from(self.0) * i128::from(numerator);
        let den = i128::from(denominator);
        let quotient = product / den;
        let remainder = product % den;
        // Round half away from zero: compare twice the remainder with the divisor.
        let rounded = if 2 * remainder.abs() >= den.abs() {
            quotient + if (product < 0) == (den < 0) { 1 } else { -1 }
        } else {
            quotient
        };
        Money(i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX }))
    }
}

/// Parses a decimal text into an integer scaled by 10^9 (nano units):
/// exact, or an error when it has more than nine decimal places.
///
/// ```
/// assert_eq!(lease_core::money::parse_nanos("4.5"), Ok(4_500_000_000));
/// assert!(lease_core::money::parse_nanos("0.0000000001").is_err());
/// ```
pub fn parse_nanos(text: &str) -> Result<i64, ParseAmountError> {
    let trimmed = text.trim();
    let decimal = Decimal::from_str_exact(trimmed)
        .or_else(|_| Decimal::from_scientific(trimmed))
        .map_err(|_| ParseAmountError::NotANumber(text.to_owned()))?;
    let scaled = decimal
        .checked_mul(Decimal::from(NANOS_PER_DOLLAR))
        .ok_or_else(|| ParseAmountError::OutOfRange(text.to_owned()))?;
    if !scaled.fract().is_zero() {
        return Err(ParseAmountError::OutOfRange(text.to_owned()));
    }
    i64::try_from(scaled).map_err(|_| ParseAmountError::OutOfRange(text.to_owned()))
}

impl FromStr for Money {
    type Err = ParseAmountError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_nanos(text).map(Money)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_decimal(), f)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = *self + rhs;
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0.saturating_sub(rhs.0))
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl Serialize for Money {
    /// Writes a JSON number of dollars. The exact decimal text is converted to
    /// the nearest `f64` (a conversion, not arithmetic); JSON writers print the
    /// shortest text that reads back to it, which is the same decimal for any
    /// amount of up to 15 significant digits. Larger amounts, which an `f64`
    /// cannot hold exactly, are written as a decimal string.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.to_string();
        let number: f64 = text.parse().map_err(serde::ser::Error::custom)?;
        // Above ~15 significant digits an f64 cannot hold the amount exactly;
        // then the exact decimal text is written instead (it reads back too).
        if number.to_string().parse::<Money>().ok() == Some(*self) {
            serializer.serialize_f64(number)
        } else {
            serializer.serialize_str(&text)
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(i64),
            Float(f64),
            Text(String),
        }
        let text = match Repr::deserialize(deserializer)? {
            Repr::Int(whole) => whole.to_string(),
            // Rust prints the shortest decimal that reads back to the same f64.
            Repr::Float(number) => number.to_string(),
            Repr::Text(text) => text,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        let m: Money = "0.000333333".parse().unwrap();
        assert_eq!(m.nanos(), 333_333);
        assert_eq!(m.to_string(), "0.000333333");
        assert_eq!("1e-2".parse::<Money>().unwrap().nanos(), 10_000_000);
    }

    #[test]
    fn rejects_sub_nano_and_garbage() {
        assert!(matches!(
            "0.0000000001".parse::<Money>(),
            Err(ParseAmountError::OutOfRange(_))
        ));
        assert!(matches!(
            "abc".parse::<Money>(),
            Err(ParseAmountError::NotANumber(_))
        ));
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(Money::from_nanos(5).mul_ratio(1, 10), Money::from_nanos(1));
        assert_eq!(Money::from_nanos(4).mul_ratio(1, 10), Money::ZERO);
        assert_eq!(
            Money::from_nanos(-5).mul_ratio(1, 10),
            Money::from_nanos(-1)
        );
    }

    #[test]
    fn json_is_a_number_of_dollars() {
        let m = Money::from_nanos(333_333);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "0.000333333");
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let from_text: Money = serde_json::from_str("\"0.08\"").unwrap();
        assert_eq!(from_text.nanos(), 80_000_000);
    }
}
