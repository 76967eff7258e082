//! The headless CLI login, in the manner of the OAuth device grant
//! (RFC 8628; ours, the identity provider need not have one): the CLI asks
//! for a code (`POST /auth/device`), shows the person a URL and a short
//! user code, and polls (`POST /auth/device/token`); the person, signed in
//! on any browser, opens `GET /auth/device`, enters the code
//! (`POST /auth/device/verify`) and allows it (`POST /auth/device/allow`).
//!
//! Bounded: at most [`MAX_PENDING_DEVICES`] logins in progress, each for
//! [`DEVICE_TTL`]; user codes of 8 letters from an alphabet without vowels
//! or look-alikes; at most [`MAX_WRONG_CODES`] wrong codes per owner per
//! minute. The device code is 256 random bits, kept hashed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lease_core::WebSession;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use utoipa::ToSchema;

use super::cli_login::{
    CliTokenJson, form_session, mint_for_cli, not_enabled, parse_fields, sign_in_first,
};
use super::session::session_of;
use super::tokens::valid_name;
use super::{pages, random_hex, sha256_hex};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;

/// Most device logins in progress at once.
pub const MAX_PENDING_DEVICES: usize = 1000;
/// How long a device login may take.
pub const DEVICE_TTL: Duration = Duration::from_secs(600);
/// How often the CLI polls, in seconds; polls closer than half of it get
/// `slow_down`.
pub const POLL_INTERVAL_SECS: u64 = 2;
/// Wrong user codes a session may enter per minute.
pub const MAX_WRONG_CODES: u32 = 5;
/// User-code letters: consonants only (no words, no 0/O or 1/I look-alikes).
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code.
const USER_CODE_LEN: usize = 8;
/// Owners whose wrong entries are remembered.
const MAX_WRONG_SESSIONS: usize = 10_000;

/// What the person decided.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    Pending,
    Allowed { owner: String, admin: bool },
    Denied,
}

#[derive(Clone, Debug)]
struct DeviceLogin {
    user_code: String,
    name: String,
    expires_at: DateTime<Utc>,
    last_poll: Option<DateTime<Utc>>,
    decision: Decision,
}

#[derive(Debug, Default)]
struct Devices {
    /// By the SHA-256 of the device code.
    by_device: HashMap<String, DeviceLogin>,
    /// User code (canonical, no dash) → the SHA-256 of the device code.
    by_user_code: HashMap<String, String>,
    /// Owner → (start of its minute, wrong entries in it).
    wrong: HashMap<String, (DateTime<Utc>, u32)>,
}

impl Devices {
    fn purge(&mut self, now: DateTime<Utc>) {
        self.by_device.retain(|_, login| login.expires_at > now);
        let live = &self.by_device;
        self.by_user_code
            .retain(|_, device| live.contains_key(device));
    }

    fn remove(&mut self, device_sha256: &str) -> Option<DeviceLogin> {
        let login = self.by_device.remove(device_sha256)?;
        self.by_user_code.remove(&login.user_code);
        Some(login)
    }
}

/// Device logins in progress.
#[derive(Debug, Default)]
pub(crate) struct DeviceLogins {
    inner: Mutex<Devices>,
}

/// Why a user code was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    TooManyWrong,
    Unknown,
}

/// What a poll learns.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Poll {
    Unknown,
    Expired,
    Pending,
    SlowDown,
    Denied,
    Allowed {
        owner: String,
        admin: bool,
        name: String,
    },
}

impl DeviceLogins {
    fn lock(&self) -> std::sync::MutexGuard<'_, Devices> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new login for a token named `name`: (device code, user code), or
    /// `None` when too many are in progress.
    fn start(&self, name: String, now: DateTime<Utc>) -> Option<(String, String)> {
        let mut devices = self.lock();
        if devices.by_device.len() >= MAX_PENDING_DEVICES {
            devices.purge(now);
        }
        if devices.by_device.len() >= MAX_PENDING_DEVICES {
            return None;
        }
        let user_code = loop {
            let code = new_user_code();
            if !devices.by_user_code.contains_key(&code) {
                break code;
            }
        };
        let device_code = random_hex();
        let device_sha256 = sha256_hex(&device_code);
        let ttl = chrono::Duration::from_std(DEVICE_TTL).unwrap_or_default();
        devices
            .by_user_code
            .insert(user_code.clone(), device_sha256.clone());
        devices.by_device.insert(
            device_sha256,
            DeviceLogin {
                user_code: user_code.clone(),
                name,
                expires_at: now + ttl,
                last_poll: None,
                decision: Decision::Pending,
            },
        );
        Some((device_code, user_code))
    }

