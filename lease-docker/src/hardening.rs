//! How a lease's container is locked down for an untrusted developer.
//!
//! Every container gets:
//!
//! - `Privileged: false`, no host bind mounts, no extra mounts, no published
//!   ports, no restart policy (an ended lease stays ended);
//! - `CapDrop: ["ALL"]` and only [`ADDED_CAPABILITIES`] back;
//! - `SecurityOpt: ["no-new-privileges:true"]`: setuid binaries gain nothing;
//! - `Init: true`: a small init reaps the shell's zombies and forwards signals;
//! - the offering's limits: `NanoCpus`, `Memory` (and `MemorySwap` equal to it,
//!   so no swap on top), `PidsLimit` (no fork bombs);
//! - a private IPC namespace;
//! - json-file logs capped at [`LOG_MAX_SIZE`] × [`LOG_MAX_FILES`], so a
//!   noisy container cannot fill the host's disk;
//! - the namespace's network for the offering's mode, inter-container
//!   traffic off (see [`crate::network`]), or no network at all.
//!
//! And, as the offering's confinement asks:
//!
//! - `ReadonlyRootfs` with one writable tmpfs at
//!   [`lease_core::runtime::SCRATCH_PATH`] (`/tmp`) of the scratch size
//!   (`nosuid,nodev`, mode 1777 so a non-root user can write). A write past
//!   the size fails with "no space left on device"; tmpfs pages count
//!   against the memory limit. `/dev/shm` (the engine's 64 MiB, private to
//!   the container) also stays writable, as POSIX shared memory needs it;
//! - `User`: a non-root numeric `uid[:gid]` for the command and every exec;
//! - `StorageOpt size=`: a limit on the writable layer, only on storage
//!   drivers that enforce it (see [`crate::storage`]).

use std::collections::HashMap;

use bollard::models::{HostConfig, HostConfigLogConfig, RestartPolicy, RestartPolicyNameEnum};
use lease_core::runtime::{Confinement, Limits, SCRATCH_PATH};

/// Capabilities dropped before [`ADDED_CAPABILITIES`] are added back: all.
pub const DROPPED_CAPABILITIES: [&str; 1] = ["ALL"];

/// The capabilities a dev shell gets back, out of Docker's default set of 14.
///
/// The user is root inside the container, but a root without capabilities
/// cannot do ordinary shell work. These five are what package managers and
/// everyday file handling need, and none of them reach outside the
/// container:
///
/// - `CHOWN`: change a file's owner (`chown`, `tar -x`, `dpkg` unpacking);
/// - `DAC_OVERRIDE`: read and write files regardless of their mode bits, as
///   root expects to (editing a 0600 file that belongs to another user);
/// - `FOWNER`: `chmod`/`touch -m` on files the process does not own;
/// - `SETUID` and `SETGID`: switch to another user (`su`, and `apt`, which
///   drops to its `_apt` user to download).
///
/// Left out of Docker's defaults: `NET_RAW` (raw sockets: packet spoofing
/// and sniffing on the bridge), `MKNOD` (device nodes), `SYS_CHROOT`,
/// `SETPCAP`, `SETFCAP` (granting capabilities to files), `FSETID`, `KILL`
/// (signalling other users' processes), `NET_BIND_SERVICE` (no ports are
/// published anyway) and `AUDIT_WRITE`.
pub const ADDED_CAPABILITIES: [&str; 5] = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"];

/// Security options of every container.
pub const SECURITY_OPTIONS: [&str; 1] = ["no-new-privileges:true"];

/// Largest json-file log file of a container.
pub const LOG_MAX_SIZE: &str = "10m";

/// Most json-file log files kept per container.
pub const LOG_MAX_FILES: &str = "3";

/// Mount options of the scratch tmpfs, before its size.
pub const SCRATCH_OPTIONS: &str = "rw,nosuid,nodev,mode=1777";

