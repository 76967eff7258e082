//! Issue 15: limits that hold however requests are timed. 40 provisions sent
//! at once against the real `lease-server` on each store — memory, a SQLite
//! file, and a private Redis shared by two servers (two replicas, the
//! burst split between them) — must be admitted exactly up to the limit:
//!
//! - `--max-leases-per-owner 5`: exactly 5 × 202, the rest 429
//!   `quota_exceeded` naming `max_leases_per_owner`;
//! - `--max-leases 3` (the host, all owners): exactly 3 × 202, the rest 503
//!   `capacity_exhausted` naming `max_leases`.
//!
//! Each ends with THE CHECK (containers of the namespace = live leases)
//! and by deleting everything. Figures: `races.<store>.<limit>.admitted`,
//! `.refused`, `.other` (answers that are neither: must be 0).

use std::collections::BTreeMap;
use std::time::Duration;

use lease_reliability::api::{Api, ApiError, Burst, Response, acknowledged_ids};
use lease_reliability::check::{assert_consistent, delete_all_and_assert_empty};
use lease_reliability::docker::NamespaceGuard;
use lease_reliability::server::{self, Server, ServerApi, ServerConfig};
use lease_reliability::store::{ScenarioStore, StoreKind};
use lease_reliability::{figure, random_namespace};

/// Provisions sent at once.
const RACERS: usize = 40;

/// A limit under test: the flag that sets it, its value, and how a refusal
/// answers.
#[derive(Clone, Copy, Debug)]
struct Race {
    /// The limit's name, as the flag and the error's `limit` spell it.
    limit: &'static str,
    /// The server flag.
    flag: &'static str,
    /// Its value.
    max: usize,
    /// The refusal's status.
    refused_status: u16,
    /// The refusal's error code.
    refused_code: &'static str,
}

const PER_OWNER: Race = Race {
    limit: "max_leases_per_owner",
    flag: "--max-leases-per-owner",
    max: 5,
    refused_status: 429,
    refused_code: "quota_exceeded",
};

const HOST: Race = Race {
    limit: "max_leases",
    flag: "--max-leases",
    max: 3,
    refused_status: 503,
    refused_code: "capacity_exhausted",
};

#[test]
fn per_owner_limit_holds_under_a_40_way_race_memory() {
    race_on(StoreKind::Memory, 1, PER_OWNER);
}

#[test]
fn per_owner_limit_holds_under_a_40_way_race_sqlite() {
    race_on(StoreKind::Sqlite, 1, PER_OWNER);
}

#[test]
fn per_owner_limit_holds_under_a_40_way_race_two_replicas_on_redis() {
    race_on(StoreKind::Redis, 2, PER_OWNER);
}

#[test]
fn host_capacity_holds_under_a_40_way_race_memory() {
    race_on(StoreKind::Memory, 1, HOST);
}

#[test]
fn host_capacity_holds_under_a_40_way_race_sqlite() {
    race_on(StoreKind::Sqlite, 1, HOST);
}

#[test]
fn host_capacity_holds_under_a_40_way_race_two_replicas_on_redis() {
    race_on(StoreKind::Redis, 2, HOST);
}

/// Starts `replicas` servers on one store of `kind` with `race`'s limit,
/// sends [`RACERS`] provisions at once (split evenly between the servers)
/// and checks that exactly `race.max` are admitted.
fn race_on(kind: StoreKind, replicas: usize, race: Race) {
    let test = format!("races-{}-{}", kind.name(), race.limit);
    let Some(store) = ScenarioStore::start(kind, &test) else {
        return;
    };
    let namespace = random_namespace();
    let guard = NamespaceGuard::new(&namespace);
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let config = with_limit(store.configure(server::config(&namespace)), race);
        let Some(server) = Server::start(config) else {
            return;
        };
        servers.push(server);
    }
    let apis: Vec<Api> = servers.iter().map(|server| server.api()).collect();
    let bursts: Vec<Burst> = apis
        .iter()
        .map(|api| Burst::start(api, "busybox", 10, RACERS / replicas))
        .collect();
    let answers: Vec<Result<Response, ApiError>> =
        bursts.into_iter().flat_map(Burst::join).collect();

    let tally = tally(&answers, race);
    let name = format!("races.{}.{}", kind.name(), race.limit);
    figure(&format!("{name}.admitted"), tally.admitted);
    figure(&format!("{name}.refused"), tally.refused);
    figure(&format!("{name}.other"), tally.other.len());
    assert!(
        tally.other.is_empty(),
        "unexpected answers: {:?}",
        tally.other
    );
    assert_eq!(
        tally.admitted, race.max,
        "admitted past the limit: {answers:?}"
    );
    assert_eq!(tally.refused, RACERS - race.max);

    // The store holds exactly the admitted leases, whichever server is asked.
    let mut ids = acknowledged_ids(&answers);
    ids.sort();
    for api in &apis {
        let mut listed: Vec<String> = api
            .list()
            .expect("list leases")
            .iter()
            .filter_map(|lease| lease["id"].as_str().map(str::to_owned))
            .collect();
        listed.sort();
        assert_eq!(listed, ids, "the store's leases are the admitted ones");
    }
    assert_consistent(&apis[0], &namespace, Duration::from_secs(60));
    delete_all_and_assert_empty(&apis[0], &namespace, Duration::from_secs(60));
    drop(servers);
    drop(guard);
}

/// `config` with `race`'s limit set (the suite's config already sets the
/// per-owner limit, to none: a flag may be given only once).
fn with_limit(config: ServerConfig, race: Race) -> ServerConfig {
    let max = race.max.to_string();
    match race.limit {
        "max_leases_per_owner" => config.max_leases_per_owner(race.max as u32),
        _ => config.args([race.flag, max.as_str()]),
    }
}

/// How a burst was answered.
#[derive(Debug, Default)]
struct Tally {
    admitted: usize,
    refused: usize,
    /// Anything else: status and body, or the client's error.
    other: Vec<String>,
}

/// Sorts `answers` into admitted (202), refused by `race`'s limit (its
/// status, error code and `limit` field), and anything else.
fn tally(answers: &[Result<Response, ApiError>], race: Race) -> Tally {
    let mut tally = Tally::default();
    let mut unexpected = BTreeMap::new();
    for answer in answers {
        match answer {
            Ok(response) if response.status == 202 => tally.admitted += 1,
            Ok(response)
                if response.status == race.refused_status
                    && response.body["error"]["code"] == race.refused_code
                    && response.body["error"]["limit"] == race.limit =>
            {
                tally.refused += 1;
            }
            Ok(response) => {
                *unexpected
                    .entry(format!("{} {}", response.status, response.body))
                    .or_insert(0usize) += 1;
            }
            Err(error) => *unexpected.entry(format!("{error:?}")).or_insert(0) += 1,
        }
    }
    tally.other = unexpected
        .into_iter()
        .map(|(answer, count)| format!("{count} × {answer}"))
        .collect();
    tally
}
