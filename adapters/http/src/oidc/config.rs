//! What the operator configures for OpenID Connect sign-in, and the rules
//! that turn an ID token's claims into a [`Caller`].

use std::time::Duration;

use serde_json::Value;

use crate::auth::Caller;

/// Longest clock skew tolerated between this server and the provider.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Default clock skew tolerated on `exp` and `iat`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Default lifetime of a browser session.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Default number of personal tokens one owner may hold.
pub const DEFAULT_MAX_PERSONAL_TOKENS: usize = 20;

/// OpenID Connect settings (`lease-server --oidc-*`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OidcSettings {
    /// The provider's issuer URL (discovery at
    /// `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// This server's client id at the provider.
    pub client_id: String,
    /// Its client secret (none for a public client).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back:
    /// `{public url}/auth/callback`.
    pub redirect_url: String,
    /// The claim that names the owner: `email` (default), `sub`,
    /// `preferred_username` or any other string claim.
    pub owner_claim: String,
    /// The claim that lists the person's groups (default `groups`).
    pub groups_claim: String,
    /// Members of any of these groups are admins.
    pub admin_groups: Vec<String>,
    /// When not empty: only owners whose email domain is listed may sign
    /// in (the owner claim must then be an email address).
    pub allowed_domains: Vec<String>,
    /// When not empty: only members of one of these groups may sign in.
    pub allowed_groups: Vec<String>,
    /// How long a browser session lasts.
    pub session_ttl: Duration,
    /// Clock skew tolerated on the ID token's `exp` and `iat` (at most
    /// [`MAX_CLOCK_SKEW`]).
    pub clock_skew: Duration,
    /// Most personal tokens per owner.
    pub max_personal_tokens: usize,
}

/// Why OIDC settings are not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A setting breaks a rule.
    #[error("{0}")]
    Invalid(String),
}

impl OidcSettings {
    /// Settings with the defaults for everything but the provider, client
    /// and redirect URL.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        redirect_url: impl Into<String>,
    ) -> Self {
        OidcSettings {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: None,
            redirect_url: redirect_url.into(),
            owner_claim: "email".to_owned(),
            groups_claim: "groups".to_owned(),
            admin_groups: Vec::new(),
            allowed_domains: Vec::new(),
            allowed_groups: Vec::new(),
            session_ttl: DEFAULT_SESSION_TTL,
            clock_skew: DEFAULT_CLOCK_SKEW,
            max_personal_tokens: DEFAULT_MAX_PERSONAL_TOKENS,
        }
    }

    /// Uses `secret` as the client secret.
    pub fn client_secret(mut self, secret: Option<String>) -> Self {
        self.client_secret = secret;
        self
    }

    /// Uses `claim` to name owners.
    pub fn owner_claim(mut self, claim: impl Into<String>) -> Self {
        self.owner_claim = claim.into();
        self
    }

    /// Uses `claim` for groups.
    pub fn groups_claim(mut self, claim: impl Into<String>) -> Self {
        self.groups_claim = claim.into();
        self
    }

    /// Members of these groups are admins.
    pub fn admin_groups(mut self, groups: Vec<String>) -> Self {
        self.admin_groups = groups;
        self
    }

    /// Only these email domains may sign in (lowercased).
    pub fn allowed_domains(mut self, domains: Vec<String>) -> Self {
        self.allowed_domains = domains
            .into_iter()
            .map(|domain| domain.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|domain| !domain.is_empty())
            .collect();
        self
    }

    /// Only members of these groups may sign in.
    pub fn allowed_groups(mut self, groups: Vec<String>) -> Self {
        self.allowed_groups = groups;
        self
    }

    /// Sessions last `ttl`.
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Tolerates `skew` on `exp` and `iat`.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// An owner may hold at most `limit` personal tokens.
    pub fn max_personal_tokens(mut self, limit: usize) -> Self {
        self.max_personal_tokens = limit;
        self
    }

    /// Checks the settings: URLs, the skew bound, non-empty names.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |message: String| Err(SettingsError::Invalid(message));
        if !is_http_url(&self.issuer) {
            return invalid(format!(
                "--oidc-issuer must be an http(s) URL, not `{}`",
                self.issuer
            ));
        }
        if !is_http_url(&self.redirect_url) {
            return invalid(format!(
                "--oidc-redirect-url must be an http(s) URL, not `{}`",
                self.redirect_url
            ));
        }
        // ID tokens, codes and session cookies never cross a network in
        // clear: plain http only to this machine (tests, a local provider).
        for (flag, url) in [
            ("--oidc-issuer", &self.issuer),
            ("--oidc-redirect-url (or --public-url)", &self.redirect_url),
        ] {
            if !is_https_or_loopback(url) {
                return invalid(format!(
                    "{flag} must be https (plain http only to a loopback host), not `{url}`"
                ));
            }
        }
        if self.client_id.trim().is_empty() {
            return invalid("--oidc-client-id must not be empty".to_owned());
        }
        if self.clock_skew > MAX_CLOCK_SKEW {
            return invalid(format!(
                "--oidc-clock-skew must be at most {}s",
                MAX_CLOCK_SKEW.as_secs()
            ));
        }
        if self.owner_claim.trim().is_empty() || self.groups_claim.trim().is_empty() {
            return invalid(
                "--oidc-owner-claim and --oidc-groups-claim must not be empty".to_owned(),
            );
        }
        if self.session_ttl < Duration::from_secs(60) {
            return invalid("--oidc-session-ttl must be at least 1 minute".to_owned());
        }
        if self.max_personal_tokens == 0 {
            return invalid("--max-personal-tokens must be at least 1".to_owned());
        }
        Ok(())
    }

    /// This server's public origin (`scheme://host[:port]`), from the
    /// redirect URL: the only `Origin` accepted on cookie-authenticated
    /// changes, and the base of the URLs the CLI is shown.
    pub fn public_origin(&self) -> String {
        origin_of(&self.redirect_url).unwrap_or_default()
    }

    /// Whether cookies must be `Secure` (the public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.redirect_url.starts_with("https://")
    }
}

