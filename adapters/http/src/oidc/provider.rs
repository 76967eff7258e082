//! The identity provider: discovery, the authorization request (PKCE S256,
//! state, nonce), the code exchange, and ID token verification against the
//! provider's JWKS — all by the `openidconnect` crate. When an ID token is
//! signed by a key we do not know, discovery runs again (at most once per
//! [`REFRESH_INTERVAL`]), so a key rotation at the provider is picked up
//! without a restart.

use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken,
    IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKeySet, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::config::{IdentityClaims, OidcSettings};

/// Shortest time between two re-discoveries for an unknown signing key.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Timeout of each request to the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// An ID token issued longer ago than this (plus the skew) is refused:
/// it cannot belong to a sign-in that started within the pending-login TTL.
const MAX_ID_TOKEN_AGE: Duration = Duration::from_secs(10 * 60);

/// The ID token's claims that are not standard ones (`groups`, …).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct OtherClaims(pub(crate) serde_json::Map<String, serde_json::Value>);

impl AdditionalClaims for OtherClaims {}

type IdTokenOf = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<TokenFields, CoreTokenType>;
type ProviderClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why the provider could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A URL in the settings is not valid.
    #[error("invalid URL in the OIDC settings: {0}")]
    Url(String),
    /// Discovery (or the JWKS) failed.
    #[error("OIDC discovery at {issuer} failed: {message}")]
    Discovery {
        /// The issuer.
        issuer: String,
        /// What went wrong.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Why a sign-in's code did not yield a verified identity.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignInError {
    /// The provider has no token endpoint.
    #[error("the identity provider has no token endpoint")]
    NoTokenEndpoint,
    /// The code exchange failed (a used or wrong code, the provider down).
    #[error("the identity provider refused the sign-in code: {0}")]
    Exchange(String),
    /// The token response has no ID token.
    #[error("the identity provider sent no ID token")]
    NoIdToken,
    /// The ID token failed verification.
    #[error("the ID token is not valid: {0}")]
    Verification(#[from] ClaimsVerificationError),
}

/// What a new sign-in needs to remember (secret) and where to send the
/// browser.
#[derive(Debug)]
pub(crate) struct Authorization {
    /// The provider's authorization URL with every parameter.
    pub(crate) url: String,
    /// The `state` parameter.
    pub(crate) state: String,
    /// The nonce the ID token must carry.
    pub(crate) nonce: String,
    /// The PKCE verifier of the code challenge sent.
    pub(crate) verifier: String,
}

/// The identity provider in use.
#[derive(Debug)]
pub struct OidcProvider {
    settings: OidcSettings,
    http: reqwest::Client,
    metadata: RwLock<CoreProviderMetadata>,
    last_refresh: Mutex<Option<DateTime<Utc>>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl OidcProvider {
    /// Discovers the provider of `settings` (metadata and JWKS).
    pub async fn discover(settings: OidcSettings) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's response send us
            // elsewhere (SSRF): the crate's advice.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|error| ProviderError::Http(error.to_string()))?;
        let metadata = discover(&settings.issuer, &http).await?;
        info!(issuer = %settings.issuer, keys = metadata.jwks().keys().len(), "OIDC provider discovered");
        Ok(OidcProvider {
            settings,
            http,
            metadata: RwLock::new(metadata),
            last_refresh: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The issuer's host name, shown on the sign-in button.
    pub fn issuer_host(&self) -> String {
        let issuer = &self.settings.issuer;
        let rest = issuer.split_once("://").map_or(issuer.as_str(), |(_, r)| r);
        rest.split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    fn metadata(&self) -> CoreProviderMetadata {
        self.metadata
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn client(&self) -> Result<ProviderClient, ProviderError> {
        let redirect = RedirectUrl::new(self.settings.redirect_url.clone())
            .map_err(|error| ProviderError::Url(error.to_string()))?;
        Ok(ProviderClient::from_provider_metadata(
            self.metadata(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// A new authorization request: scopes `openid email profile` (and
    /// the groups claim's scope when the provider offers one), PKCE S256, a
    /// random state and nonce.
    pub(crate) fn authorize(&self) -> Result<Authorization, ProviderError> {
        let client = self.client()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let groups_scope = self.metadata().scopes_supported().is_some_and(|scopes| {
            scopes
                .iter()
                .any(|scope| scope.as_str() == self.settings.groups_claim)
        });
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge);
        if groups_scope {
            request = request.add_scope(Scope::new(self.settings.groups_claim.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges `code` (with the PKCE `verifier`) and verifies the ID
    /// token (signature, issuer, audience, expiry and issue time with the
    /// skew, `nonce`). An unknown signing key triggers one re-discovery.
    pub(crate) async fn finish(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<IdentityClaims, SignInError> {
        let client = self
            .client()
            .map_err(|e| SignInError::Exchange(e.to_string()))?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| SignInError::NoTokenEndpoint)?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|error| SignInError::Exchange(exchange_error(&error)))?;
        let id_token = response
            .extra_fields()
            .id_token()
            .ok_or(SignInError::NoIdToken)?;
        let nonce = Nonce::new(nonce.to_owned());
        match self.verify(id_token, &nonce, now) {
            Err(ClaimsVerificationError::SignatureVerification(error)) => {
                if self.refresh(now).await {
                    Ok(self.verify(id_token, &nonce, now)?)
                } else {
                    Err(ClaimsVerificationError::SignatureVerification(error).into())
                }
            }
            other => Ok(other?),
        }
    }

    fn verify(
        &self,
        id_token: &IdTokenOf,
        nonce: &Nonce,
        now: DateTime<Utc>,
    ) -> Result<IdentityClaims, ClaimsVerificationError> {
        let metadata = self.metadata();
        verify_id_token(
            id_token,
            &TokenCheck {
                client_id: &self.settings.client_id,
                issuer: metadata.issuer(),
                jwks: metadata.jwks(),
                now,
                skew: self.settings.clock_skew,
            },
            nonce,
        )
    }

    /// Re-discovers the provider (new keys) unless that was done less than
    /// [`REFRESH_INTERVAL`] ago. Whether the metadata was replaced.
    async fn refresh(&self, now: DateTime<Utc>) -> bool {
        let _one_at_a_time = self.refreshing.lock().await;
        {
            let mut last = self
                .last_refresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let interval = chrono::Duration::from_std(REFRESH_INTERVAL).unwrap_or_default();
            if last.is_some_and(|last| now - last < interval) {
                return false;
            }
            *last = Some(now);
        }
        match discover(&self.settings.issuer, &self.http).await {
            Ok(metadata) => {
                info!(issuer = %self.settings.issuer, keys = metadata.jwks().keys().len(), "OIDC keys refreshed (unknown signing key)");
                *self
                    .metadata
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = metadata;
                true
            }
            Err(error) => {
                warn!(error = %error, "OIDC re-discovery failed; keeping the keys in use");
                false
            }
        }
    }
}

async fn discover(
    issuer: &str,
    http: &reqwest::Client,
) -> Result<CoreProviderMetadata, ProviderError> {
    let issuer_url =
        IssuerUrl::new(issuer.to_owned()).map_err(|error| ProviderError::Url(error.to_string()))?;
    CoreProviderMetadata::discover_async(issuer_url, http)
        .await
        .map_err(|error| ProviderError::Discovery {
            issuer: issuer.to_owned(),
            message: lease_core::error::error_chain(&error).to_string(),
        })
}

fn exchange_error<E: std::error::Error + 'static>(error: &E) -> String {
    lease_core::error::error_chain(error).to_string()
}

/// What an ID token is checked against.
pub(crate) struct TokenCheck<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) issuer: &'a IssuerUrl,
    pub(crate) jwks: &'a JsonWebKeySet<CoreJsonWebKey>,
    pub(crate) now: DateTime<Utc>,
    pub(crate) skew: Duration,
}

/// The asymmetric algorithms accepted (never `none` nor HMAC).
fn allowed_algorithms() -> Vec<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm as A;
    vec![
        A::RsaSsaPkcs1V15Sha256,
        A::RsaSsaPkcs1V15Sha384,
        A::RsaSsaPkcs1V15Sha512,
        A::RsaSsaPssSha256,
        A::RsaSsaPssSha384,
        A::RsaSsaPssSha512,
        A::EcdsaP256Sha256,
        A::EcdsaP384Sha384,
        A::EdDsa,
    ]
}

/// Verifies `id_token`: signature by a key of `check.jwks`, issuer,
/// audience (our client id, no other), `exp` and `iat` within the skew,
/// and `nonce`.
pub(crate) fn verify_id_token(
    id_token: &IdTokenOf,
    check: &TokenCheck<'_>,
    nonce: &Nonce,
) -> Result<IdentityClaims, ClaimsVerificationError> {
    let skew = chrono::Duration::from_std(check.skew).unwrap_or_default();
    let max_age = chrono::Duration::from_std(MAX_ID_TOKEN_AGE).unwrap_or_default();
    let now = check.now;
    let verifier = IdTokenVerifier::new_public_client(
        ClientId::new(check.client_id.to_owned()),
        check.issuer.clone(),
        check.jwks.clone(),
    )
    .set_allowed_algs(allowed_algorithms())
    // `exp` is compared with this time: a token expired less than the
    // skew ago still passes.
    .set_time_fn(move || now - skew)
    .set_issue_time_verifier_fn(move |issued| {
        if issued > now + skew {
            Err(format!("issued in the future ({issued})"))
        } else if issued < now - max_age - skew {
            Err(format!("issued too long ago ({issued})"))
        } else {
            Ok(())
        }
    })
    // Another audience than ours is not trusted.
    .set_other_audience_verifier_fn(|_| false);
    let claims = id_token.claims(&verifier, nonce)?;
    // The crate does not check `azp`: a token issued to another party is
    // not ours even when it names us as its audience.
    if let Some(party) = claims.authorized_party()
        && party.as_str() != check.client_id
    {
        return Err(ClaimsVerificationError::InvalidAudience(format!(
            "authorized party {} is not this client",
            party.as_str()
        )));
    }
    Ok(IdentityClaims {
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|email| email.as_str().to_owned()),
        email_verified: claims.email_verified(),
        preferred_username: claims
            .preferred_username()
            .map(|name| name.as_str().to_owned()),
        other: claims.additional_claims().0.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openidconnect::core::CoreRsaPrivateSigningKey;
    use openidconnect::{
        Audience, EndUserEmail, IdTokenClaims, JsonWebKeyId, PrivateSigningKey, StandardClaims,
        SubjectIdentifier,
    };

    const KEY: &str = include_str!("testdata/test-rsa-key.pem");
    const ISSUER: &str = "https://idp.example.com";

    fn key() -> CoreRsaPrivateSigningKey {
        CoreRsaPrivateSigningKey::from_pem(KEY, Some(JsonWebKeyId::new("k1".to_owned())))
            .expect("the test key parses")
    }

    fn claims(
        audience: &str,
        issued: DateTime<Utc>,
        expires: DateTime<Utc>,
        nonce: &str,
    ) -> IdTokenClaims<OtherClaims, CoreGenderClaim> {
        let mut other = serde_json::Map::new();
        other.insert("groups".to_owned(), serde_json::json!(["lease-admins"]));
        IdTokenClaims::new(
            IssuerUrl::new(ISSUER.to_owned()).expect("issuer"),
            vec![Audience::new(audience.to_owned())],
            expires,
            issued,
            StandardClaims::new(SubjectIdentifier::new("alice-sub".to_owned()))
                .set_email(Some(EndUserEmail::new("alice@example.com".to_owned()))),
            OtherClaims(other),
        )
        .set_nonce(Some(Nonce::new(nonce.to_owned())))
    }

    fn signed(claims: IdTokenClaims<OtherClaims, CoreGenderClaim>) -> IdTokenOf {
        IdToken::new(
            claims,
            &key(),
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            None,
            None,
        )
        .expect("signs")
    }

    fn token(
        audience: &str,
        issued: DateTime<Utc>,
        expires: DateTime<Utc>,
        nonce: &str,
    ) -> IdTokenOf {
        signed(claims(audience, issued, expires, nonce))
    }

    fn check(
        token: &IdTokenOf,
        now: DateTime<Utc>,
        nonce: &str,
    ) -> Result<IdentityClaims, ClaimsVerificationError> {
        let issuer = IssuerUrl::new(ISSUER.to_owned()).expect("issuer");
        let jwks = JsonWebKeySet::new(vec![key().as_verification_key()]);
        verify_id_token(
            token,
            &TokenCheck {
                client_id: "lease",
                issuer: &issuer,
                jwks: &jwks,
                now,
                skew: Duration::from_secs(60),
            },
            &Nonce::new(nonce.to_owned()),
        )
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("time")
    }

    #[test]
    fn a_good_token_gives_its_claims() {
        let token = token("lease", at(0), at(300), "n1");
        let claims = check(&token, at(10), "n1").expect("valid");
        assert_eq!(claims.subject, "alice-sub");
        assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
        assert_eq!(claims.other["groups"], serde_json::json!(["lease-admins"]));
    }

    #[test]
    fn another_audience_is_refused() {
        let token = token("someone-else", at(0), at(300), "n1");
        assert!(matches!(
            check(&token, at(10), "n1"),
            Err(ClaimsVerificationError::InvalidAudience(_))
        ));
    }

    #[test]
    fn a_token_for_another_authorized_party_is_refused() {
        let ours = claims("lease", at(0), at(300), "n1")
            .set_authorized_party(Some(ClientId::new("lease".to_owned())));
        assert!(check(&signed(ours), at(10), "n1").is_ok());
        let theirs = claims("lease", at(0), at(300), "n1")
            .set_authorized_party(Some(ClientId::new("someone-else".to_owned())));
        assert!(matches!(
            check(&signed(theirs), at(10), "n1"),
            Err(ClaimsVerificationError::InvalidAudience(_))
        ));
    }

    #[test]
    fn expiry_is_checked_with_the_skew() {
        let token = token("lease", at(0), at(300), "n1");
        // 30 s after exp: within the 60 s skew.
        assert!(check(&token, at(330), "n1").is_ok());
        assert!(matches!(
            check(&token, at(361), "n1"),
            Err(ClaimsVerificationError::Expired(_))
        ));
    }

    #[test]
    fn issue_time_in_the_future_is_refused_beyond_the_skew() {
        let token = token("lease", at(120), at(600), "n1");
        assert!(check(&token, at(0), "n1").is_err());
        assert!(check(&token, at(70), "n1").is_ok());
    }

    #[test]
    fn a_wrong_nonce_is_refused() {
        let token = token("lease", at(0), at(300), "n1");
        assert!(matches!(
            check(&token, at(10), "n2"),
            Err(ClaimsVerificationError::InvalidNonce(_))
        ));
    }

    #[test]
    fn a_token_signed_by_an_unknown_key_is_refused() {
        let token = token("lease", at(0), at(300), "n1");
        let issuer = IssuerUrl::new(ISSUER.to_owned()).expect("issuer");
        let empty = JsonWebKeySet::new(Vec::new());
        let result = verify_id_token(
            &token,
            &TokenCheck {
                client_id: "lease",
                issuer: &issuer,
                jwks: &empty,
                now: at(10),
                skew: Duration::from_secs(60),
            },
            &Nonce::new("n1".to_owned()),
        );
        assert!(matches!(
            result,
            Err(ClaimsVerificationError::SignatureVerification(_))
        ));
    }

    #[test]
    fn another_issuer_is_refused() {
        let token = token("lease", at(0), at(300), "n1");
        let issuer = IssuerUrl::new("https://evil.example.com".to_owned()).expect("issuer");
        let jwks = JsonWebKeySet::new(vec![key().as_verification_key()]);
        let result = verify_id_token(
            &token,
            &TokenCheck {
                client_id: "lease",
                issuer: &issuer,
                jwks: &jwks,
                now: at(10),
                skew: Duration::from_secs(60),
            },
            &Nonce::new("n1".to_owned()),
        );
        assert!(matches!(
            result,
            Err(ClaimsVerificationError::InvalidIssuer(_))
        ));
    }
}