    /// The pending login of `user_code` (its token name), counting a wrong
    /// entry against `who` (the signed-in owner).
    fn find(&self, who: &str, user_code: &str, now: DateTime<Utc>) -> Result<String, Entry> {
        let mut devices = self.lock();
        let minute = chrono::Duration::minutes(1);
        if let Some((since, count)) = devices.wrong.get(who)
            && now - *since < minute
            && *count >= MAX_WRONG_CODES
        {
            return Err(Entry::TooManyWrong);
        }
        let found = canonical(user_code)
            .and_then(|code| devices.by_user_code.get(&code).cloned())
            .and_then(|device| devices.by_device.get(&device).cloned())
            .filter(|login| login.expires_at > now && login.decision == Decision::Pending);
        if let Some(login) = found {
            return Ok(login.name);
        }
        if devices.wrong.len() >= MAX_WRONG_SESSIONS {
            devices.wrong.retain(|_, (since, _)| now - *since < minute);
        }
        let entry = devices.wrong.entry(who.to_owned()).or_insert((now, 0));
        if now - entry.0 >= minute {
            *entry = (now, 0);
        }
        entry.1 += 1;
        Err(Entry::Unknown)
    }

    /// Records the person's decision on a pending `user_code`; its token
    /// name, or `None` if it is not pending (any more).
    fn decide(&self, user_code: &str, decision: Decision, now: DateTime<Utc>) -> Option<String> {
        let mut devices = self.lock();
        let device =
            canonical(user_code).and_then(|code| devices.by_user_code.get(&code).cloned())?;
        let login = devices
            .by_device
            .get_mut(&device)
            .filter(|login| login.expires_at > now && login.decision == Decision::Pending)?;
        login.decision = decision;
        Some(login.name.clone())
    }

    /// The CLI polls with its device code.
    fn poll(&self, device_code: &str, now: DateTime<Utc>) -> Poll {
        let mut devices = self.lock();
        let device = sha256_hex(device_code);
        let Some(login) = devices.by_device.get_mut(&device) else {
            return Poll::Unknown;
        };
        if login.expires_at <= now {
            devices.remove(&device);
            return Poll::Expired;
        }
        let too_soon = chrono::Duration::milliseconds((POLL_INTERVAL_SECS * 500) as i64);
        let last = login.last_poll.replace(now);
        match login.decision.clone() {
            Decision::Pending if last.is_some_and(|last| now - last < too_soon) => Poll::SlowDown,
            Decision::Pending => Poll::Pending,
            Decision::Denied => {
                devices.remove(&device);
                Poll::Denied
            }
            Decision::Allowed { owner, admin } => {
                let name = login.name.clone();
                devices.remove(&device);
                Poll::Allowed { owner, admin, name }
            }
        }
    }
}

/// A random user code (canonical form: 8 letters, no dash).
fn new_user_code() -> String {
    let mut rng = rand::rng();
    (0..USER_CODE_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// `abcd-efgh`, `ABCD EFGH` → `ABCDEFGH`, if it can be a user code.
fn canonical(entered: &str) -> Option<String> {
    if entered.len() > 32 {
        return None;
    }
    let code: String = entered
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// `ABCDEFGH` → `ABCD-EFGH`.
fn display(code: &str) -> String {
    let (head, tail) = code.split_at(code.len() / 2);
    format!("{head}-{tail}")
}

/// `POST /auth/device`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceRequest {
    /// The personal token's name (1 to 64 printable characters).
    name: String,
}

/// A device login started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeviceJson {
    /// The CLI's secret, to poll with.
    device_code: String,
    /// What the person types, `ABCD-EFGH`.
    user_code: String,
    /// Where the person enters it.
    verification_uri: String,
    /// The same with the code filled in.
    verification_uri_complete: String,
    /// Seconds the login may take.
    expires_in: u64,
    /// Seconds between polls.
    interval: u64,
}

/// Starts a headless CLI login.
#[utoipa::path(
    post,
    path = "/auth/device",
    tag = "auth",
    request_body = DeviceRequest,
    responses(
        (status = 200, description = "The codes; show the person `verificationUri` and `userCode`, poll `/auth/device/token`", body = DeviceJson),
        (status = 422, description = "Invalid name", body = crate::error::ErrorBody),
        (status = 503, description = "`too_many_sign_ins`: too many logins in progress", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn start(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<DeviceRequest>,
) -> Result<Json<DeviceJson>, ApiError> {
    let oidc = super::session::enabled(&state)?;
    let name = valid_name(&request.name)?;
    let now = state.manager.clock().now();
    let Some((device_code, user_code)) = oidc.inner.devices.start(name.clone(), now) else {
        warn!("too many device logins in progress");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_sign_ins",
            "too many logins are in progress; try again in a few minutes",
        ));
    };
    let user_code = display(&user_code);
    let verification_uri = format!("{}/auth/device", oidc.settings().public_origin());
    info!(name = %name, "device login started");
    Ok(Json(DeviceJson {
        device_code,
        verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
        user_code,
        verification_uri,
        expires_in: DEVICE_TTL.as_secs(),
        interval: POLL_INTERVAL_SECS,
    }))
}

/// `GET /auth/device`'s query and the forms' fields.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeviceFields {
    user_code: Option<String>,
    csrf: Option<String>,
    decision: Option<String>,
}

