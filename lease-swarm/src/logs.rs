//! A unit's output through the manager's service logs: the task's lines
//! from whichever node runs it, cut into lines as lease-docker does.

use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use lease_core::RuntimeError;
use lease_core::runtime::{LogOptions, LogStream};

use crate::error::{SwarmError, status_of};
use crate::runtime::SwarmRuntime;

impl SwarmRuntime {
    /// See [`lease_core::ContainerRuntime::logs`].
    pub(crate) async fn unit_logs(
        &self,
        reference: &str,
        options: LogOptions,
    ) -> Result<LogStream, RuntimeError> {
        let Some(service) = self.our_service(reference).await? else {
            return Err(RuntimeError::NotFound {
                container: reference.to_owned(),
            });
        };
        let id = service.id.unwrap_or_else(|| reference.to_owned());
        let tail = options
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string());
        let request = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(options.follow)
            .tail(&tail)
            .build();
        let runtime = self.clone();
        let service = reference.to_owned();
        let frames = self
            .manager
            .service_logs(&id, Some(request))
            .map(move |frame| {
                frame.map_err(|source| {
                    if status_of(&source) == Some(404) {
                        RuntimeError::NotFound {
                            container: service.clone(),
                        }
                    } else {
                        runtime.fail(SwarmError::Logs {
                            service: service.clone(),
                            source,
                        })
                    }
                })
            })
            .boxed();
        Ok(lease_docker::lines(frames))
    }
}
