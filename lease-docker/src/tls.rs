//! TLS to a `tcp://` engine, the docker CLI's way: `DOCKER_TLS_VERIFY` asks
//! for it, and `DOCKER_CERT_PATH` (default `~/.docker`) holds `ca.pem` (the
//! CA that signed the engine's certificate), `cert.pem` and `key.pem` (this
//! client's certificate and key). The engine's certificate is verified
//! against `ca.pem` and its name or IP; the engine may require the client's.

use std::path::{Path, PathBuf};

/// The CA that signed the engine's certificate.
pub const CA_FILE: &str = "ca.pem";
/// This client's certificate.
pub const CERT_FILE: &str = "cert.pem";
/// This client's private key.
pub const KEY_FILE: &str = "key.pem";

/// A certificate file of a TLS connection that cannot be read.
///
/// Reaches callers as the source of a
/// [`RuntimeError::Operation`](lease_core::RuntimeError::Operation)
/// (`downcast_ref::<CertFileError>()` on it); nothing was sent to the engine.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read {path} for TLS to the Docker engine at {endpoint}: the certificate \
     directory (DOCKER_CERT_PATH, default ~/.docker) must hold ca.pem, cert.pem and key.pem"
)]
pub struct CertFileError {
    /// The engine the certificates were for (`tcp://host:port`).
    pub endpoint: String,
    /// The file that is missing or unreadable.
    pub path: PathBuf,
    /// Why it could not be read.
    #[source]
    pub source: std::io::Error,
}

/// The three files of a certificate directory, each checked readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CertFiles {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl CertFiles {
    /// The files of `dir`, or the first that cannot be read. bollard reads
    /// the client's certificate only during the handshake and sends none
    /// when it cannot, so a missing file would otherwise surface as the
    /// engine refusing the connection.
    pub(crate) fn load(dir: &Path, endpoint: &str) -> Result<CertFiles, CertFileError> {
        let readable = |name: &str| {
            let path = dir.join(name);
            match std::fs::File::open(&path) {
                Ok(_) => Ok(path),
                Err(source) => Err(CertFileError {
                    endpoint: endpoint.to_owned(),
                    path,
                    source,
                }),
            }
        };
        Ok(CertFiles {
            ca: readable(CA_FILE)?,
            cert: readable(CERT_FILE)?,
            key: readable(KEY_FILE)?,
        })
    }
}

/// The certificate directory the docker CLI would use: `DOCKER_CERT_PATH`
/// when set and not empty, else `~/.docker` (`.docker` when `HOME` is not
/// set either, so the error names a path).
pub(crate) fn cert_dir_from_env() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty("DOCKER_CERT_PATH") {
        return PathBuf::from(dir);
    }
    match non_empty("HOME") {
        Some(home) => PathBuf::from(home).join(".docker"),
        None => PathBuf::from(".docker"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named() {
        let dir = std::env::temp_dir().join(format!("lease-docker-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(CA_FILE), "ca").unwrap();
        std::fs::write(dir.join(KEY_FILE), "key").unwrap();
        let error = CertFiles::load(&dir, "tcp://h:2376").unwrap_err();
        assert_eq!(error.path, dir.join(CERT_FILE));
        assert!(error.to_string().contains("cert.pem"), "{error}");
        assert!(error.to_string().contains("tcp://h:2376"), "{error}");
        std::fs::write(dir.join(CERT_FILE), "cert").unwrap();
        let files = CertFiles::load(&dir, "tcp://h:2376").unwrap();
        assert_eq!(files.key, dir.join(KEY_FILE));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
