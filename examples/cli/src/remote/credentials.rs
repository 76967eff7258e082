//! The token `lease login` keeps: one `{server, token}` in the user's
//! config directory (`$XDG_CONFIG_HOME/containerlease/credentials.json`,
//! mode 0600), used when `--server` names the same server and LEASE_TOKEN
//! is not set; the pasted-token login, and `lease logout` (which revokes a
//! personal token on the server before forgetting it).

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use lease_client::Client;
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::output::note;
use crate::terminal::{self, RawMode};

/// Longest token read (tokens are about 50 characters).
const MAX_TOKEN: usize = 4096;

/// What `lease login` stores.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The server's base URL, normalised (`http://host:8080/`).
    pub server: String,
    /// Its bearer token.
    pub token: String,
}

/// Where the credentials live, if the system has a config directory.
fn path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("containerlease").join("credentials.json"))
}

/// `server` as the client normalises it, so `http://h:1` and
/// `http://h:1/` are the same server.
pub fn normalised(server: &str) -> Result<String, CliError> {
    Client::new(server, None)
        .map(|client| client.base().to_string())
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// The stored credentials, if any.
fn load() -> Result<Option<Credentials>, CliError> {
    let Some(path) = path() else { return Ok(None) };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::Usage(format!(
                "{} is not what `lease login` writes ({e}); run `lease logout` and log in again",
                path.display()
            ))
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(CliError::io(
            format!("cannot read {}", path.display()),
            error,
        )),
    }
}

/// The stored token for `server`, if `lease login` stored one for it.
pub fn token_for(server: &str) -> Result<Option<String>, CliError> {
    let wanted = normalised(server)?;
    Ok(load()?
        .filter(|stored| stored.server == wanted)
        .map(|stored| stored.token))
}

/// Writes the credentials readable by the user only: a fresh 0600 file
/// renamed over the old one. Returns where.
pub fn store(credentials: &Credentials) -> Result<PathBuf, CliError> {
    let path = path().ok_or_else(|| {
        CliError::Usage("no config directory (set HOME or XDG_CONFIG_HOME)".to_owned())
    })?;
    let dir = path
        .parent()
        .ok_or_else(|| CliError::Usage(format!("{} has no parent", path.display())))?;
    let io = |what: &str, error| CliError::io(format!("{what} {}", dir.display()), error);
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create", e))?;
    let text = serde_json::to_vec_pretty(credentials)
        .map_err(|e| CliError::io("cannot encode JSON", std::io::Error::other(e)))?;
    let temporary = dir.join(format!(".credentials.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&temporary)
        .and_then(|mut file| file.write_all(&text).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(io("cannot write the credentials in", error));
    }
    Ok(path)
}

/// `lease login --token` (and `lease login` on a server without OpenID
/// Connect): reads a token, checks it against `server`, stores it.
pub async fn login_with_pasted_token(server: &str) -> Result<ExitCode, CliError> {
    let server = normalised(server)?;
    let token = read_token(&server)?;
    let client =
        Client::new(&server, Some(token.clone())).map_err(|e| CliError::Usage(e.to_string()))?;
    let owner = match client.usage(None).await {
        Ok(usage) => usage.owner,
        Err(error) if error.status() == Some(401) => {
            return Err(CliError::Usage(format!(
                "the lease-server at {server} does not accept this token; nothing stored"
            )));
        }
        Err(error) => return Err(error.into()),
    };
    let path = store(&Credentials {
        server: server.clone(),
        token,
    })?;
    note(&format!(
        "logged in to {server} as `{owner}`; the token is in {} (readable by you only)",
        path.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// `lease logout`: revokes the stored token if it is a personal token
/// (`DELETE /api/tokens/current`; a token the server does not know, or
/// one from its tokens file, is just forgotten), then forgets it — only
/// if it is for `server`, when one is named. If the server cannot be
/// reached the token is forgotten anyway, with a warning that it stays
/// valid until revoked in the page or until it expires.
pub async fn logout(server: Option<&str>) -> Result<ExitCode, CliError> {
    let Some(stored) = load()? else {
        note("lease: no stored token; nothing to forget");
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(server) = server
        && normalised(server)? != stored.server
    {
        return Err(CliError::Usage(format!(
            "the stored token is for {}, not {server}; nothing forgotten",
            stored.server
        )));
    }
    revoke(&stored).await;
    if let Some(path) = path() {
        std::fs::remove_file(&path)
            .map_err(|e| CliError::io(format!("cannot remove {}", path.display()), e))?;
    }
    note(&format!("lease: forgot the token for {}", stored.server));
    Ok(ExitCode::SUCCESS)
}

/// Revokes `stored`'s token on its server, when it is a personal token;
/// a failure is a warning (the token is forgotten anyway).
async fn revoke(stored: &Credentials) {
    let client = match Client::new(&stored.server, Some(stored.token.clone())) {
        Ok(client) => client,
        Err(error) => {
            note(&format!("lease: warning: cannot revoke the token: {error}"));
            return;
        }
    };
    match client.revoke_current_token().await {
        Ok(true) => note(&format!("lease: revoked the token on {}", stored.server)),
        Ok(false) => {
            tracing::debug!(server = %stored.server, "not a personal token, or already revoked")
        }
        Err(error) => note(&format!(
            "lease: warning: cannot revoke the token on {} ({error}); it stays valid until it \
             expires or is revoked in the page's Tokens panel",
            stored.server
        )),
    }
}

/// The token: typed on the terminal (not echoed), or the first line of stdin.
fn read_token(server: &str) -> Result<String, CliError> {
    let token = if terminal::stdin_is_terminal() {
        crate::output::write_stderr(format!("Token for {server}: ").as_bytes());
        let typed = read_hidden();
        crate::output::write_stderr(b"\r\n");
        typed?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .take(MAX_TOKEN as u64)
            .read_line(&mut line)
            .map_err(|e| CliError::io("cannot read the token from stdin", e))?;
        line
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::Usage("no token given; nothing stored".to_owned()));
    }
    Ok(token)
}

/// A line typed in raw mode, not echoed; Ctrl-C or Ctrl-D give up.
fn read_hidden() -> Result<String, CliError> {
    let _raw = RawMode::enable()?;
    let mut typed = Vec::new();
    let mut byte = [0u8; 1];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => match byte[0] {
                b'\r' | b'\n' => break,
                0x03 | 0x04 => return Err(CliError::Interrupted),
                0x7f | 0x08 => {
                    typed.pop();
                }
                other if typed.len() < MAX_TOKEN => typed.push(other),
                _ => {}
            },
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(CliError::io("cannot read the token", error)),
        }
    }
    String::from_utf8(typed).map_err(|_| CliError::Usage("the token is not UTF-8".to_owned()))
}
