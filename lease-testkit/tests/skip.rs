//! The skip policy names the test it skips.

#[test]
fn the_current_test_is_named_after_its_thread() {
    assert_eq!(
        lease_testkit::skip::current_test(),
        "the_current_test_is_named_after_its_thread"
    );
    let elsewhere = std::thread::spawn(lease_testkit::skip::current_test)
        .join()
        .expect("thread");
    assert_eq!(elsewhere, "test");
}

#[test]
fn skipping_returns_nothing_locally_and_fails_under_ci() {
    // One test reads CI, so the variable is not raced by another test here.
    let outcome = std::panic::catch_unwind(|| lease_testkit::skip::<u8>("no such service"));
    if lease_testkit::in_ci() {
        let message = outcome.expect_err("CI=true must fail");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            text,
            "skipping_returns_nothing_locally_and_fails_under_ci: no such service (CI=true: required)"
        );
    } else {
        assert_eq!(outcome.ok(), Some(None));
    }
}