/// The page where a signed-in person enters a user code.
#[utoipa::path(
    get,
    path = "/auth/device",
    tag = "auth",
    params(("user_code" = Option<String>, Query, description = "Fills the form in")),
    responses(
        (status = 200, description = "HTML page: a form to enter the user code"),
        (status = 302, description = "Not signed in: to `/auth/login`, coming back here"),
    )
)]
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(oidc) = state.oidc.as_ref() else {
        return not_enabled();
    };
    let fields: DeviceFields =
        parse_fields(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let prefill = fields.user_code.as_deref().and_then(canonical);
    let now = state.manager.clock().now();
    match session_of(oidc, &headers, now).await {
        Ok(Some(session)) => code_form(StatusCode::OK, &session, prefill.as_deref(), None),
        Ok(None) => sign_in_first(&match prefill {
            Some(code) => format!("/auth/device?user_code={}", display(&code)),
            None => "/auth/device".to_owned(),
        }),
        Err(error) => error.into_response(),
    }
}

fn code_form(
    status: StatusCode,
    session: &WebSession,
    prefill: Option<&str>,
    problem: Option<&str>,
) -> Response {
    let problem = problem.map_or_else(String::new, |text| {
        format!("<p><strong>{}</strong></p>", pages::escape(text))
    });
    let body = format!(
        "<p>Signed in as <strong>{owner}</strong>. Enter the code <code>lease login --device</code> shows:</p>\
         {problem}<form method=\"post\" action=\"/auth/device/verify\">{csrf}\
         <input name=\"user_code\" value=\"{value}\" autocomplete=\"off\" autocapitalize=\"characters\" \
         spellcheck=\"false\" maxlength=\"16\" placeholder=\"ABCD-EFGH\" required> \
         <button type=\"submit\">Continue</button></form>",
        owner = pages::escape(&session.owner),
        csrf = pages::hidden_field("csrf", &session.csrf),
        value = pages::escape(&prefill.map(display).unwrap_or_default()),
    );
    pages::page(status, "Log in a device", &body)
}

/// Checks an entered user code: the confirm page.
#[utoipa::path(
    post,
    path = "/auth/device/verify",
    tag = "auth",
    request_body(content_type = "application/x-www-form-urlencoded", description = "user_code, csrf"),
    responses(
        (status = 200, description = "HTML confirm page: allow `lease` on that device?"),
        (status = 400, description = "HTML page: unknown or expired code (the form again)"),
        (status = 401, description = "HTML page: not signed in"),
        (status = 403, description = "HTML page: CSRF check failed"),
        (status = 429, description = "HTML page: too many wrong codes, wait a minute"),
    ),
    security(("session" = []))
)]
pub(crate) async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(oidc) = state.oidc.as_ref() else {
        return not_enabled();
    };
    let fields: DeviceFields = parse_fields(&body).unwrap_or_default();
    let now = state.manager.clock().now();
    let session = match form_session(oidc, &headers, fields.csrf.as_deref(), now).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let entered = fields.user_code.unwrap_or_default();
    // Wrong entries count per owner (a fresh session does not reset them).
    match oidc.inner.devices.find(&session.owner, &entered, now) {
        Ok(name) => confirm_page(&session, &entered, &name),
        Err(Entry::Unknown) => {
            warn!(owner = %session.owner, "wrong device user code");
            code_form(
                StatusCode::BAD_REQUEST,
                &session,
                None,
                Some("That code is not known or has expired: check it, or run the CLI again."),
            )
        }
        Err(Entry::TooManyWrong) => too_many_wrong(&session.owner),
    }
}

