//! Signing in: how a server signs people in (`GET /api/auth`), who the
//! token is (`GET /api/me`), and getting a personal token for the command
//! line with OpenID Connect — the loopback code exchange
//! (`POST /auth/cli/token`) and the device-style flow (`POST /auth/device`,
//! polled at `POST /auth/device/token`) — and revoking it
//! (`DELETE /api/tokens/current`).

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::ClientError;

/// How a lease-server signs people in (`GET /api/auth`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthInfo {
    /// `oidc`, `tokens` or `single-user`.
    pub mode: String,
    /// Where a browser sign-in starts (`/auth/login`), with OIDC.
    #[serde(default)]
    pub sign_in: Option<String>,
    /// The identity provider's host, with OIDC.
    #[serde(default)]
    pub provider: Option<String>,
}

impl AuthInfo {
    /// Whether the server signs people in with OpenID Connect.
    pub fn is_oidc(&self) -> bool {
        self.mode == "oidc"
    }
}

/// Who the caller is (`GET /api/me`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The owner name the server acts for.
    pub owner: String,
    /// Whether the caller is an admin.
    #[serde(default)]
    pub admin: bool,
    /// `session`, `token` or `single-user`.
    #[serde(default)]
    pub via: String,
}

/// A personal token just minted for the command line (shown once).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintedToken {
    /// The bearer token (`clp_…`).
    pub token: String,
    /// Its id (to revoke it).
    pub id: String,
    /// The owner it acts as.
    pub owner: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("MintedToken")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A device-style sign-in under way (`POST /auth/device`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStart {
    /// The secret the command line polls with.
    pub device_code: String,
    /// What the person types in the browser (`ABCD-EFGH`).
    pub user_code: String,
    /// The page where the person types it.
    pub verification_uri: String,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

/// One poll of a device-style sign-in.
#[derive(Debug)]
pub enum DevicePoll {
    /// Signed in: the new token.
    Token(MintedToken),
    /// Nobody has allowed it yet: poll again after the interval.
    Pending,
    /// Polled too fast: poll again after a longer interval.
    SlowDown,
    /// The person refused.
    Denied,
    /// The codes expired (or are unknown): start again.
    Expired,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CodeExchange<'a> {
    code: &'a str,
    code_verifier: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceRequest<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceTokenRequest<'a> {
    device_code: &'a str,
}

/// The RFC 8628-style error code of a failed poll: the API's `code`, or
/// a bare `{"error":"…"}` body.
fn poll_error_code(error: &ClientError) -> Option<String> {
    let ClientError::Api { code, message, .. } = error else {
        return None;
    };
    if !code.starts_with("http_") {
        return Some(code.clone());
    }
    #[derive(Deserialize)]
    struct Bare {
        error: String,
    }
    serde_json::from_str::<Bare>(message)
        .ok()
        .map(|bare| bare.error)
}

impl Client {
    /// `GET /api/auth`: how the server signs people in. A server from
    /// before OpenID Connect has no such route (404): treated as `tokens`.
    pub async fn auth_info(&self) -> Result<AuthInfo, ClientError> {
        match self.get(self.url(&["api", "auth"])).await {
            Err(error) if error.is_not_found() => Ok(AuthInfo {
                mode: "tokens".to_owned(),
                sign_in: None,
                provider: None,
            }),
            other => other,
        }
    }

    /// `GET /api/me`: who this client's token is.
    pub async fn me(&self) -> Result<Me, ClientError> {
        self.get(self.url(&["api", "me"])).await
    }

    /// `POST /auth/cli/token`: trades the one-time `code` the browser
    /// handed to the loopback listener, with the `verifier` whose hash
    /// the sign-in started with, for a personal token. The code is spent
    /// by this call, right verifier or not.
    pub async fn cli_token(&self, code: &str, verifier: &str) -> Result<MintedToken, ClientError> {
        let body = CodeExchange {
            code,
            code_verifier: verifier,
        };
        self.json(
            Method::POST,
            self.url(&["auth", "cli", "token"]),
            Some(&body),
        )
        .await
    }

    /// `POST /auth/device`: starts a device-style sign-in for a token
    /// called `name`.
    pub async fn device_start(&self, name: &str) -> Result<DeviceStart, ClientError> {
        self.json(
            Method::POST,
            self.url(&["auth", "device"]),
            Some(&DeviceRequest { name }),
        )
        .await
    }

    /// `POST /auth/device/token`: one poll of a device-style sign-in.
    pub async fn device_poll(&self, device_code: &str) -> Result<DevicePoll, ClientError> {
        let answer = self
            .json(
                Method::POST,
                self.url(&["auth", "device", "token"]),
                Some(&DeviceTokenRequest { device_code }),
            )
            .await;
        let error = match answer {
            Ok(token) => return Ok(DevicePoll::Token(token)),
            Err(error) => error,
        };
        Ok(match poll_error_code(&error).as_deref() {
            Some("authorization_pending") => DevicePoll::Pending,
            Some("slow_down") => DevicePoll::SlowDown,
            Some("access_denied") => DevicePoll::Denied,
            Some("expired_token") => DevicePoll::Expired,
            _ => return Err(error),
        })
    }

    /// `DELETE /api/tokens/current`: revokes the personal token this
    /// client presents. `Ok(false)` when there was nothing to revoke (not
    /// a personal token: 404; already revoked or expired: 401).
    pub async fn revoke_current_token(&self) -> Result<bool, ClientError> {
        match self
            .call::<()>(
                Method::DELETE,
                self.url(&["api", "tokens", "current"]),
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if matches!(error.status(), Some(401 | 404)) => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// How long to wait before the next poll, given the server's `interval`
/// in seconds (at least 1 s, at most 60 s).
pub fn poll_interval(seconds: u64) -> Duration {
    Duration::from_secs(seconds.clamp(1, 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_poll_errors_in_both_shapes() {
        let api = ClientError::from_answer(
            400,
            br#"{"error":{"code":"authorization_pending","message":"not yet"}}"#,
            None,
        );
        assert_eq!(
            poll_error_code(&api).as_deref(),
            Some("authorization_pending")
        );
        let bare = ClientError::from_answer(400, br#"{"error":"slow_down"}"#, None);
        assert_eq!(poll_error_code(&bare).as_deref(), Some("slow_down"));
        let html = ClientError::from_answer(502, b"<html>bad gateway</html>", None);
        assert_eq!(poll_error_code(&html), None);
    }

    #[test]
    fn a_minted_token_never_prints() {
        let token = MintedToken {
            token: "clp_secret".to_owned(),
            id: "t1".to_owned(),
            owner: "alice".to_owned(),
            name: "laptop".to_owned(),
        };
        assert!(!format!("{token:?}").contains("clp_secret"));
    }

    #[test]
    fn the_poll_interval_is_bounded() {
        assert_eq!(poll_interval(0), Duration::from_secs(1));
        assert_eq!(poll_interval(2), Duration::from_secs(2));
        assert_eq!(poll_interval(3600), Duration::from_secs(60));
    }
}
