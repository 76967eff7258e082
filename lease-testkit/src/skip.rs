//! The CI skip policy, in one place and one message format.
//!
//! A test that needs a service (Docker, the test image, Redis, a browser, a
//! binary) and cannot have it is skipped locally with a printed reason —
//! `SKIPPED <test>: <reason>` on stderr — and fails under `CI=true`, where
//! every service is required, with `<test>: <reason> (CI=true: required)`.

use std::fmt::Display;

/// Whether this is a CI run (`CI=true`), where a missing service fails the
/// test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// The name of the running test: libtest names each test's thread after it.
/// `test` when called from another thread (a spawned task, `main`).
pub fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" && !name.starts_with("tokio-") => name.to_owned(),
        _ => "test".to_owned(),
    }
}

/// Prints why the current test is skipped, or panics under `CI=true`.
///
/// # Panics
///
/// Under `CI=true`, always: there a missing service is a failure.
pub fn skip_or_fail(reason: impl Display) {
    let test = current_test();
    assert!(!in_ci(), "{test}: {reason} (CI=true: required)");
    eprintln!("SKIPPED {test}: {reason}");
}

/// [`skip_or_fail`], then `None`: `let Some(x) = ... else { return skip(..) }`
/// style helpers return this.
pub fn skip<T>(reason: impl Display) -> Option<T> {
    skip_or_fail(reason);
    None
}
