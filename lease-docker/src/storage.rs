//! Whether the engine can limit a container's writable layer (the
//! `size` storage option behind an offering's `disk_mb`).
//!
//! Only some storage drivers enforce it: `btrfs`, `zfs`, `devicemapper`,
//! `windowsfilter`, and `overlay2` when its backing filesystem is xfs
//! mounted with the `pquota` option. Everything else — `overlay2` on ext4,
//! `fuse-overlayfs` (rootless and nested engines), `vfs`, the containerd
//! snapshotters — cannot. The driver and its backing filesystem come from
//! the engine's `/info`, read once per runtime; an offering that asks for a
//! disk limit on an engine that cannot enforce it is refused
//! ([`crate::DockerRuntime::check_catalog`] at start-up, and every creation
//! of such a container), never run without the limit. Whether xfs is
//! mounted with `pquota` is not visible in `/info`: on such an engine the
//! engine itself refuses the creation, with its own reason.

use std::fmt;

use bollard::models::SystemInfo;

/// The engine's storage driver, as `/info` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageDriver {
    /// The driver's name (`overlay2`, `fuse-overlayfs`, `btrfs`, …).
    pub driver: String,
    /// The filesystem under it (`Backing Filesystem` in the driver
    /// status: `xfs`, `extfs`, …), where the driver reports one.
    pub backing_filesystem: Option<String>,
}

impl StorageDriver {
    /// Reads the driver from the engine's `/info`.
    pub(crate) fn from_info(info: &SystemInfo) -> StorageDriver {
        let backing_filesystem =
            info.driver_status
                .iter()
                .flatten()
                .find_map(|pair| match pair.as_slice() {
                    [key, value] if key == "Backing Filesystem" => Some(value.clone()),
                    _ => None,
                });
        StorageDriver {
            driver: info.driver.clone().unwrap_or_default(),
            backing_filesystem,
        }
    }

    /// Whether it can enforce a limit on a container's writable layer.
    ///
    /// ```
    /// use lease_docker::storage::StorageDriver;
    /// let driver = |driver: &str, backing: Option<&str>| StorageDriver {
    ///     driver: driver.into(),
    ///     backing_filesystem: backing.map(Into::into),
    /// };
    /// assert!(driver("overlay2", Some("xfs")).supports_disk_limit());
    /// assert!(!driver("overlay2", Some("extfs")).supports_disk_limit());
    /// assert!(!driver("fuse-overlayfs", None).supports_disk_limit());
    /// assert!(driver("btrfs", Some("btrfs")).supports_disk_limit());
    /// ```
    pub fn supports_disk_limit(&self) -> bool {
        match self.driver.as_str() {
            "btrfs" | "zfs" | "devicemapper" | "windowsfilter" => true,
            "overlay2" => self.backing_filesystem.as_deref() == Some("xfs"),
            _ => false,
        }
    }
}

impl fmt::Display for StorageDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backing_filesystem {
            Some(backing) => write!(f, "{} on {backing}", self.driver),
            None => f.write_str(&self.driver),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backing_filesystem_comes_from_the_driver_status() {
        let info = SystemInfo {
            driver: Some("overlay2".into()),
            driver_status: Some(vec![
                vec!["Backing Filesystem".into(), "xfs".into()],
                vec!["Supports d_type".into(), "true".into()],
            ]),
            ..SystemInfo::default()
        };
        let driver = StorageDriver::from_info(&info);
        assert_eq!(driver.backing_filesystem.as_deref(), Some("xfs"));
        assert!(driver.supports_disk_limit());
        assert_eq!(driver.to_string(), "overlay2 on xfs");
        let nested = StorageDriver::from_info(&SystemInfo {
            driver: Some("fuse-overlayfs".into()),
            ..SystemInfo::default()
        });
        assert!(!nested.supports_disk_limit());
        assert_eq!(nested.to_string(), "fuse-overlayfs");
    }
}
