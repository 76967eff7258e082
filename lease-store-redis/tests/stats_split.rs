//! Statistics written by the layout before the rollup was split (one hash
//! per day, `{p}:stats:<day>`, every counter per owner and offering) are
//! moved into the day totals and span shares once, at connect, even by two
//! stores connecting at the same moment, exactly (values beyond 2^53
//! included), and the old hashes are deleted.

mod common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use lease_core::LeaseStore;
use lease_core::stats::{self, StatsKey, StatsRow, counter};
use lease_store_redis::RedisStore;

fn day(text: &str) -> NaiveDate {
    text.parse().expect("a date")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_statistics_hashes_are_moved_once_and_exactly() {
    let Some(config) = common::config("split") else {
        return;
    };
    // Days on both sides of span boundaries, one before 1970.
    let old_rows = [
        ("1969-12-30", "ada", "alpine", counter::PROVISIONS, 2_i64),
        ("1969-12-30", "ada", "alpine", counter::SPENT_NANOS, 5),
        ("2026-11-30", "ada", "alpine", counter::PROVISIONS, 1),
        (
            "2026-11-30",
            "ada",
            "alpine",
            counter::BOOKED_NANOS,
            9_000_000_000_000_000_001,
        ),
        (
            "2026-11-30",
            "ada",
            "alpine",
            counter::SPENT_NANOS,
            333_333_333,
        ),
        ("2026-11-30", "ada", "alpine", "provision_ms_b02", 1),
        ("2026-11-30", "bob", "alpine", counter::PROVISIONS, 3),
        ("2026-11-30", "bob", "alpine", "provision_ms_b02", 2),
        ("2026-12-01", "bob", "ubuntu", counter::PROVISIONS, 4),
        ("2026-12-01", "bob", "ubuntu", counter::SPENT_NANOS, 7),
        ("2026-12-01", "bob", "ubuntu", "reap_late_ms_b01", 4),
    ];
    let client = redis::Client::open(config.url.as_str()).expect("a Redis client");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("a raw connection");
    let base = format!("{{{}}}:", config.prefix);
    for (d, owner, offering, name, value) in old_rows {
        let _: i64 = redis::cmd("HINCRBY")
            .arg(format!("{base}stats:{d}"))
            .arg(format!("{owner}\x1f{offering}\x1f{name}"))
            .arg(value)
            .query_async(&mut raw)
            .await
            .expect("an old statistics field");
    }
    let old: Vec<StatsRow> =
        stats::merge_rows(old_rows.iter().map(|(d, owner, offering, name, value)| {
            let mut row = StatsRow::new(StatsKey {
                day: day(d),
                owner: (*owner).to_owned(),
                offering: (*offering).to_owned(),
            });
            row.add(name, *value);
            row
        }));

    let (first, second) = tokio::join!(
        RedisStore::connect(config.clone()),
        RedisStore::connect(config.clone())
    );
    let (first, second) = (first.expect("connect"), second.expect("connect"));
    for store in [&first, &second] {
        let late = store
            .daily_stats(day("2026-11-30"), day("2026-12-01"))
            .await
            .expect("totals");
        assert_eq!(
            late,
            stats::merge_rows(old[1..].iter().map(stats::day_total))
        );
        assert_eq!(late[0].get("provision_ms_b02"), 3, "ada's and bob's, once");
        let early = store
            .daily_stats(day("1969-12-30"), day("1969-12-31"))
            .await
            .expect("totals");
        assert_eq!(
            early,
            stats::merge_rows(old[..1].iter().map(stats::day_total))
        );
        for (from, to) in [
            ("1969-12-30", "1969-12-30"),
            ("1969-11-01", "1970-12-01"),
            ("2026-11-30", "2026-11-30"),
            ("2026-08-01", "2026-12-01"),
            ("2026-12-01", "2026-12-31"),
            ("2025-11-01", "2026-11-30"),
        ] {
            let (from, to) = (day(from), day(to));
            let inside = old
                .iter()
                .filter(|row| (from..=to).contains(&row.key.day))
                .map(stats::share_of);
            assert_eq!(
                store.share_stats(from, to).await.expect("shares"),
                stats::sum_shares(from, inside),
                "shares {from}..={to}"
            );
        }
    }
    let (_, keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg((0, "MATCH", format!("{base}stats:*"), "COUNT", 1000))
        .query_async(&mut raw)
        .await
        .expect("scan");
    assert!(keys.is_empty(), "old hashes are deleted: {keys:?}");
    let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{base}rollup:day:2026-11-30"))
        .query_async(&mut raw)
        .await
        .expect("the new day hash");
    assert_eq!(
        fields.get(counter::BOOKED_NANOS).map(String::as_str),
        Some("9000000000000000001"),
        "exact beyond 2^53"
    );
    first.delete_all().await.expect("clean up");
}
