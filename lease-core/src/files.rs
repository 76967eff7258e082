//! Copying files into and out of a lease's container: tar archives as
//! streams of byte chunks (never a whole archive in memory), and the rules a
//! path inside a container must follow.

use futures::stream::BoxStream;

use crate::error::{BoxError, RuntimeError};

/// Longest path accepted inside a container, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// A tar archive read out of a container, chunk by chunk. An `Err` item
/// means the archive is incomplete (the copy failed part way).
pub type ArchiveStream = BoxStream<'static, Result<Vec<u8>, RuntimeError>>;

/// A tar archive going into a container, chunk by chunk. An `Err` item
/// aborts the copy: nothing of the archive is left in the container.
pub type ArchiveInput = BoxStream<'static, Result<Vec<u8>, BoxError>>;

/// What a path inside a container is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// A regular file (or anything that is not a directory).
    File,
    /// A directory: its archive holds the whole tree.
    Directory,
}

/// A path being copied out of a container.
pub struct ArchiveOut {
    /// A file or a directory.
    pub kind: PathKind,
    /// Its size on disk, as `du` counts it, measured before the copy began
    /// (the archive is somewhat larger: headers and padding).
    pub size: u64,
    /// The tar archive: one entry named after the path's last component
    /// (with the tree under it for a directory).
    pub archive: ArchiveStream,
}

impl std::fmt::Debug for ArchiveOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveOut")
            .field("kind", &self.kind)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// What a finished copy into a container wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyReport {
    /// Bytes of the archive taken in.
    pub archive_bytes: u64,
}

/// Why a path inside a container is refused before anything runs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty.
    #[error("the path is empty")]
    Empty,
    /// Not starting with `/`.
    #[error("the path `{0}` is not absolute")]
    Relative(String),
    /// Contains a NUL byte.
    #[error("the path contains a NUL character")]
    Nul,
    /// Has a `.` or `..` component, or an empty one (`//`).
    #[error("the path `{0}` is not clean: no `.`, `..` or empty components")]
    NotClean(String),
    /// `/` itself.
    #[error("the root directory `/` cannot be copied as a whole")]
    Root,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
}

/// Checks a path inside a container: absolute, clean (no `.`, `..` or empty
/// components), no NUL, not `/`, at most [`MAX_PATH_BYTES`]. One trailing
/// `/` is allowed and dropped. Returns the path to use.
///
/// ```
/// use lease_core::files::{PathError, check_container_path};
/// assert_eq!(check_container_path("/tmp/"), Ok("/tmp"));
/// assert_eq!(check_container_path("/tmp/a b"), Ok("/tmp/a b"));
/// assert!(matches!(check_container_path("tmp"), Err(PathError::Relative(_))));
/// assert!(matches!(check_container_path("/tmp/../etc"), Err(PathError::NotClean(_))));
/// assert_eq!(check_container_path("/"), Err(PathError::Root));
/// ```
pub fn check_container_path(path: &str) -> Result<&str, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::Relative(path.to_owned()));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(PathError::Root);
    }
    if rest
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(PathError::NotClean(path.to_owned()));
    }
    Ok(&path[..rest.len() + 1])
}

/// Splits a checked path into its parent directory and its last component.
///
/// ```
/// use lease_core::files::split_parent;
/// assert_eq!(split_parent("/tmp/a"), ("/tmp", "a"));
/// assert_eq!(split_parent("/etc"), ("/", "etc"));
/// ```
pub fn split_parent(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((parent, name)) => (parent, name),
        None => ("/", path),
    }
}

impl From<PathError> for RuntimeError {
    fn from(error: PathError) -> Self {
        RuntimeError::Invalid(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            "", "a", "./a", "/a/../b", "/a/./b", "/a//b", "//", "/..", "/a/..", "/a\0b",
        ] {
            assert!(check_container_path(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_container_path(&format!("/{}", "a".repeat(MAX_PATH_BYTES))).is_err());
        assert_eq!(check_container_path("/a/b/"), Ok("/a/b"));
        assert_eq!(check_container_path("/a/..b"), Ok("/a/..b"));
    }
}