/// The 429 page once `owner` entered too many wrong codes this minute.
fn too_many_wrong(owner: &str) -> Response {
    warn!(owner = %owner, "too many wrong device user codes");
    pages::message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many wrong codes",
        "Too many wrong codes: wait a minute and try again.",
    )
}

fn confirm_page(session: &WebSession, entered: &str, name: &str) -> Response {
    let code = canonical(entered)
        .map(|code| display(&code))
        .unwrap_or_default();
    let hidden = [("user_code", code.clone()), ("csrf", session.csrf.clone())];
    let body = format!(
        "<p>Allow <code>lease</code> on the device showing <code>{code}</code> to act as \
         <strong>{owner}</strong>?</p><p>It gets a personal token named <strong>{name}</strong>.</p>\
         <p>Only allow it if you started this login yourself.</p>{form}",
        code = pages::escape(&code),
        owner = pages::escape(&session.owner),
        name = pages::escape(name),
        form = pages::decision_form("/auth/device/allow", &hidden),
    );
    pages::page(StatusCode::OK, "Allow the device?", &body)
}

/// Allows (or denies) a device login.
#[utoipa::path(
    post,
    path = "/auth/device/allow",
    tag = "auth",
    request_body(content_type = "application/x-www-form-urlencoded", description = "user_code, csrf, decision (`allow` or `deny`)"),
    responses(
        (status = 200, description = "HTML page: done, the CLI goes on"),
        (status = 400, description = "HTML page: the code is not pending any more"),
        (status = 401, description = "HTML page: not signed in"),
        (status = 403, description = "HTML page: CSRF check failed"),
        (status = 429, description = "HTML page: too many wrong codes, wait a minute"),
    ),
    security(("session" = []))
)]
pub(crate) async fn allow(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(oidc) = state.oidc.as_ref() else {
        return not_enabled();
    };
    let fields: DeviceFields = parse_fields(&body).unwrap_or_default();
    let now = state.manager.clock().now();
    let session = match form_session(oidc, &headers, fields.csrf.as_deref(), now).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let allowed = fields.decision.as_deref() == Some("allow");
    let decision = if allowed {
        Decision::Allowed {
            owner: session.owner.clone(),
            admin: session.admin,
        }
    } else {
        Decision::Denied
    };
    let entered = fields.user_code.unwrap_or_default();
    // The allow form counts wrong codes as the code form does, so guessing
    // by posting here straight away is bounded the same.
    match oidc.inner.devices.find(&session.owner, &entered, now) {
        Ok(_) => {}
        Err(Entry::TooManyWrong) => return too_many_wrong(&session.owner),
        Err(Entry::Unknown) => warn!(owner = %session.owner, "wrong device user code"),
    }
    match oidc.inner.devices.decide(&entered, decision, now) {
        Some(name) if allowed => {
            info!(owner = %session.owner, name = %name, "device login allowed");
            pages::message(
                StatusCode::OK,
                "Device allowed",
                "Done: the CLI on that device is signed in. You may close this page.",
            )
        }
        Some(_) => {
            info!(owner = %session.owner, "device login denied");
            pages::message(
                StatusCode::OK,
                "Device denied",
                "The CLI on that device was refused.",
            )
        }
        None => pages::message(
            StatusCode::BAD_REQUEST,
            "Code not pending",
            "That code is not known, was already used or has expired: run the CLI again.",
        ),
    }
}

/// `POST /auth/device/token`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DevicePoll {
    /// The device code `POST /auth/device` gave.
    device_code: String,
}

