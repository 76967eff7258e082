//! The secrets files (`--tokens`, `--metrics-token-file`): loaded at start,
//! re-read on SIGHUP so a token is revoked without a restart, and checked
//! for being readable by everyone on the machine.

use std::path::{Path, PathBuf};

use lease_core::error::error_chain;
use lease_http::Auth;
use lease_http::auth::{MetricsToken, MetricsTokenError, TokenFile, TokenFileError, TokenSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The tokens and the scrape token in effect, with the files they come from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Credentials {
    tokens: Option<(PathBuf, TokenSet)>,
    metrics: Option<(PathBuf, MetricsToken)>,
}

/// Why the secrets files could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CredentialsError {
    #[error("cannot load the tokens file")]
    Tokens(#[from] TokenFileError),
    #[error("cannot load the metrics token file")]
    Metrics(#[from] MetricsTokenError),
}

impl Credentials {
    /// Loads the files that are given; warns about world-readable ones.
    pub(crate) fn load(
        tokens: Option<&Path>,
        metrics: Option<&Path>,
    ) -> Result<Self, CredentialsError> {
        let tokens = match tokens {
            Some(path) => {
                let file = TokenFile::from_path(path)?;
                if file.is_empty() {
                    warn!(path = %path.display(), "the tokens file has no tokens: every request will be refused");
                }
                warn_if_world_readable(path, "tokens file");
                info!(tokens = file.len(), path = %path.display(), "auth: bearer tokens (SIGHUP re-reads the file)");
                Some((path.to_owned(), TokenSet::new(file)))
            }
            None => {
                info!(
                    owner = lease_http::LOCAL_OWNER,
                    "auth: single-user, no tokens; only requests for localhost / 127.0.0.1 / [::1] are served"
                );
                None
            }
        };
        let metrics = match metrics {
            Some(path) => {
                let token = MetricsToken::from_path(path)?;
                warn_if_world_readable(path, "metrics token file");
                info!(path = %path.display(), "/metrics also accepts the scrape token");
                Some((path.to_owned(), token))
            }
            None => None,
        };
        Ok(Credentials { tokens, metrics })
    }

    /// How requests are authenticated.
    pub(crate) fn auth(&self) -> Auth {
        match &self.tokens {
            Some((_, tokens)) => Auth::token_set(tokens.clone()),
            None => Auth::single_user(),
        }
    }

    /// The scrape token of `/metrics`, if any.
    pub(crate) fn metrics_token(&self) -> Option<MetricsToken> {
        self.metrics.as_ref().map(|(_, token)| token.clone())
    }

    /// Re-reads both files. A file that cannot be read or is not valid
    /// keeps what was in effect, and says so in the log.
    pub(crate) fn reload(&self) {
        if self.tokens.is_none() && self.metrics.is_none() {
            info!("SIGHUP: no tokens file nor metrics token file to re-read");
        }
        if let Some((path, tokens)) = &self.tokens {
            match tokens.reload_from(path) {
                Ok(change) => {
                    warn_if_world_readable(path, "tokens file");
                    if change.total == 0 {
                        warn!(path = %path.display(), "the tokens file has no tokens now: every request will be refused");
                    }
                    info!(
                        path = %path.display(),
                        added = change.added,
                        removed = change.removed,
                        changed = change.changed,
                        tokens = change.total,
                        "SIGHUP: tokens file re-read"
                    );
                }
                Err(reason) => error!(
                    path = %path.display(),
                    error = %error_chain(&reason),
                    tokens = tokens.len(),
                    "SIGHUP: the tokens file cannot be used; the tokens in effect are kept"
                ),
            }
        }
        if let Some((path, token)) = &self.metrics {
            match token.reload_from(path) {
                Ok(changed) => {
                    warn_if_world_readable(path, "metrics token file");
                    info!(path = %path.display(), changed, "SIGHUP: metrics token file re-read");
                }
                Err(reason) => error!(
                    path = %path.display(),
                    error = %error_chain(&reason),
                    "SIGHUP: the metrics token file cannot be used; the token in effect is kept"
                ),
            }
        }
    }
}

fn warn_if_world_readable(path: &Path, what: &str) {
    match lease_http::auth::world_readable(path) {
        Ok(true) => warn!(
            path = %path.display(),
            "the {what} is readable by every user of this machine; make it private (chmod 600 or 640)"
        ),
        Ok(false) => {}
        Err(reason) => {
            warn!(path = %path.display(), error = %reason, "cannot read the {what}'s permissions")
        }
    }
}

/// Re-reads the secrets files on every SIGHUP until `stop` is cancelled.
/// Returns once the handler is installed (so a SIGHUP sent after it no
/// longer ends the process), with the task that serves it.
pub(crate) fn reload_on_hangup(
    credentials: Credentials,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => tokio::spawn(async move {
                loop {
                    tokio::select! {
                        received = hangups.recv() => {
                            if received.is_none() {
                                return;
                            }
                            credentials.reload();
                        }
                        () = stop.cancelled() => return,
                    }
                }
            }),
            Err(reason) => {
                warn!(error = %reason, "cannot listen for SIGHUP: tokens are re-read only at start");
                tokio::spawn(async {})
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (credentials, stop);
        tokio::spawn(async {})
    }
}
