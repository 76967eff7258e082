//! Page cursors for stores that order leases by a time and then their id
//! (the memory and SQLite stores): the sort key of the last item returned,
//! as opaque text.
//!
//! A cursor is `<seconds>.<nanoseconds>/<lease id>`. The next page starts
//! strictly after that key, so a cursor stays valid when the lease it names
//! has left the store meanwhile. Times are nanoseconds since the Unix epoch
//! (an `i64`: 1677–2262; a store saturates times outside that range).

use crate::error::StoreError;
use crate::id::LeaseId;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The cursor for the item sorted at `(nanos, id)`.
pub fn encode(nanos: i64, id: &LeaseId) -> String {
    format!(
        "{}.{:09}/{}",
        nanos.div_euclid(NANOS_PER_SECOND),
        nanos.rem_euclid(NANOS_PER_SECOND),
        id
    )
}

/// The sort key a cursor names, or [`StoreError::InvalidCursor`] for text
/// that no [`encode`] made.
pub fn decode(cursor: &str) -> Result<(i64, LeaseId), StoreError> {
    parse(cursor).ok_or_else(|| StoreError::InvalidCursor(cursor.to_owned()))
}

fn parse(cursor: &str) -> Option<(i64, LeaseId)> {
    let (at, id) = cursor.split_once('/')?;
    let (seconds, nanos) = at.split_once('.')?;
    let seconds: i64 = seconds.parse().ok()?;
    let nanos: i64 = nanos
        .parse()
        .ok()
        .filter(|n| (0..NANOS_PER_SECOND).contains(n))?;
    let at = i128::from(seconds) * i128::from(NANOS_PER_SECOND) + i128::from(nanos);
    Some((i64::try_from(at).ok()?, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_to_the_nanosecond() {
        let id = LeaseId::generate();
        for at in [
            1_700_000_000_123_456_789,
            -5_000_000_001,
            0,
            i64::MAX,
            i64::MIN,
        ] {
            let text = encode(at, &id);
            assert_eq!(decode(&text).ok(), Some((at, id.clone())), "{text}");
        }
    }

    #[test]
    fn rejects_foreign_text() {
        let id = LeaseId::generate();
        for bad in [
            String::new(),
            "garbage".to_owned(),
            "1.5/not-an-id".to_owned(),
            format!("x.0/{id}"),
            format!("1/{id}"),
            format!("1.9999999999/{id}"),
            format!("99999999999999999999.0/{id}"),
        ] {
            match decode(&bad) {
                Err(StoreError::InvalidCursor(text)) => assert_eq!(text, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
