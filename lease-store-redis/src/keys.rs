//! The key layout: every key of one deployment under `{prefix}:`.
//!
//! The prefix is wrapped in braces, a Redis Cluster *hash tag*: all keys of a
//! deployment hash to one slot, so the Lua scripts, which touch several keys
//! at once, also run on Redis Cluster.

use chrono::{DateTime, NaiveDate, Utc};
use lease_core::LeaseId;
use lease_core::stats::Span;

/// Digits of the nanosecond part of a [`time_key`]; matches the padding in
/// `finish.lua` and `page.lua`.
const TIME_DIGITS: usize = 25;

/// Builds the keys of one deployment.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    /// `{prefix}:`
    base: String,
}

impl Keys {
    /// The layout for `prefix` (checked by the config: no braces, not empty).
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            base: format!("{{{prefix}}}:"),
        }
    }

    /// `{prefix}:`, the start of every key (passed to scripts that build keys).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// A `SCAN MATCH` pattern of every key of the deployment.
    pub(crate) fn all(&self) -> String {
        let mut pattern = String::with_capacity(self.base.len() + 4);
        for c in self.base.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }

    /// Hash of one active lease: `data` (JSON), `rev`, `due_ms`, `due_ns`, `idx`, `owner`.
    pub(crate) fn lease(&self, id: &str) -> String {
        format!("{}lease:{id}", self.base)
    }

    /// The keys every write of one active lease touches, in the order
    /// `insert.lua` and `update.lua` take them: its hash, the due set, the
    /// claims, the active index, its owner's index.
    pub(crate) fn active_lease(&self, id: &str, owner: &str) -> Vec<String> {
        vec![
            self.lease(id),
            self.due(),
            self.claims(),
            self.active(),
            self.owner(owner),
        ]
    }

    /// Sorted set of active lease ids scored by claimable time (ms).
    pub(crate) fn due(&self) -> String {
        format!("{}due", self.base)
    }

    /// Hash of lease id → claim deadline (ms).
    pub(crate) fn claims(&self) -> String {
        format!("{}claims", self.base)
    }

    /// Lexicographic index of all active leases (`<created>:<id>`).
    pub(crate) fn active(&self) -> String {
        format!("{}active", self.base)
    }

    /// Lexicographic index of one owner's active leases (`<created>:<id>`).
    pub(crate) fn owner(&self, owner: &str) -> String {
        format!("{}owner:{owner}", self.base)
    }

    /// A finished lease's record (JSON, with a time to live).
    pub(crate) fn history(&self, id: &str) -> String {
        format!("{}history:{id}", self.base)
    }

    /// Lexicographic index of all finished leases (`<ended>:<id>`).
    pub(crate) fn ended(&self) -> String {
        format!("{}ended", self.base)
    }

    /// Lexicographic index of one owner's finished leases (`<ended>:<id>`).
    pub(crate) fn ended_by(&self, owner: &str) -> String {
        format!("{}ended-by:{owner}", self.base)
    }

    /// Hash of one owner's usage totals: `count`, `cost` (nano-dollars).
    pub(crate) fn usage(&self, owner: &str) -> String {
        format!("{}usage:{owner}", self.base)
    }

    /// Hash of the host's totals over the active leases: `nano_cpus`,
    /// `memory_mb` (see `admission.rs`).
    pub(crate) fn capacity(&self) -> String {
        format!("{}capacity", self.base)
    }

    /// Hash of one owner's spend per UTC day: day number → nano-dollars
    /// charged for the owner's leases created that day (see `admission.rs`).
    pub(crate) fn spend(&self, owner: &str) -> String {
        format!("{}spend:{owner}", self.base)
    }

    /// Set once the old statistics hashes were moved into the split
    /// rollup (see `store/split_stats.rs`).
    pub(crate) fn stats_split(&self) -> String {
        format!("{}rollup:split", self.base)
    }

    /// `SCAN` pattern of the statistics hashes of the layout before the
    /// rollup was split (`{p}:stats:<day>`: the daily statistics of the
    /// leases created on one UTC day, `<owner>\x1f<offering>\x1f<counter>`
    /// → value), moved once by `store/split_stats.rs`, then deleted.
    pub(crate) fn legacy_stats_pattern(&self) -> String {
        format!("{}stats:*", self.base)
    }

    /// Hash of the day totals of the leases created on one UTC day: counter
    /// name → value (see `stats.rs`).
    pub(crate) fn stats_day(&self, day: NaiveDate) -> String {
        format!("{}rollup:day:{day}", self.base)
    }

    /// Hash of the share counters of one span of days:
    /// `<owner>\x1f<offering>\x1f<counter>` → value (see `stats.rs`).
    pub(crate) fn stats_span(&self, span: Span) -> String {
        format!("{}rollup:span:{}:{}", self.base, span.level, span.start)
    }

    /// Hash of one browser session, by the SHA-256 of its cookie: `data`
    /// (JSON), `owner`; expires with the session.
    pub(crate) fn session(&self, id_sha256: &str) -> String {
        format!("{}session:{id_sha256}", self.base)
    }

    /// Sorted set of one owner's session hashes scored by expiry (ms).
    pub(crate) fn sessions_of(&self, owner: &str) -> String {
        format!("{}sessions-of:{owner}", self.base)
    }

    /// Sorted set of every session hash scored by expiry (ms), for purging.
    pub(crate) fn sessions(&self) -> String {
        format!("{}sessions", self.base)
    }

    /// Hash of one personal token, by the SHA-256 of the token: `data`
    /// (JSON), `id`, `owner`, and `used` (ns) once it was presented.
    pub(crate) fn token(&self, token_sha256: &str) -> String {
        format!("{}token:{token_sha256}", self.base)
    }

    /// Hash of personal token id → SHA-256 of the token.
    pub(crate) fn token_ids(&self) -> String {
        format!("{}token-ids", self.base)
    }

    /// Sorted set of one owner's token ids scored by expiry (ms; `+inf`
    /// for none).
    pub(crate) fn tokens_of(&self, owner: &str) -> String {
        format!("{}tokens-of:{owner}", self.base)
    }

    /// Sorted set of the ids of tokens that expire, scored by expiry (ms),
    /// for purging.
    pub(crate) fn token_expiry(&self) -> String {
        format!("{}token-expiry", self.base)
    }

    /// The layout's version (`2`: the admission counters are kept; absent:
    /// written by a version that kept none, see `upgrade.rs`).
    pub(crate) fn layout(&self) -> String {
        format!("{}layout", self.base)
    }
}