/// The CLI polls: a token once the person allowed it.
#[utoipa::path(
    post,
    path = "/auth/device/token",
    tag = "auth",
    request_body = DevicePoll,
    responses(
        (status = 200, description = "Allowed: a new personal token", body = CliTokenJson),
        (status = 400, description = "`authorization_pending` (poll again), `slow_down` (poll less often), `expired_token`, `access_denied` or `invalid_grant` (stop)", body = crate::error::ErrorBody),
        (status = 409, description = "`too_many_tokens`: the owner must revoke one first", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn token(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<DevicePoll>,
) -> Result<Json<CliTokenJson>, ApiError> {
    let oidc = super::session::enabled(&state)?;
    let now = state.manager.clock().now();
    let answer = |code: &str, message: &str| ApiError::new(StatusCode::BAD_REQUEST, code, message);
    if request.device_code.len() > 128 {
        return Err(answer("invalid_grant", "this device code is unknown"));
    }
    match oidc.inner.devices.poll(&request.device_code, now) {
        Poll::Allowed { owner, admin, name } => {
            info!(owner = %owner, name = %name, "device login finished");
            mint_for_cli(oidc, owner, admin, name, now).await
        }
        Poll::Pending => Err(answer(
            "authorization_pending",
            "waiting for the person to enter the code and allow it",
        )),
        Poll::SlowDown => Err(answer(
            "slow_down",
            &format!("poll at most every {POLL_INTERVAL_SECS} s"),
        )),
        Poll::Denied => Err(answer("access_denied", "the person refused this login")),
        Poll::Expired => Err(answer(
            "expired_token",
            "this login took too long: run the CLI again",
        )),
        Poll::Unknown => Err(answer(
            "invalid_grant",
            "this device code is unknown or was already used",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("time")
    }

    #[test]
    fn user_codes_are_unambiguous_and_forgiving() {
        for _ in 0..100 {
            let code = new_user_code();
            assert_eq!(canonical(&display(&code)), Some(code.clone()));
            assert_eq!(canonical(&display(&code).to_lowercase()), Some(code));
        }
        assert_eq!(canonical("bcdf ghjk"), Some("BCDFGHJK".to_owned()));
        for wrong in ["ABCD-EFGH", "BCDF-GHJ", "BCDF-GHJK0", "", &"B".repeat(40)] {
            assert_eq!(canonical(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn a_device_login_is_pending_then_allowed_once() {
        let logins = DeviceLogins::default();
        let (device, user) = logins.start("ci".to_owned(), at(0)).expect("room");
        assert_eq!(logins.poll(&device, at(0)), Poll::Pending);
        assert_eq!(logins.poll(&device, at(0)), Poll::SlowDown);
        assert_eq!(
            logins.find("s", &display(&user), at(1)),
            Ok("ci".to_owned())
        );
        let allowed = Decision::Allowed {
            owner: "alice".to_owned(),
            admin: false,
        };
        assert_eq!(
            logins.decide(&user, allowed.clone(), at(2)),
            Some("ci".to_owned())
        );
        assert_eq!(logins.decide(&user, allowed, at(2)), None, "decided once");
        assert!(matches!(logins.poll(&device, at(4)), Poll::Allowed { .. }));
        assert_eq!(logins.poll(&device, at(6)), Poll::Unknown, "spent");
        assert_eq!(logins.poll("garbage", at(6)), Poll::Unknown);
    }

    #[test]
    fn denied_and_expired_logins_end() {
        let logins = DeviceLogins::default();
        let (device, user) = logins.start("a".to_owned(), at(0)).expect("room");
        logins.decide(&user, Decision::Denied, at(1));
        assert_eq!(logins.poll(&device, at(2)), Poll::Denied);
        let (device, user) = logins.start("b".to_owned(), at(0)).expect("room");
        assert_eq!(logins.poll(&device, at(601)), Poll::Expired);
        assert_eq!(logins.find("s", &user, at(601)), Err(Entry::Unknown));
    }

    #[test]
    fn wrong_codes_are_limited_per_session_and_minute() {
        let logins = DeviceLogins::default();
        let (_, user) = logins.start("a".to_owned(), at(0)).expect("room");
        for _ in 0..MAX_WRONG_CODES {
            assert_eq!(logins.find("s", "BBBB-BBBB", at(1)), Err(Entry::Unknown));
        }
        assert_eq!(logins.find("s", &user, at(2)), Err(Entry::TooManyWrong));
        assert_eq!(logins.find("other", &user, at(2)), Ok("a".to_owned()));
        assert_eq!(logins.find("s", &user, at(62)), Ok("a".to_owned()));
    }

    #[test]
    fn pending_logins_are_bounded() {
        let logins = DeviceLogins::default();
        for _ in 0..MAX_PENDING_DEVICES {
            assert!(logins.start("x".to_owned(), at(0)).is_some());
        }
        assert!(logins.start("x".to_owned(), at(1)).is_none());
        assert!(
            logins.start("x".to_owned(), at(601)).is_some(),
            "expired ones make room"
        );
    }
}