fn is_http_url(text: &str) -> bool {
    origin_of(text).is_some()
}

/// Whether `url` is https, or http to `localhost`, `127.x.x.x` or `[::1]`.
fn is_https_or_loopback(url: &str) -> bool {
    let Some(origin) = origin_of(url) else {
        return false;
    };
    if origin.starts_with("https://") {
        return true;
    }
    let authority = origin.trim_start_matches("http://");
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default().to_owned()
    };
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://authority` of an http(s) URL.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// Why an ID token's claims do not make a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsRefused {
    /// The owner claim is missing or not a usable owner name (403).
    #[error("the identity provider sent no usable `{0}` claim to name you by")]
    NoOwner(String),
    /// The owner's email is not verified at the provider.
    #[error("the email address {0} is not verified at the identity provider")]
    EmailUnverified(String),
    /// An allow-list is not met (403 "… is not allowed to use this server").
    #[error("{0} is not allowed to use this server")]
    NotAllowed(String),
}

/// The claims of a verified ID token that matter here.
#[derive(Debug, Clone, Default)]
pub struct IdentityClaims {
    /// `sub`.
    pub subject: String,
    /// `email`, if sent.
    pub email: Option<String>,
    /// `email_verified`, if sent.
    pub email_verified: Option<bool>,
    /// `preferred_username`, if sent.
    pub preferred_username: Option<String>,
    /// Every other claim (non-standard ones such as `groups`).
    pub other: serde_json::Map<String, Value>,
}

impl OidcSettings {
    /// The caller these claims sign in as, or why not.
    pub fn caller_for(&self, claims: &IdentityClaims) -> Result<Caller, ClaimsRefused> {
        let owner = self.owner_from(claims)?;
        let groups = groups_of(claims.other.get(&self.groups_claim));
        if self.owner_claim == "email" && claims.email_verified == Some(false) {
            return Err(ClaimsRefused::EmailUnverified(owner));
        }
        if !self.allowed_domains.is_empty() {
            // A domain allow-list trusts the address: only one the provider
            // says it verified (some let people type any address).
            if claims.email_verified != Some(true) {
                return Err(ClaimsRefused::EmailUnverified(owner));
            }
            let domain = owner
                .rsplit_once('@')
                .map(|(_, domain)| domain.to_ascii_lowercase());
            if !domain.is_some_and(|domain| self.allowed_domains.contains(&domain)) {
                return Err(ClaimsRefused::NotAllowed(owner));
            }
        }
        if !self.allowed_groups.is_empty()
            && !groups
                .iter()
                .any(|group| self.allowed_groups.contains(group))
        {
            return Err(ClaimsRefused::NotAllowed(owner));
        }
        let admin = groups.iter().any(|group| self.admin_groups.contains(group));
        Ok(Caller { owner, admin })
    }

