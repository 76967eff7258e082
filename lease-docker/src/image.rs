//! Images: use the local one if present, else pull it and report progress.

use std::collections::BTreeMap;

use bollard::Docker;
use bollard::models::CreateImageInfo;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use lease_core::RuntimeError;
use lease_core::runtime::{ProgressSender, PullProgress};

use crate::error::{DockerError, status_of};

/// Makes `image` available locally (see [`lease_core::ContainerRuntime::ensure_image`]).
pub(crate) async fn ensure_image(
    docker: &Docker,
    endpoint: &str,
    image: &str,
    progress: &ProgressSender,
) -> Result<(), RuntimeError> {
    let (repository, tag) = split_reference(image)?;
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(source) if status_of(&source) == Some(404) => {}
        Err(source) => {
            return Err(DockerError::InspectImage {
                image: image.to_owned(),
                source,
            }
            .into_runtime(endpoint));
        }
    }
    tracing::info!(image, "pulling image");
    let mut options = CreateImageOptionsBuilder::new().from_image(repository);
    if let Some(tag) = tag {
        options = options.tag(tag);
    }
    let mut pull = docker.create_image(Some(options.build()), None, None);
    let mut tracker = PullTracker::default();
    while let Some(item) = pull.next().await {
        match item {
            Ok(info) => {
                if tracker.update(&info) {
                    // A receiver that went away does not stop the pull.
                    let _ = progress.send(tracker.progress());
                }
            }
            Err(source) => {
                return Err(DockerError::PullImage {
                    image: image.to_owned(),
                    source,
                }
                .into_runtime(endpoint));
            }
        }
    }
    match docker.inspect_image(image).await {
        Ok(_) => {
            tracing::info!(
                image,
                layers = tracker.progress().layers_total,
                "pulled image"
            );
            Ok(())
        }
        Err(source) => Err(DockerError::PullIncomplete {
            image: image.to_owned(),
            source,
        }
        .into_runtime(endpoint)),
    }
}

/// Splits an image reference into what the pull API takes: the repository
/// (with a digest, if any) and a tag. A reference with neither tag nor
/// digest means `latest`; an empty tag would pull every tag.
fn split_reference(image: &str) -> Result<(&str, Option<&str>), RuntimeError> {
    let valid = !image.is_empty()
        && image.len() <= 512
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
        && !image.starts_with([':', '@'])
        && !image
            .split('/')
            .any(|part| part.is_empty() || part.starts_with(['.', '-']));
    if !valid {
        return Err(RuntimeError::Invalid(format!(
            "`{image}` is not an image reference"
        )));
    }
    if image.contains('@') {
        return Ok((image, None));
    }
    let last_slash = image.rfind('/').map_or(0, |at| at + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            Ok((&image[..at], Some(&image[at + 1..])))
        }
        None => Ok((image, Some("latest"))),
    }
}

/// Adds up the engine's per-layer pull messages.
#[derive(Debug, Default)]
struct PullTracker {
    layers: BTreeMap<String, Layer>,
    status: String,
}

#[derive(Debug, Default)]
struct Layer {
    current: u64,
    total: u64,
    done: bool,
}

impl PullTracker {
    /// Takes one message; returns whether anything changed.
    fn update(&mut self, info: &CreateImageInfo) -> bool {
        let status = info.status.clone().unwrap_or_default();
        let layer_status = matches!(
            status.as_str(),
            "Pulling fs layer"
                | "Waiting"
                | "Downloading"
                | "Verifying Checksum"
                | "Download complete"
                | "Extracting"
                | "Pull complete"
                | "Already exists"
        );
        if let (true, Some(id)) = (layer_status, info.id.as_ref()) {
            let layer = self.layers.entry(id.clone()).or_default();
            let detail = info.progress_detail.as_ref();
            let number = |value: Option<i64>| value.and_then(|v| u64::try_from(v).ok());
            match status.as_str() {
                "Downloading" => {
                    if let Some(current) = number(detail.and_then(|d| d.current)) {
                        layer.current = current;
                    }
                    if let Some(total) = number(detail.and_then(|d| d.total)) {
                        layer.total = total;
                    }
                }
                "Download complete" | "Extracting" => {
                    layer.current = layer.current.max(layer.total)
                }
                "Pull complete" | "Already exists" => {
                    layer.current = layer.current.max(layer.total);
                    layer.done = true;
                }
                _ => {}
            }
        }
        let line = match (&info.id, status.is_empty()) {
            (_, true) => return layer_status,
            (Some(id), false) => format!("{id}: {status}"),
            (None, false) => status,
        };
        self.status = line;
        true
    }

    fn progress(&self) -> PullProgress {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        PullProgress {
            layers_total: count(self.layers.len()),
            layers_done: count(self.layers.values().filter(|layer| layer.done).count()),
            bytes_done: self.layers.values().map(|layer| layer.current).sum(),
            bytes_total: self.layers.values().map(|layer| layer.total).sum(),
            status: self.status.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::ProgressDetail;

    use super::*;

    fn message(
        id: Option<&str>,
        status: &str,
        current: Option<i64>,
        total: Option<i64>,
    ) -> CreateImageInfo {
        CreateImageInfo {
            id: id.map(str::to_owned),
            status: Some(status.to_owned()),
            progress_detail: Some(ProgressDetail { current, total }),
            ..CreateImageInfo::default()
        }
    }

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(
            split_reference("alpine").unwrap(),
            ("alpine", Some("latest"))
        );
        assert_eq!(
            split_reference("alpine:3.20").unwrap(),
            ("alpine", Some("3.20"))
        );
        assert_eq!(
            split_reference("localhost:5000/team/img").unwrap(),
            ("localhost:5000/team/img", Some("latest"))
        );
        assert_eq!(
            split_reference("localhost:5000/img:v1").unwrap(),
            ("localhost:5000/img", Some("v1"))
        );
        let pinned = "alpine@sha256:0123456789abcdef";
        assert_eq!(split_reference(pinned).unwrap(), (pinned, None));
        for bad in [
            "",
            "a b",
            "../x",
            "a/../../containers/x",
            "x?y=1",
            ":tag",
            "/abs",
            "a//b",
        ] {
            assert!(split_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn progress_adds_up_layers_and_bytes() {
        let mut tracker = PullTracker::default();
        let messages = [
            message(Some("3.20"), "Pulling from library/alpine", None, None),
            message(Some("aaa"), "Pulling fs layer", None, None),
            message(Some("bbb"), "Already exists", None, None),
            message(Some("aaa"), "Downloading", Some(100), Some(400)),
            message(Some("aaa"), "Downloading", Some(300), Some(400)),
        ];
        for info in &messages {
            tracker.update(info);
        }
        let mid = tracker.progress();
        assert_eq!((mid.layers_total, mid.layers_done), (2, 1));
        assert_eq!((mid.bytes_done, mid.bytes_total), (300, 400));
        assert_eq!(mid.status, "aaa: Downloading");
        tracker.update(&message(Some("aaa"), "Download complete", None, None));
        tracker.update(&message(Some("aaa"), "Pull complete", None, None));
        tracker.update(&message(
            None,
            "Status: Downloaded newer image for alpine:3.20",
            None,
            None,
        ));
        let end = tracker.progress();
        assert_eq!(
            (end.layers_total, end.layers_done, end.bytes_done),
            (2, 2, 400)
        );
        assert!(end.status.starts_with("Status: Downloaded"));
    }
}
