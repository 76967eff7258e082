//! The [fake runtime](super::fake_runtime)'s files: an in-memory tree per
//! container that tar archives are unpacked into and read out of, so that
//! copies behave as they do in a real container (all or nothing, one entry
//! named after the path's last component).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Component;

use futures::StreamExt;

use crate::error::RuntimeError;
use crate::files::{ArchiveOut, PathKind};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
}

/// A container's files by absolute path (`/` and `/tmp` exist).
#[derive(Debug)]
pub(crate) struct FileTree {
    entries: BTreeMap<String, Entry>,
}

impl Default for FileTree {
    fn default() -> Self {
        FileTree {
            entries: BTreeMap::from([
                ("/".to_owned(), Entry::Dir),
                ("/tmp".to_owned(), Entry::Dir),
            ]),
        }
    }
}

/// `path` without its trailing slashes (`/` stays).
fn normal(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn unpack_error(error: impl Into<crate::BoxError>) -> RuntimeError {
    RuntimeError::operation("unpack the archive", error)
}

impl FileTree {
    /// `dir` exists and is a directory.
    pub(crate) fn check_dir(&self, dir: &str) -> Result<(), RuntimeError> {
        match self.entries.get(&normal(dir)) {
            Some(Entry::Dir) => Ok(()),
            Some(Entry::File(_)) => Err(RuntimeError::PathNotAllowed {
                path: dir.to_owned(),
                reason: "not a directory".to_owned(),
            }),
            None => Err(RuntimeError::PathNotFound {
                path: dir.to_owned(),
            }),
        }
    }

    /// Unpacks the tar archive `bytes` into `dir`, all or nothing.
    pub(crate) fn unpack(&mut self, dir: &str, bytes: &[u8]) -> Result<(), RuntimeError> {
        self.check_dir(dir)?;
        let dir = normal(dir);
        let mut unpacked = Vec::new();
        let mut archive = tar::Archive::new(bytes);
        for entry in archive.entries().map_err(unpack_error)? {
            let mut entry = entry.map_err(unpack_error)?;
            let path = entry.path().map_err(unpack_error)?.into_owned();
            let mut target = dir.clone();
            for component in path.components() {
                match component {
                    Component::Normal(name) => target = join(&target, &name.to_string_lossy()),
                    Component::CurDir => {}
                    _ => return Err(unpack_error(format!("unsafe entry {}", path.display()))),
                }
            }
            let kind = if entry.header().entry_type().is_dir() {
                Entry::Dir
            } else {
                let mut content = Vec::new();
                entry.read_to_end(&mut content).map_err(unpack_error)?;
                Entry::File(content)
            };
            unpacked.push((target, kind));
        }
        for (path, kind) in unpacked {
            self.insert_with_parents(path, kind);
        }
        Ok(())
    }

    fn insert_with_parents(&mut self, path: String, kind: Entry) {
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            let up = if up.is_empty() { "/" } else { up };
            self.entries.entry(up.to_owned()).or_insert(Entry::Dir);
            if up == "/" {
                break;
            }
            parent = up;
        }
        self.entries.insert(path, kind);
    }

    /// `path` (and, for a directory, the tree under it) as a tar archive
    /// with one top entry named after its last component.
    pub(crate) fn archive(&self, path: &str) -> Result<ArchiveOut, RuntimeError> {
        let path = normal(path);
        let top = self
            .entries
            .get(&path)
            .ok_or_else(|| RuntimeError::PathNotFound { path: path.clone() })?;
        let name = path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or(".");
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let under = self
            .entries
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix) && **key != path);
        let mut builder = tar::Builder::new(Vec::new());
        let mut size = 0;
        let mut append = |entry_name: String, entry: &Entry| -> Result<(), RuntimeError> {
            let mut header = tar::Header::new_gnu();
            let data: &[u8] = match entry {
                Entry::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    &[]
                }
                Entry::File(content) => {
                    header.set_mode(0o644);
                    size += content.len() as u64;
                    content
                }
            };
            header.set_size(data.len() as u64);
            builder
                .append_data(&mut header, entry_name, data)
                .map_err(|error| RuntimeError::operation("pack the archive", error))
        };
        append(name.to_owned(), top)?;
        for (key, entry) in under {
            append(format!("{name}/{}", &key[prefix.len()..]), entry)?;
        }
        let bytes = builder
            .into_inner()
            .map_err(|error| RuntimeError::operation("pack the archive", error))?;
        let kind = match top {
            Entry::Dir => PathKind::Directory,
            Entry::File(_) => PathKind::File,
        };
        Ok(ArchiveOut {
            kind,
            size,
            archive: futures::stream::iter([Ok(bytes)]).boxed(),
        })
    }
}
