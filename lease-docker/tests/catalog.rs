//! `examples/catalog.local.toml` is a valid catalog on the local test image,
//! priced like the built-in one.

use lease_core::Catalog;

#[test]
fn the_offline_catalog_parses_and_matches_the_defaults() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/catalog.local.toml"
    );
    let local = Catalog::from_path(path).expect("examples/catalog.local.toml");
    let defaults = Catalog::default();
    assert_eq!(
        local.keys().collect::<Vec<_>>(),
        defaults.keys().collect::<Vec<_>>()
    );
    for offering in local.offerings() {
        assert_eq!(
            offering.image, "containerlease-test/busybox:latest",
            "{}",
            offering.key
        );
        let default = defaults.get(&offering.key).expect("same keys");
        assert_eq!(
            offering.hourly_rate, default.hourly_rate,
            "{}",
            offering.key
        );
        assert_eq!(offering.nano_cpus, default.nano_cpus, "{}", offering.key);
        assert_eq!(offering.memory_mb, default.memory_mb, "{}", offering.key);
        assert_eq!(offering.pids, default.pids, "{}", offering.key);
        assert_eq!(offering.command, ["sleep", "infinity"]);
    }
    assert_eq!(local.get("alpine").unwrap().hourly_rate.to_string(), "0.01");
    assert_eq!(local.get("ubuntu").unwrap().hourly_rate.to_string(), "0.04");
}
