//! A typed async client for the ContainerLease HTTP API (lease-server).
//!
//! Every REST route has a method on [`Client`]; the streams come back
//! typed: lease events ([`EventStream`], Server-Sent Events), a container's
//! log lines ([`LogStream`]) and an attached
//! shell session ([`Attachment`]: decoded [`Frame`]s and a
//! [`SessionSender`] for stdin, resize, signals and end of input), and a
//! TCP tunnel to a lease's port ([`Tunnel`], [`Client::forward`]). Failures
//! are a [`ClientError`], which keeps the API's error code, message and
//! HTTP status.
//!
//! The JSON shapes are lease-http's own types, re-exported ([`wire`] for
//! leases, the catalog, usage and history; [`session`] for shell
//! sessions), so client and server cannot drift apart.
//!
//! ```no_run
//! use lease_client::{Client, Frame, SessionRequest};
//!
//! # async fn demo() -> Result<(), lease_client::ClientError> {
//! let client = Client::new("http://127.0.0.1:8080", std::env::var("LEASE_TOKEN").ok())?;
//! let lease = client.provision("alpine", Some(30)).await?;
//! println!("{} is {}", lease.id, lease.status);
//!
//! // ... once it is running: run one command and collect its output.
//! let request = SessionRequest {
//!     command: Some(vec!["sh".into(), "-c".into(), "echo hi; exit 3".into()]),
//!     tty: Some(false),
//!     ..SessionRequest::default()
//! };
//! let session = client.create_session(&lease.id, &request).await?;
//! let mut attached = client.attach(&lease.id, &session.session_id, 0).await?;
//! attached.sender.eof().await?;
//! while let Some(frame) = attached.stream.next().await {
//!     match frame? {
//!         Frame::Output { bytes, .. } => print!("{}", String::from_utf8_lossy(&bytes)),
//!         Frame::Exit { code } => println!("exited with {code}"),
//!         _ => {}
//!     }
//! }
//! client.delete(&lease.id).await?;
//! # Ok(())
//! # }
//! ```
//!
//! HTTPS and WSS use rustls with the system's root certificates.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
mod client;
mod error;
mod events;
pub mod files;
pub mod forward;
mod logs;
pub mod session;
mod ws;

pub use client::{Client, DEFAULT_TIMEOUT};
pub use error::ClientError;
pub use events::{Event, EventStream};
pub use forward::{Tunnel, TunnelClose, TunnelEvent, TunnelSender, TunnelStream};
pub use logs::LogStream;
pub use session::{
    Attachment, Channel, EndReason, Frame, SessionInfo, SessionJson, SessionRequest, SessionSender,
    SessionStream, Signal,
};

/// The API's JSON shapes (lease-http's, shared with the server).
pub mod wire {
    pub use lease_http::wire::{
        CapacityJson, CatalogJson, EventJson, HistoryJson, HostUseJson, LeaseJson, LimitsJson,
        OfferingJson, PullProgressJson, UsageJson,
    };
}
