//! Copying files into and out of a running lease (`/api/containers/{id}/files`),
//! streaming both ways: archives are packed and unpacked as they travel,
//! never held whole in memory.
//!
//! [`Client::download`] and [`Client::upload`] move tar streams;
//! [`Client::copy_out`] and [`Client::copy_in`] are `lease cp`'s two
//! directions on local paths. Unpacking is safe: an entry that would land
//! outside the destination (an absolute path, `..`, a link) is refused.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use lease_http::files::PATH_KIND_HEADER;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::client::{Client, without_query};
use crate::error::ClientError;

/// Chunks of an archive on their way to the server.
const CHUNK: usize = 64 * 1024;

/// What `PUT …/files` answers.
#[derive(Clone, Debug, Deserialize)]
pub struct Uploaded {
    /// The directory unpacked into.
    pub path: String,
    /// Bytes sent.
    pub bytes: u64,
}

/// A download under way: what the path is, and its tar archive.
pub struct Download {
    /// Whether the remote path is a directory (else a file).
    pub directory: bool,
    /// The archive's bytes as they come.
    pub archive: std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

fn io_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

impl Client {
    /// `GET /api/containers/{id}/files?path=…`: `path` (a file or a
    /// directory) of a running lease as a tar archive.
    pub async fn download(&self, id: &str, path: &str) -> Result<Download, ClientError> {
        let mut url = self.url(&["api", "containers", id, "files"]);
        url.query_pairs_mut().append_pair("path", path);
        let mut request = self.streams.get(url.clone());
        if let Some(value) = self.authorization() {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: without_query(&url),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(ClientError::from_answer(status.as_u16(), &bytes, None));
        }
        let directory = response
            .headers()
            .get(PATH_KIND_HEADER)
            .is_some_and(|kind| kind.as_bytes() == b"directory");
        let archive = response.bytes_stream().map_err(io_error).boxed();
        Ok(Download { directory, archive })
    }

    /// `PUT /api/containers/{id}/files?path=dir`: unpacks the tar archive
    /// `archive` into the directory `dir` of a running lease.
    pub async fn upload<S>(&self, id: &str, dir: &str, archive: S) -> Result<Uploaded, ClientError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        let mut url = self.url(&["api", "containers", id, "files"]);
        url.query_pairs_mut().append_pair("path", dir);
        let mut request = self
            .streams
            .put(url.clone())
            .header(CONTENT_TYPE, "application/x-tar")
            .body(reqwest::Body::wrap_stream(archive));
        if let Some(value) = self.authorization() {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: without_query(&url),
                source,
            })?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ClientError::from_answer(status.as_u16(), &bytes, None));
        }
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            what: "an upload's answer",
            source,
        })
    }

    /// `lease cp ID:REMOTE LOCAL`: copies `remote` (a file or a directory)
    /// out of a lease. When `local` is an existing directory the copy goes
    /// inside it under its own name, else it becomes `local` (whose parent
    /// must exist). Returns where it landed.
    pub async fn copy_out(
        &self,
        id: &str,
        remote: &str,
        local: &Path,
    ) -> Result<PathBuf, ClientError> {
        let download = self.download(id, remote).await?;
        let remote_name = remote
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (into, rename) = if local.is_dir() {
            (local.to_path_buf(), None)
        } else {
            let parent = match local.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = local
                .file_name()
                .map(PathBuf::from)
                .ok_or_else(|| local_error(local, "not a file name"))?;
            (parent, Some(name))
        };
        let landed = into.join(
            rename
                .clone()
                .unwrap_or_else(|| PathBuf::from(&remote_name)),
        );
        let reader = SyncIoBridge::new(StreamReader::new(download.archive));
        let target = into.clone();
        tokio::task::spawn_blocking(move || {
            unpack(reader, &target, &remote_name, rename.as_deref())
        })
        .await
        .map_err(|join| ClientError::Protocol(format!("the unpacking task failed: {join}")))?
        .map_err(|error| {
            let cause = std::error::Error::source(&error)
                .map(|source| format!(": {source}"))
                .unwrap_or_default();
            ClientError::Protocol(format!("cannot unpack the download: {error}{cause}"))
        })?;
        Ok(landed)
    }

    /// `lease cp LOCAL ID:REMOTE`: copies `local` (a file or a directory)
    /// into a lease. When `remote` is an existing directory the copy goes
    /// inside it under its own name, else it becomes `remote` (whose parent
    /// must exist). Returns the bytes sent.
    pub async fn copy_in(&self, id: &str, local: &Path, remote: &str) -> Result<u64, ClientError> {
        std::fs::symlink_metadata(local).map_err(|error| local_error(local, &error.to_string()))?;
        let remote = remote.trim_end_matches('/');
        let local_name = local
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| local_error(local, "needs a file name in UTF-8"))?
            .to_owned();
        // An existing directory takes the copy inside; anything else is
        // the copy's new name in its parent directory.
        if remote.is_empty() {
            return self.send_packed(id, local, "/", local_name).await;
        }
        let (dir, name) = match self.download(id, remote).await {
            Ok(download) if download.directory => (remote.to_owned(), local_name),
            Ok(_) => split_remote(remote)?,
            Err(error) if error.code() == Some("path_not_found") => split_remote(remote)?,
            Err(error) => return Err(error),
        };
        self.send_packed(id, local, &dir, name).await
    }

    /// Packs `local` as `name` and unpacks it into `dir` of the lease.
    async fn send_packed(
        &self,
        id: &str,
        local: &Path,
        dir: &str,
        name: String,
    ) -> Result<u64, ClientError> {
        let (sender, receiver) = futures::channel::mpsc::channel::<io::Result<Bytes>>(4);
        let source = local.to_path_buf();
        let packer = tokio::task::spawn_blocking(move || {
            let mut writer = ChannelWriter {
                sender,
                buffer: Vec::with_capacity(CHUNK),
            };
            let packed = pack(&mut writer, &source, &name);
            match packed {
                Ok(()) => writer.flush(),
                Err(error) => {
                    let _ = futures::executor::block_on(futures::SinkExt::send(
                        &mut writer.sender,
                        Err(io_error(&error)),
                    ));
                    Err(error)
                }
            }
        });
        let uploaded = self.upload(id, dir, receiver).await;
        let packed = packer.await;
        let uploaded = uploaded?;
        if let Ok(Err(error)) = packed {
            return Err(local_error(local, &error.to_string()));
        }
        Ok(uploaded.bytes)
    }
}

