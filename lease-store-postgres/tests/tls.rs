//! TLS on a real PostgreSQL (`ssl = on`, a private cluster whose
//! `pg_hba.conf` admits TCP clients over TLS only): libpq's `sslmode`
//! values and `sslrootcert` in the store URL.

use std::time::Duration;

use lease_core::error::error_chain;
use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, LeaseStore};
use lease_store_postgres::{PostgresError, PostgresStore, PostgresStoreConfig};
use lease_testkit::postgres::{PrivatePostgres, TestCa, TlsOptions};

/// A password that must never show in an error.
const PASSWORD: &str = "hunter2-tls-secret";

/// A TLS-only cluster whose certificate is for `names`.
fn tls_only(tag: &str, names: &[&str]) -> Option<PrivatePostgres> {
    PrivatePostgres::start_tls(
        tag,
        TlsOptions {
            server_names: names.iter().map(|name| (*name).to_owned()).collect(),
            tls_only: true,
        },
    )
}

/// `postgres://postgres:<PASSWORD>@<host>:<port>/postgres` and `query`.
fn url(postgres: &PrivatePostgres, host: &str, query: &str) -> String {
    format!(
        "postgres://postgres:{PASSWORD}@{host}:{}/postgres{query}",
        postgres.port()
    )
}

/// `?sslmode=<mode>&sslrootcert=<ca>`
fn verify(mode: &str, ca: &std::path::Path) -> String {
    format!("?sslmode={mode}&sslrootcert={}", ca.display())
}

/// Connects (a long connect timeout: a refusal must come from TLS or the
/// server, not from waiting).
async fn connect(url: &str) -> Result<PostgresStore, PostgresError> {
    PostgresStore::connect(
        PostgresStoreConfig::new(url)
            .namespace("tls")
            .pool_size(2)
            .connect_timeout(Duration::from_secs(30)),
    )
    .await
}

/// Connects, and writes and reads a lease through the store.
async fn works(what: &str, url: &str) {
    let store = connect(url)
        .await
        .unwrap_or_else(|error| panic!("{what}: {}", error_chain(&error)));
    let lease = sample_lease("tls-owner", chrono::Duration::hours(1));
    store
        .insert(&lease, &Admission::default())
        .await
        .unwrap_or_else(|error| panic!("{what}: insert: {error}"));
    let read = store.get(&lease.id).await.expect("get");
    assert_eq!(read.id, lease.id, "{what}");
}

/// Connecting fails as a `Connect` error whose whole chain mentions
/// `expected` and not the password; the chain is returned.
async fn refused(what: &str, url: &str, expected: &str) -> String {
    let error = connect(url)
        .await
        .err()
        .unwrap_or_else(|| panic!("{what}: connected"));
    let chain = error_chain(&error);
    assert!(
        matches!(error, PostgresError::Connect { .. }),
        "{what}: {chain}"
    );
    assert!(
        chain.contains(expected),
        "{what}: `{expected}` not in {chain}"
    );
    assert!(!chain.contains("timed out"), "{what}: waited: {chain}");
    for shown in [chain.clone(), format!("{error:?}")] {
        assert!(!shown.contains(PASSWORD), "{what}: password shown: {shown}");
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_against_a_tls_only_server() {
    let Some(postgres) = tls_only("tls-modes", &["localhost", "127.0.0.1"]) else {
        return;
    };
    let ca = postgres.ca_file().expect("a TLS cluster has a CA");

    // TLS-only: every success below was encrypted.
    works(
        "verify-full, the right CA, by IP",
        &url(&postgres, "127.0.0.1", &verify("verify-full", &ca)),
    )
    .await;
    works(
        "verify-full, the right CA, by name",
        &url(&postgres, "localhost", &verify("verify-full", &ca)),
    )
    .await;
    works(
        "verify-ca",
        &url(&postgres, "127.0.0.1", &verify("verify-ca", &ca)),
    )
    .await;
    works(
        "require, no CA",
        &url(&postgres, "127.0.0.1", "?sslmode=require"),
    )
    .await;
    works("prefer (the default)", &url(&postgres, "127.0.0.1", "")).await;

    let scratch = postgres.dir().join("other-ca");
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let other = TestCa::generate(&scratch, "other");
    for mode in ["verify-full", "verify-ca"] {
        refused(
            &format!("{mode} with another CA"),
            &url(&postgres, "127.0.0.1", &verify(mode, &other.cert_file())),
            "certificate",
        )
        .await;
    }
    // libpq: require with a root file named checks the chain.
    refused(
        "require with another CA named",
        &url(
            &postgres,
            "127.0.0.1",
            &verify("require", &other.cert_file()),
        ),
        "certificate",
    )
    .await;

    let chain = refused(
        "sslmode=disable against hostssl only",
        &url(&postgres, "127.0.0.1", "?sslmode=disable"),
        "pg_hba.conf",
    )
    .await;
    assert!(chain.contains("no encryption"), "{chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let Some(postgres) = tls_only("tls-names", &["db.example.test"]) else {
        return;
    };
    let ca = postgres.ca_file().expect("a TLS cluster has a CA");
    refused(
        "verify-full, certificate for another name",
        &url(&postgres, "127.0.0.1", &verify("verify-full", &ca)),
        "certificate not valid for name",
    )
    .await;
    works(
        "verify-ca, certificate for another name",
        &url(&postgres, "127.0.0.1", &verify("verify-ca", &ca)),
    )
    .await;
}

#[tokio::test]
async fn bad_tls_parameters_are_url_errors_before_connecting() {
    // Nothing listens on port 9: a URL error must come before any connect.
    let base = format!("postgres://ada:{PASSWORD}@127.0.0.1:9/db");
    for (query, expected) in [
        (
            "?sslmode=verify_full",
            "sslmode `verify_full` is not supported",
        ),
        ("?sslmode=allow", "sslmode `allow` is not supported"),
        ("?sslmode=", "sslmode `` is not supported"),
        ("?sslmode=%4", "bad %-escape"),
        ("?sslrootcert=", "sslrootcert is empty"),
        (
            "?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "cannot read sslrootcert `/nonexistent/ca.pem`",
        ),
    ] {
        let error = connect(&format!("{base}{query}"))
            .await
            .err()
            .unwrap_or_else(|| panic!("{query}: accepted"));
        let shown = error.to_string();
        assert!(
            matches!(error, PostgresError::Url { .. }),
            "{query}: {shown}"
        );
        assert!(shown.contains(expected), "{query}: {shown}");
        assert!(!shown.contains(PASSWORD), "{query}: {shown}");
    }
}
