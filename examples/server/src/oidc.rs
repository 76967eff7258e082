//! `--oidc-*` flags: signing people in with the organisation's identity
//! provider, and the hourly purge of expired sessions and tokens.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use lease_core::error::error_chain;
use lease_core::{Clock, CredentialStore};
use lease_http::oidc::{OidcAuth, OidcProvider, OidcSettings};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often expired sessions and personal tokens are removed.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// OpenID Connect sign-in.
#[derive(Debug, Args)]
pub struct OidcArgs {
    /// The identity provider's issuer URL (discovery at
    /// `{issuer}/.well-known/openid-configuration`). Turns on sign-in.
    #[arg(long, env = "LEASE_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// This server's client id at the provider.
    #[arg(long, env = "LEASE_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,

    /// A file holding the client secret (not world-readable).
    #[arg(long, env = "LEASE_OIDC_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,

    /// Where the provider sends browsers back; register it at the
    /// provider. Default `{--public-url}/auth/callback`.
    #[arg(long, env = "LEASE_OIDC_REDIRECT_URL")]
    pub oidc_redirect_url: Option<String>,

    /// The claim that names the owner: `email`, `sub`,
    /// `preferred_username` or any other string claim.
    #[arg(long, env = "LEASE_OIDC_OWNER_CLAIM", default_value = "email")]
    pub oidc_owner_claim: String,

    /// The claim listing the person's groups.
    #[arg(long, env = "LEASE_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,

    /// Members of this group are admins (repeatable).
    #[arg(
        long = "oidc-admin-group",
        env = "LEASE_OIDC_ADMIN_GROUPS",
        value_delimiter = ','
    )]
    pub oidc_admin_groups: Vec<String>,

    /// Only owners with these email domains may sign in (comma-separated).
    #[arg(long, env = "LEASE_OIDC_ALLOWED_DOMAINS", value_delimiter = ',')]
    pub oidc_allowed_domains: Vec<String>,

    /// Only members of these groups may sign in (comma-separated).
    #[arg(long, env = "LEASE_OIDC_ALLOWED_GROUPS", value_delimiter = ',')]
    pub oidc_allowed_groups: Vec<String>,

    /// How long a browser session lasts.
    #[arg(long, env = "LEASE_OIDC_SESSION_TTL", default_value = "12h")]
    pub oidc_session_ttl: humantime::Duration,

    /// Clock skew tolerated on ID tokens (at most 5m).
    #[arg(long, env = "LEASE_OIDC_CLOCK_SKEW", default_value = "60s")]
    pub oidc_clock_skew: humantime::Duration,

    /// Most personal tokens per owner.
    #[arg(long, env = "LEASE_MAX_PERSONAL_TOKENS", default_value_t = 20)]
    pub max_personal_tokens: usize,

    /// This server's public URL (`https://lease.example.com`), as browsers
    /// reach it: the redirect URL's base, the only origin accepted on
    /// changes made with the session cookie, and `Secure` cookies when
    /// https. Default `http://{--listen}`.
    #[arg(long, env = "LEASE_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// Why OIDC could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OidcSetupError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read the OIDC client secret file {path}")]
    Secret {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Provider(#[from] lease_http::oidc::ProviderError),
}

impl OidcArgs {
    /// Whether sign-in is on.
    pub(crate) fn enabled(&self) -> bool {
        self.oidc_issuer.is_some()
    }

    fn settings(&self, listen: &str) -> Result<Option<OidcSettings>, OidcSetupError> {
        let Some(issuer) = &self.oidc_issuer else {
            return Ok(None);
        };
        let client_id = self.oidc_client_id.clone().ok_or_else(|| {
            OidcSetupError::Config("--oidc-issuer needs --oidc-client-id".to_owned())
        })?;
        let public = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        let redirect = self
            .oidc_redirect_url
            .clone()
            .unwrap_or_else(|| format!("{}/auth/callback", public.trim_end_matches('/')));
        let secret = match &self.oidc_client_secret_file {
            Some(path) => Some(read_secret(path)?),
            None => None,
        };
        let settings = OidcSettings::new(issuer.trim_end_matches('/'), client_id, redirect)
            .client_secret(secret)
            .owner_claim(self.oidc_owner_claim.clone())
            .groups_claim(self.oidc_groups_claim.clone())
            .admin_groups(clean(&self.oidc_admin_groups))
            .allowed_domains(clean(&self.oidc_allowed_domains))
            .allowed_groups(clean(&self.oidc_allowed_groups))
            .session_ttl(self.oidc_session_ttl.into())
            .clock_skew(self.oidc_clock_skew.into())
            .max_personal_tokens(self.max_personal_tokens);
        settings
            .validate()
            .map_err(|error| OidcSetupError::Config(error.to_string()))?;
        Ok(Some(settings))
    }

    /// Discovers the provider and builds the sign-in, if configured.
    pub(crate) async fn setup(
        &self,
        listen: &str,
        store: Arc<dyn CredentialStore>,
    ) -> Result<Option<OidcAuth>, OidcSetupError> {
        let Some(settings) = self.settings(listen)? else {
            return Ok(None);
        };
        info!(
            issuer = %settings.issuer,
            redirect = %settings.redirect_url,
            owner_claim = %settings.owner_claim,
            admin_groups = ?settings.admin_groups,
            "auth: OpenID Connect sign-in"
        );
        let provider = OidcProvider::discover(settings).await?;
        Ok(Some(OidcAuth::new(provider, store)))
    }
}

fn clean(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

fn read_secret(path: &std::path::Path) -> Result<String, OidcSetupError> {
    if lease_http::auth::world_readable(path).unwrap_or(false) {
        warn!(path = %path.display(), "the OIDC client secret file is readable by every user on this machine: chmod 600 it");
    }
    let text = std::fs::read_to_string(path).map_err(|source| OidcSetupError::Secret {
        path: path.display().to_string(),
        source,
    })?;
    let secret = text.trim().to_owned();
    if secret.is_empty() {
        return Err(OidcSetupError::Config(format!(
            "the OIDC client secret file {} is empty",
            path.display()
        )));
    }
    Ok(secret)
}

/// Removes expired sessions and personal tokens every hour until `stop`.
pub(crate) fn purge_periodically(
    store: Arc<dyn CredentialStore>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(PURGE_EVERY) => {}
            }
            match store.purge_expired(clock.now()).await {
                Ok(removed) => info!(removed, "expired sessions and personal tokens purged"),
                Err(error) => {
                    warn!(error = %error_chain(&error), "cannot purge expired credentials")
                }
            }
        }
    })
}
