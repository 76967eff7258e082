//! `rediss://` against a TLS-only redis-server of the test's own, with a CA
//! made for the test (feature `tls`; needs `openssl` to make the CA).

#![cfg(feature = "tls")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration as StdDuration;

use chrono::Duration;
use lease_core::testing::conformance::{sample_lease, unique_owner};
use lease_core::{Admission, LeaseStore, StoreError};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use lease_testkit::redis::{PrivateRedis, scratch_dir};

/// Makes `ca.pem` and a `cert.pem`/`key.pem` for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|output| output.status.success())
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write san.ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=lease test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "cert.pem",
    ])
}

#[tokio::test]
async fn rediss_with_a_configured_ca() {
    let dir = scratch_dir("tls");
    if !make_certificates(&dir) {
        lease_testkit::skip_or_fail("openssl could not make test certificates");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let ca = std::fs::read(dir.join("ca.pem")).expect("ca.pem");
    let Some(server) = PrivateRedis::builder("tls").dir(dir).tls().start() else {
        return;
    };
    let url = server.url().replace("redis://", "rediss://");

    let config = RedisStoreConfig::new(url.clone())
        .prefix(common::unique_prefix("tls"))
        .tls_root_certificate(ca);
    let store = RedisStore::connect(config).await.expect("connect over TLS");
    let lease = store
        .insert(
            &sample_lease(&unique_owner("tls"), Duration::minutes(5)),
            &Admission::default(),
        )
        .await
        .expect("insert over TLS");
    assert_eq!(store.get(&lease.id).await.expect("get over TLS"), lease);

    // Without the CA the server's certificate is not trusted: no connection.
    let untrusted = RedisStoreConfig::new(url.clone())
        .connection_timeout(StdDuration::from_secs(1))
        .reconnect_retries(0);
    assert!(matches!(
        RedisStore::connect(untrusted).await,
        Err(StoreError::Unavailable(_))
    ));
    // Plain text against the TLS port fails too.
    let plain = RedisStoreConfig::new(server.url())
        .connection_timeout(StdDuration::from_secs(1))
        .response_timeout(StdDuration::from_secs(1))
        .reconnect_retries(0);
    assert!(RedisStore::connect(plain).await.is_err());
}
