//! Page cursors: the position of the last item returned, as opaque text.
//!
//! A cursor is `<seconds>.<nanoseconds>/<lease id>`: the sort key of the
//! last item of a page. The next page starts strictly after that key, so a
//! cursor stays valid when the lease it names has left the index meanwhile.

use chrono::{DateTime, Utc};
use lease_core::{LeaseId, StoreError};

/// The cursor for the item sorted at `(at, id)`.
pub(crate) fn encode(at: DateTime<Utc>, id: &LeaseId) -> String {
    format!(
        "{}.{:09}/{}",
        at.timestamp(),
        at.timestamp_subsec_nanos(),
        id
    )
}

/// The sort key a cursor names, or [`StoreError::InvalidCursor`].
pub(crate) fn decode(cursor: &str) -> Result<(DateTime<Utc>, LeaseId), StoreError> {
    parse(cursor).ok_or_else(|| StoreError::InvalidCursor(cursor.to_owned()))
}

fn parse(cursor: &str) -> Option<(DateTime<Utc>, LeaseId)> {
    let (at, id) = cursor.split_once('/')?;
    let (secs, nanos) = at.split_once('.')?;
    let at = DateTime::from_timestamp(secs.parse().ok()?, nanos.parse().ok()?)?;
    Some((at, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_to_the_nanosecond() {
        let id = LeaseId::generate();
        for at in [
            DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
            DateTime::from_timestamp(-5, 1).unwrap(),
            DateTime::UNIX_EPOCH,
        ] {
            let text = encode(at, &id);
            assert_eq!(decode(&text).unwrap(), (at, id.clone()), "{text}");
        }
    }

    #[test]
    fn rejects_foreign_text() {
        let id = LeaseId::generate();
        for bad in [
            String::new(),
            "garbage".to_owned(),
            format!("1.5/{}", "not-an-id"),
            format!("x.0/{id}"),
            format!("1/{id}"),
            format!("1.9999999999/{id}"),
        ] {
            match decode(&bad) {
                Err(StoreError::InvalidCursor(text)) => assert_eq!(text, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