/// The host configuration of a lease's container with `limits` and
/// `confinement`, attached to `network_mode` (`none` or a network id).
pub(crate) fn host_config(
    limits: &Limits,
    confinement: &Confinement,
    network_mode: String,
) -> HostConfig {
    let scratch = confinement.scratch_bytes.map(|bytes| {
        HashMap::from([(
            SCRATCH_PATH.to_owned(),
            format!("{SCRATCH_OPTIONS},size={bytes}"),
        )])
    });
    let disk = confinement
        .disk_bytes
        .map(|bytes| HashMap::from([("size".to_owned(), bytes.to_string())]));
    HostConfig {
        readonly_rootfs: Some(confinement.read_only_root),
        tmpfs: scratch,
        storage_opt: disk,
        network_mode: Some(network_mode),
        ..base_host_config(limits)
    }
}

/// The hardening every container gets, whatever its confinement.
fn base_host_config(limits: &Limits) -> HostConfig {
    let strings = |items: &[&str]| {
        items
            .iter()
            .map(|item| (*item).to_owned())
            .collect::<Vec<_>>()
    };
    HostConfig {
        privileged: Some(false),
        cap_drop: Some(strings(&DROPPED_CAPABILITIES)),
        cap_add: Some(strings(&ADDED_CAPABILITIES)),
        security_opt: Some(strings(&SECURITY_OPTIONS)),
        init: Some(true),
        binds: Some(Vec::new()),
        mounts: Some(Vec::new()),
        publish_all_ports: Some(false),
        nano_cpus: Some(limits.nano_cpus),
        memory: Some(limits.memory_bytes),
        memory_swap: Some(limits.memory_bytes),
        pids_limit: Some(limits.pids),
        ipc_mode: Some("private".to_owned()),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        auto_remove: Some(false),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".to_owned()),
            config: Some(HashMap::from([
                ("max-size".to_owned(), LOG_MAX_SIZE.to_owned()),
                ("max-file".to_owned(), LOG_MAX_FILES.to_owned()),
            ])),
        }),
        ..HostConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_config_carries_limits_and_hardening() {
        let limits = Limits {
            nano_cpus: 500_000_000,
            memory_bytes: 64 << 20,
            pids: 64,
        };
        let config = host_config(&limits, &Confinement::default(), "net-id".into());
        assert_eq!(config.nano_cpus, Some(500_000_000));
        assert_eq!(config.memory, Some(64 << 20));
        assert_eq!(config.memory_swap, Some(64 << 20));
        assert_eq!(config.pids_limit, Some(64));
        assert_eq!(config.privileged, Some(false));
        assert_eq!(config.cap_drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert_eq!(config.init, Some(true));
        assert!(config.binds.as_ref().is_some_and(Vec::is_empty));
        assert!(
            config
                .security_opt
                .unwrap_or_default()
                .iter()
                .any(|o| o.starts_with("no-new-privileges"))
        );
        assert_eq!(config.network_mode.as_deref(), Some("net-id"));
        assert_eq!(config.readonly_rootfs, Some(false));
        assert_eq!(config.tmpfs, None);
        assert_eq!(config.storage_opt, None);
    }

    #[test]
    fn confinement_makes_a_read_only_root_a_sized_scratch_and_a_disk_limit() {
        let limits = Limits {
            nano_cpus: 1,
            memory_bytes: 64 << 20,
            pids: 1,
        };
        let confinement = Confinement {
            read_only_root: true,
            scratch_bytes: Some(8 << 20),
            disk_bytes: Some(1 << 30),
            ..Confinement::default()
        };
        let config = host_config(&limits, &confinement, "none".into());
        assert_eq!(config.readonly_rootfs, Some(true));
        assert_eq!(
            config.tmpfs.unwrap().get("/tmp").map(String::as_str),
            Some("rw,nosuid,nodev,mode=1777,size=8388608")
        );
        assert_eq!(
            config.storage_opt.unwrap().get("size").map(String::as_str),
            Some("1073741824")
        );
        assert_eq!(config.network_mode.as_deref(), Some("none"));
        assert_eq!(config.memory, Some(64 << 20), "the limits stay");
    }
}
