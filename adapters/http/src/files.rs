//! `GET` and `PUT /api/containers/{id}/files`: copying files out of and
//! into a running lease's container, as tar streams (never a whole archive
//! in memory), each direction bounded by a size limit ([`FilesConfig`]).
//!
//! Both routes are streams: no request timeout, one [`StreamPermit`] each;
//! the upload also spends the write rate limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use lease_core::files::{ArchiveInput, PathKind, check_container_path, split_parent};
use lease_core::{BoxError, Lease, LeaseError, RuntimeError, Status};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, echo};
use crate::extract::{ApiQuery, LeasePath};
use crate::leases::find_lease;
use crate::limits::StreamPermit;

/// Default of both size limits: 1 GiB.
pub const DEFAULT_MAX_TRANSFER: u64 = 1024 * 1024 * 1024;

/// Longest file name of a single-file upload (`?name=`), in bytes.
const MAX_NAME_BYTES: usize = 100;

/// The header that says whether a download is a file or a directory.
pub const PATH_KIND_HEADER: &str = "x-lease-path-kind";

/// Size limits of file copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilesConfig {
    /// Largest upload body, in bytes (413 `too_large` above, nothing written).
    pub max_upload: u64,
    /// Largest download, in bytes: refused up front (413 `too_large`) when
    /// the path is bigger, cut (the response ends in error) if it grows past.
    pub max_download: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_upload: DEFAULT_MAX_TRANSFER,
            max_download: DEFAULT_MAX_TRANSFER,
        }
    }
}

/// The query of both routes.
#[derive(Clone, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilesParams {
    /// Absolute, clean path in the container (no `.`, `..`, NUL; not `/`).
    /// Download: the file or directory. Upload: the directory to unpack into.
    pub path: String,
    /// Upload only: the body is one file's bytes (not a tar archive), written
    /// as `path/name`. Needs a `Content-Length`. A plain name: no `/`.
    pub name: Option<String>,
}

/// What an upload wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadJson {
    /// The directory the archive was unpacked into.
    pub path: String,
    /// Bytes of the request body taken in.
    pub bytes: u64,
}

fn invalid_path(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", message).with_field("path")
}

fn too_large(what: &str, limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the {what} is larger than this server's limit of {limit} bytes; nothing was copied"
        ),
    )
}

/// The lease's container, if it is running.
fn running_container(lease: &Lease) -> Result<String, ApiError> {
    match (&lease.container_id, lease.status) {
        (Some(container), Status::Running) => Ok(container.clone()),
        (_, status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_running",
            format!("the lease is {status}: files can only be copied while it runs"),
        )),
    }
}

/// The runtime's copy errors as the API answers them.
fn copy_error(error: RuntimeError) -> ApiError {
    match error {
        RuntimeError::PathNotFound { path } => ApiError::new(
            StatusCode::NOT_FOUND,
            "path_not_found",
            format!("{} does not exist in the lease", echo(&path)),
        )
        .with_field("path"),
        RuntimeError::PathNotAllowed { path, reason } => ApiError::new(
            StatusCode::FORBIDDEN,
            "path_not_allowed",
            format!("{}: {}", echo(&path), echo(&reason)),
        )
        .with_field("path"),
        other => ApiError::from(LeaseError::Runtime(other)),
    }
}

/// A file name for `Content-Disposition`: the path's last component, with
/// anything but `[A-Za-z0-9._-]` replaced.
fn download_name(path: &str) -> String {
    let (_, name) = split_parent(path);
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.tar")
}

