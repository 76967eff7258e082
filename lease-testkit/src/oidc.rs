//! A real OpenID Connect provider for the sign-in tests: PyPI's
//! `oidc-provider-mock` (installed by `scripts/oidc-provider.sh ensure`,
//! which exports `LEASE_TEST_OIDC_PYTHON`), one process per test on a free
//! loopback port, killed on drop.
//!
//! ```no_run
//! if let Some(mut provider) = lease_testkit::oidc::OidcProvider::start() {
//!     provider.set_user("alice", r#"{"email":"alice@example.com","groups":["lease-admins"]}"#);
//!     println!("issuer {}", provider.issuer());
//!     provider.restart(); // same port, a new signing key
//! }
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::skip::skip;

/// The variable naming the venv's python.
pub const PYTHON_VAR: &str = "LEASE_TEST_OIDC_PYTHON";

/// A running provider.
#[derive(Debug)]
pub struct OidcProvider {
    python: String,
    port: u16,
    child: Option<Child>,
}

impl OidcProvider {
    /// Starts a provider on a free port; `None` (after a printed skip, or a
    /// panic with `CI=true`) when the venv is missing.
    pub fn start() -> Option<OidcProvider> {
        let Some(python) = std::env::var(PYTHON_VAR).ok().filter(|p| !p.is_empty()) else {
            return skip(format!(
                "{PYTHON_VAR} is not set (eval \"$(scripts/oidc-provider.sh ensure)\")"
            ));
        };
        let mut provider = OidcProvider {
            python,
            port: crate::free_port(),
            child: None,
        };
        if let Err(reason) = provider.spawn() {
            return skip(reason);
        }
        Some(provider)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new(&self.python)
            .args([
                "-m",
                "oidc_provider_mock",
                "--host",
                "127.0.0.1",
                "--require-nonce",
                "--port",
            ])
            .arg(self.port.to_string())
            .env("NO_COLOR", "1")
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", self.python))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = self.request("GET", "/.well-known/openid-configuration", None) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("the OIDC provider exited at start: {status}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("the OIDC provider did not answer within 30 s".to_owned())
    }

    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets user `sub`'s claims (a flat JSON object, e.g.
    /// `{"email":"alice@example.com","groups":["admins"]}`).
    ///
    /// # Panics
    ///
    /// If the provider does not accept them.
    pub fn set_user(&self, sub: &str, claims_json: &str) {
        let (status, body) = self
            .request("PUT", &format!("/users/{sub}"), Some(claims_json))
            .expect("the provider answers PUT /users");
        assert_eq!(status, 204, "PUT /users/{sub}: {body}");
    }

    /// Stops the provider and starts a new one on the same port: a new
    /// signing key (the key-rotation test), users forgotten.
    ///
    /// # Panics
    ///
    /// If it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        // The port may linger a moment.
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(reason) if Instant::now() > deadline => panic!("provider restart: {reason}"),
                Err(_) => {
                    self.stop();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A plain HTTP/1.1 request to the provider: (status, body).
    fn request(
        &self,
        method: &str,
        path: &str,
        json: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = json.unwrap_or("");
        let content_type = if json.is_some() {
            "Content-Type: application/json\r\n"
        } else {
            ""
        };
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
