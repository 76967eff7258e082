//! `examples/catalog.local.toml` is a valid catalog on the local test image,
//! with the built-in offerings at the built-in prices.

use lease_core::Catalog;
use lease_core::runtime::{Confinement, NetworkMode};

#[test]
fn the_offline_catalog_parses_and_keeps_the_default_offerings() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/catalog.local.toml"
    );
    let local = Catalog::from_path(path).expect("examples/catalog.local.toml");
    for offering in local.offerings() {
        assert_eq!(
            offering.image, "containerlease-test/busybox:latest",
            "{}",
            offering.key
        );
    }
    let defaults = Catalog::default();
    for default in defaults.offerings() {
        let offering = local
            .get(&default.key)
            .unwrap_or_else(|| panic!("offering {} missing", default.key));
        assert_eq!(
            offering.hourly_rate, default.hourly_rate,
            "{}",
            offering.key
        );
        assert_eq!(offering.nano_cpus, default.nano_cpus, "{}", offering.key);
        assert_eq!(offering.memory_mb, default.memory_mb, "{}", offering.key);
        assert_eq!(offering.pids, default.pids, "{}", offering.key);
        assert_eq!(offering.command, ["sleep", "infinity"], "{}", offering.key);
    }
    for default in defaults.offerings() {
        assert_eq!(
            local.get(&default.key).unwrap().confinement(),
            Confinement::default(),
            "{} keeps the default confinement",
            default.key
        );
    }
    let sandboxed = local.get("sandboxed").expect("the locked-down offering");
    let confinement = sandboxed.confinement();
    assert_eq!(confinement.network, NetworkMode::Isolated);
    assert!(confinement.read_only_root);
    assert_eq!(confinement.scratch_bytes, Some(8 << 20));
    assert_eq!(confinement.user.as_deref(), Some("1000:1000"));
    assert_eq!(confinement.disk_bytes, None);
    assert_eq!(local.get("alpine").unwrap().hourly_rate.to_string(), "0.01");
    assert_eq!(local.get("ubuntu").unwrap().hourly_rate.to_string(), "0.04");
}