/// Streams a file or a directory tree of a running lease as a tar archive.
#[utoipa::path(
    get,
    path = "/api/containers/{id}/files",
    tag = "files",
    params(("id" = String, Path, description = "Lease id"), FilesParams),
    responses(
        (status = 200, description = "A tar archive (`application/x-tar`) with one entry named after the path's last component (and the tree under it); `X-Lease-Path-Kind: file|directory`. A copy that fails part way ends the body in error, never as a shorter archive", content_type = "application/x-tar"),
        (status = 400, description = "A path that is not absolute and clean (`invalid_path`)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "The path cannot be read (`path_not_allowed`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's), or no such path (`path_not_found`)", body = crate::error::ErrorBody),
        (status = 409, description = "The lease is not running (`not_running`)", body = crate::error::ErrorBody),
        (status = 413, description = "The path is larger than the download limit (`too_large`)", body = crate::error::ErrorBody),
        (status = 429, description = "The caller has too many streams open (`too_many_streams`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn download(
    State(state): State<AppState>,
    caller: Caller,
    permit: StreamPermit,
    LeasePath(id): LeasePath,
    ApiQuery(params): ApiQuery<FilesParams>,
) -> Result<Response, ApiError> {
    let lease = find_lease(&state.manager, &caller, &id).await?;
    let path = check_container_path(&params.path)
        .map_err(|error| invalid_path(error.to_string()))?
        .to_owned();
    let container = running_container(&lease)?;
    let out = state
        .manager
        .runtime()
        .copy_from(&container, &path)
        .await
        .map_err(copy_error)?;
    let limit = state.files.max_download;
    if out.size > limit {
        return Err(too_large(&format!("path ({} bytes)", out.size), limit));
    }
    tracing::info!(lease = %lease.id, owner = %caller.owner, path = %path, size = out.size, "download started");
    let mut sent = 0u64;
    let lease_id = lease.id.clone();
    let body = out.archive.map(move |chunk| {
        // The permit lives as long as the body.
        let _ = &permit;
        let chunk = chunk.map_err(|error| {
            tracing::warn!(lease = %lease_id, error = %error.chain(), "download failed part way");
            BoxError::from(error.to_string())
        })?;
        sent += chunk.len() as u64;
        // The tar adds headers and padding to `du`'s figure: allow for them.
        if sent > limit.saturating_add(limit / 8).saturating_add(64 * 1024) {
            return Err(BoxError::from("the download grew past the server's limit"));
        }
        Ok::<_, BoxError>(axum::body::Bytes::from(chunk))
    });
    let kind = match out.kind {
        PathKind::File => "file",
        PathKind::Directory => "directory",
    };
    let disposition = format!("attachment; filename=\"{}\"", download_name(&path));
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static(PATH_KIND_HEADER),
        HeaderValue::from_static(kind),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Checks the `?name=` of a single-file upload.
fn check_name(name: &str) -> Result<&str, ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("`{}` is not a file name: {why}", echo(name)),
        )
        .with_field("name")
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(bad("empty, `.` or `..`"));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(bad("no `/` or NUL allowed"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(bad("longer than 100 bytes"));
    }
    Ok(name)
}

/// The request's `Content-Length`, if it has a valid one.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A tar header for one regular file of `size` bytes named `name`.
fn file_header(name: &str, size: u64) -> Result<Vec<u8>, ApiError> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("`{}` cannot be a file name: {error}", echo(name)),
        )
        .with_field("name")
    })?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    header.set_mtime(now);
    header.set_cksum();
    Ok(header.as_bytes().to_vec())
}

/// The request body as the runtime takes it, failing once past `limit`
/// bytes (and setting `over`).
fn limited(body: Body, limit: u64, over: Arc<AtomicBool>) -> ArchiveInput {
    let mut taken = 0u64;
    body.into_data_stream()
        .map_err(BoxError::from)
        .and_then(move |chunk| {
            taken += chunk.len() as u64;
            let result = if taken > limit {
                over.store(true, Ordering::SeqCst);
                Err(BoxError::from("the upload is larger than the limit"))
            } else {
                Ok(Vec::from(chunk))
            };
            futures::future::ready(result)
        })
        .boxed()
}