    fn owner_from(&self, claims: &IdentityClaims) -> Result<String, ClaimsRefused> {
        let value = match self.owner_claim.as_str() {
            "sub" => Some(claims.subject.clone()),
            "email" => claims.email.clone(),
            "preferred_username" => claims.preferred_username.clone(),
            other => claims
                .other
                .get(other)
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let refused = || ClaimsRefused::NoOwner(self.owner_claim.clone());
        let owner = value.ok_or_else(refused)?;
        let owner = owner.trim();
        if !valid_owner(owner) {
            return Err(refused());
        }
        // Email addresses are compared without case (`Alice@Example.com`
        // and `alice@example.com` are one person, so one owner).
        if self.owner_claim == "email" {
            return Ok(owner.to_lowercase());
        }
        Ok(owner.to_owned())
    }
}

/// Whether `owner` is usable as an owner name (as in the tokens file).
pub(crate) fn valid_owner(owner: &str) -> bool {
    !owner.is_empty() && owner.len() <= 128 && !owner.chars().any(char::is_control)
}

/// The groups of a groups claim: an array of strings or one string.
fn groups_of(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::String(group)) => vec![group.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> OidcSettings {
        OidcSettings::new("https://idp", "lease", "https://lease/auth/callback")
            .admin_groups(vec!["lease-admins".to_owned()])
    }

    fn claims(email: &str, groups: Value) -> IdentityClaims {
        let mut other = serde_json::Map::new();
        other.insert("groups".to_owned(), groups);
        IdentityClaims {
            subject: "sub-1".to_owned(),
            email: Some(email.to_owned()),
            other,
            ..IdentityClaims::default()
        }
    }

    #[test]
    fn groups_make_admins_as_an_array_or_a_string() {
        let s = settings();
        let admin = s.caller_for(&claims("a@x.com", json!(["dev", "lease-admins"])));
        assert_eq!(admin.map(|c| c.admin), Ok(true));
        let single = s.caller_for(&claims("a@x.com", json!("lease-admins")));
        assert_eq!(single.map(|c| c.admin), Ok(true));
        let plain = s.caller_for(&claims("a@x.com", json!(["dev"])));
        assert_eq!(plain.map(|c| c.admin), Ok(false));
        let odd = s.caller_for(&claims("a@x.com", json!({"lease-admins": true})));
        assert_eq!(odd.map(|c| c.admin), Ok(false));
    }

    #[test]
    fn allow_lists_refuse_others() {
        let s = settings()
            .allowed_domains(vec!["Example.com".to_owned()])
            .allowed_groups(vec!["staff".to_owned()]);
        let verified = |email: &str, groups: Value| IdentityClaims {
            email_verified: Some(true),
            ..claims(email, groups)
        };
        assert!(
            s.caller_for(&verified("a@example.com", json!(["staff"])))
                .is_ok()
        );
        // The right domain, unverified (or not said): refused.
        assert_eq!(
            s.caller_for(&claims("a@example.com", json!(["staff"]))),
            Err(ClaimsRefused::EmailUnverified("a@example.com".to_owned()))
        );
        assert_eq!(
            s.caller_for(&verified("a@evil.com", json!(["staff"]))),
            Err(ClaimsRefused::NotAllowed("a@evil.com".to_owned()))
        );
        assert!(s.caller_for(&verified("a@example.com", json!([]))).is_err());
        assert!(
            s.caller_for(&verified("a@example.com.evil", json!(["staff"])))
                .is_err()
        );
    }

    #[test]
    fn email_owners_are_lower_cased() {
        let s = settings();
        let mixed = s.caller_for(&claims("Alice@Example.COM", json!([])));
        assert_eq!(mixed.map(|c| c.owner), Ok("alice@example.com".to_owned()));
        let by_sub = settings().owner_claim("sub");
        assert_eq!(
            by_sub
                .caller_for(&claims("Alice@Example.COM", json!([])))
                .map(|c| c.owner),
            Ok("sub-1".to_owned())
        );
    }

    #[test]
    fn the_owner_claim_must_be_usable() {
        let s = settings();
        let mut c = claims("", json!([]));
        assert!(matches!(s.caller_for(&c), Err(ClaimsRefused::NoOwner(_))));
        c.email = None;
        assert!(matches!(s.caller_for(&c), Err(ClaimsRefused::NoOwner(_))));
        c.email = Some("a\u{7}@x.com".to_owned());
        assert!(matches!(s.caller_for(&c), Err(ClaimsRefused::NoOwner(_))));
        let by_sub = settings().owner_claim("sub");
        assert_eq!(
            by_sub.caller_for(&c).map(|c| c.owner),
            Ok("sub-1".to_owned())
        );
        let custom = settings().owner_claim("groups");
        assert!(custom.caller_for(&claims("a@x.com", json!(["x"]))).is_err());
        c.email = Some("a@x.com".to_owned());
        c.email_verified = Some(false);
        assert!(matches!(
            s.caller_for(&c),
            Err(ClaimsRefused::EmailUnverified(_))
        ));
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings().validate().is_ok());
        assert!(
            settings()
                .clock_skew(Duration::from_secs(301))
                .validate()
                .is_err()
        );
        let bad = OidcSettings::new("ftp://idp", "lease", "http://lease/auth/callback");
        assert!(bad.validate().is_err());
        assert_eq!(settings().public_origin(), "https://lease".to_owned());
        // Plain http only to this machine.
        for (issuer, redirect, ok) in [
            ("http://idp.example", "https://lease/auth/callback", false),
            ("https://idp", "http://lease.example/auth/callback", false),
            (
                "http://127.0.0.1:9400",
                "http://127.0.0.1:8080/auth/callback",
                true,
            ),
            (
                "http://localhost:9400",
                "http://[::1]:8080/auth/callback",
                true,
            ),
            (
                "http://127.0.0.1.evil.example",
                "https://lease/auth/callback",
                false,
            ),
        ] {
            let s = OidcSettings::new(issuer, "lease", redirect);
            assert_eq!(s.validate().is_ok(), ok, "{issuer} {redirect}");
        }
        assert_eq!(origin_of("https://User@x"), None);
    }
}