/// Nanoseconds since the epoch, exactly.
pub(crate) fn nanos(at: DateTime<Utc>) -> i128 {
    i128::from(at.timestamp()) * 1_000_000_000 + i128::from(at.timestamp_subsec_nanos())
}

/// The time rounded *up* to whole milliseconds: a due-set score, so a lease
/// is never claimable before its due time.
pub(crate) fn ceil_millis(at: DateTime<Utc>) -> i64 {
    let millis = at.timestamp_millis();
    if at.timestamp_subsec_nanos() % 1_000_000 == 0 {
        millis
    } else {
        millis.saturating_add(1)
    }
}

/// The time a due-set entry stands for: the lease's exact due time (`due_ns`,
/// nanoseconds) when the score is that time rounded up, i.e. no claim pushed
/// it later; otherwise the score (milliseconds) itself.
pub(crate) fn due_time(score_ms: i64, due_ns: Option<&str>) -> DateTime<Utc> {
    due_ns
        .and_then(|ns| ns.parse::<i128>().ok())
        .and_then(from_nanos)
        .filter(|due| ceil_millis(*due) == score_ms)
        .unwrap_or_else(|| {
            DateTime::from_timestamp_millis(score_ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
}

/// A nanosecond timestamp as a time, if in range.
pub(crate) fn from_nanos(ns: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(ns.rem_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, sub)
}

/// A text that sorts like the time: `p` and 25 digits of nanoseconds since
/// the epoch, or `n` and 25 digits of `10^25 + nanos` before it.
pub(crate) fn time_key(at: DateTime<Utc>) -> String {
    let ns = nanos(at);
    if ns >= 0 {
        format!("p{ns:0width$}", width = TIME_DIGITS)
    } else {
        format!(
            "n{:0width$}",
            10_i128.pow(TIME_DIGITS as u32) + ns,
            width = TIME_DIGITS
        )
    }
}

/// An index member: `<time key>:<id>`, ordered by time, then id.
pub(crate) fn member(at: DateTime<Utc>, id: &LeaseId) -> String {
    format!("{}:{}", time_key(at), id)
}

/// The lease id in an index member.
pub(crate) fn member_id(member: &str) -> Option<&str> {
    member.split_once(':').map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_keys_sort_like_times() {
        let times = [
            Utc.timestamp_opt(-5_000_000_000, 0).unwrap(),
            Utc.timestamp_opt(-1, 999_999_999).unwrap(),
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(0, 1).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 5).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 6).unwrap(),
            DateTime::<Utc>::MAX_UTC,
        ];
        let keys: Vec<String> = times.iter().map(|t| time_key(*t)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(keys.iter().all(|k| k.len() == TIME_DIGITS + 1));
    }

    #[test]
    fn ceil_millis_never_rounds_down() {
        let exact = Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap();
        assert_eq!(ceil_millis(exact), 1_700_000_000_123);
        let inside = Utc.timestamp_opt(1_700_000_000, 123_000_001).unwrap();
        assert_eq!(ceil_millis(inside), 1_700_000_000_124);
    }

    #[test]
    fn due_times_are_exact_unless_a_claim_moved_them() {
        let due = Utc.timestamp_opt(1_700_000_000, 123_000_001).unwrap();
        let ns = nanos(due).to_string();
        assert_eq!(due_time(ceil_millis(due), Some(&ns)), due);
        let claimed = Utc.timestamp_opt(1_700_000_060, 0).unwrap();
        assert_eq!(due_time(claimed.timestamp_millis(), Some(&ns)), claimed);
        assert_eq!(due_time(claimed.timestamp_millis(), None), claimed);
        assert_eq!(due_time(claimed.timestamp_millis(), Some("x")), claimed);
    }

    #[test]
    fn the_scan_pattern_escapes_globs() {
        assert_eq!(Keys::new("a*b[1]").all(), "{a\\*b\\[1\\]}:*");
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("cl-test");
        assert_eq!(keys.lease("container-x"), "{cl-test}:lease:container-x");
        assert_eq!(keys.owner("a:b{c}"), "{cl-test}:owner:a:b{c}");
        assert_eq!(keys.spend("ada"), "{cl-test}:spend:ada");
        assert_eq!(keys.capacity(), "{cl-test}:capacity");
        let id = LeaseId::generate();
        let m = member(Utc.timestamp_opt(1, 0).unwrap(), &id);
        assert_eq!(member_id(&m), Some(id.as_str()));
    }
}