fn local_error(path: &Path, why: &str) -> ClientError {
    ClientError::Protocol(format!("{}: {why}", path.display()))
}

/// `/a/b` → (`/a`, `b`); `/b` → (`/`, `b`).
fn split_remote(remote: &str) -> Result<(String, String), ClientError> {
    match remote.rsplit_once('/') {
        Some((_, "")) | None => Err(ClientError::Protocol(format!(
            "`{remote}` is not an absolute path in the lease"
        ))),
        Some(("", name)) => Ok(("/".to_owned(), name.to_owned())),
        Some((parent, name)) => Ok((parent.to_owned(), name.to_owned())),
    }
}

/// A `Write` that sends chunks down a channel (blocking: call it from a
/// blocking thread).
struct ChannelWriter {
    sender: futures::channel::mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        futures::executor::block_on(futures::SinkExt::send(&mut self.sender, Ok(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

/// Writes a tar archive of `source` (a file or a directory tree; links are
/// kept as links) with its top entry named `name`.
fn pack(writer: &mut ChannelWriter, source: &Path, name: &str) -> io::Result<()> {
    let mut builder = tar::Builder::new(writer);
    builder.follow_symlinks(false);
    if std::fs::symlink_metadata(source)?.is_dir() {
        builder.append_dir_all(name, source)?;
    } else {
        builder.append_path_with_name(source, name)?;
    }
    builder.into_inner()?.flush()
}

/// Unpacks an archive whose entries are all under `top` into `into`,
/// renaming `top` to `rename` if given. Entries outside `top`, absolute or
/// with `..`, and links pointing out of the destination are refused.
fn unpack(reader: impl Read, into: &Path, top: &str, rename: Option<&Path>) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let new_top = rename.map_or_else(|| PathBuf::from(top), Path::to_path_buf);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let relative = inside(&path, top).ok_or_else(|| {
            io_error(format!(
                "refused an entry outside the copy: {}",
                path.display()
            ))
        })?;
        let kind = entry.header().entry_type();
        if kind.is_hard_link() || kind.is_symlink() {
            let link = entry.link_name()?.unwrap_or_default();
            if link.is_absolute() || link.components().any(|c| c == Component::ParentDir) {
                // Kept as written would point anywhere on this machine.
                eprintln!("skipped link {} -> {}", path.display(), link.display());
                continue;
            }
        }
        let destination = if relative.as_os_str().is_empty() {
            into.join(&new_top)
        } else {
            into.join(&new_top).join(relative)
        };
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        entry.unpack(&destination)?;
    }
    Ok(())
}

/// `path` relative to the archive's top entry `top` (`./top/a` → `a`), or
/// `None` when it is not under it or is not clean.
fn inside(path: &Path, top: &str) -> Option<PathBuf> {
    let mut parts = path
        .components()
        .filter(|part| !matches!(part, Component::CurDir));
    match parts.next()? {
        Component::Normal(first) if first == top => {}
        _ => return None,
    }
    let mut relative = PathBuf::new();
    for part in parts {
        match part {
            Component::Normal(name) => relative.push(name),
            _ => return None,
        }
    }
    Some(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_outside_the_copy_are_refused() {
        assert_eq!(
            inside(Path::new("./d/a/b"), "d"),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(inside(Path::new("d"), "d"), Some(PathBuf::new()));
        assert_eq!(inside(Path::new("d/../x"), "d"), None);
        assert_eq!(inside(Path::new("/d/x"), "d"), None);
        assert_eq!(inside(Path::new("e/x"), "d"), None);
    }
}