/// A single file's bytes wrapped into a tar archive of one entry.
fn wrap_in_tar(name: &str, size: u64, body: ArchiveInput) -> Result<ArchiveInput, ApiError> {
    let header = file_header(name, size)?;
    let padding = (512 - size % 512) % 512;
    let mut seen = 0u64;
    let content = body.and_then(move |chunk| {
        seen += chunk.len() as u64;
        let result = if seen > size {
            Err(BoxError::from("the body is longer than its Content-Length"))
        } else {
            Ok(chunk)
        };
        futures::future::ready(result)
    });
    // `padding` is below 512; the end of an archive is two zero blocks.
    let trailer = vec![0u8; usize::try_from(padding).unwrap_or(0) + 1024];
    Ok(futures::stream::iter([Ok(header)])
        .chain(content)
        .chain(futures::stream::iter([Ok(trailer)]))
        .boxed())
}

/// Unpacks a tar archive (or, with `?name=`, one file) into a directory of
/// a running lease, streaming. All or nothing: a body over the limit, cut
/// short or not a valid archive leaves nothing behind.
#[utoipa::path(
    put,
    path = "/api/containers/{id}/files",
    tag = "files",
    params(("id" = String, Path, description = "Lease id"), FilesParams),
    request_body(content = Vec<u8>, content_type = "application/x-tar", description = "A tar archive to unpack into `path`; with `?name=`, the raw bytes of one file (`application/octet-stream`, with a `Content-Length`)"),
    responses(
        (status = 200, description = "Unpacked", body = UploadJson),
        (status = 400, description = "A path that is not absolute and clean (`invalid_path`), a bad `name` (`invalid_name`)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 403, description = "The directory cannot be written: read-only filesystem (a read-only lease writes only under /tmp), permissions, not a directory, or an archive that does not unpack (`path_not_allowed`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease (or not the caller's), or no such directory (`path_not_found`)", body = crate::error::ErrorBody),
        (status = 409, description = "The lease is not running (`not_running`)", body = crate::error::ErrorBody),
        (status = 411, description = "A single-file upload without a `Content-Length` (`length_required`)", body = crate::error::ErrorBody),
        (status = 413, description = "The body is larger than the upload limit (`too_large`); nothing was written", body = crate::error::ErrorBody),
        (status = 429, description = "Too many streams (`too_many_streams`) or the rate limit (`rate_limited`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    permit: StreamPermit,
    LeasePath(id): LeasePath,
    ApiQuery(params): ApiQuery<FilesParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadJson>, ApiError> {
    let lease = find_lease(&state.manager, &caller, &id).await?;
    let dir = check_container_path(&params.path)
        .map_err(|error| invalid_path(error.to_string()))?
        .to_owned();
    let container = running_container(&lease)?;
    let limit = state.files.max_upload;
    let length = content_length(&headers);
    if length.is_some_and(|length| length > limit) {
        return Err(too_large("upload", limit));
    }
    let over = Arc::new(AtomicBool::new(false));
    let input = limited(body, limit, over.clone());
    let input = match params.name.as_deref() {
        None => input,
        Some(name) => {
            let name = check_name(name)?;
            let Some(size) = length else {
                return Err(ApiError::new(
                    StatusCode::LENGTH_REQUIRED,
                    "length_required",
                    "a single-file upload (`?name=`) needs a Content-Length",
                ));
            };
            wrap_in_tar(name, size, input)?
        }
    };
    tracing::info!(lease = %lease.id, owner = %caller.owner, dir = %dir, length, "upload started");
    let runtime = state.manager.runtime().clone();
    let target = dir.clone();
    // A task of its own: a client that goes away mid-upload still gets the
    // staged files cleaned up.
    let copy = tokio::spawn(async move {
        let result = runtime.copy_to(&container, &target, input).await;
        drop(permit);
        result
    });
    let result = copy.await.map_err(|join| ApiError::internal(&join))?;
    if over.load(Ordering::SeqCst) {
        return Err(too_large("upload", limit));
    }
    let report = result.map_err(copy_error)?;
    tracing::info!(lease = %lease.id, dir = %dir, bytes = report.archive_bytes, "upload finished");
    Ok(Json(UploadJson {
        path: dir,
        bytes: length.unwrap_or(report.archive_bytes),
    }))
}
