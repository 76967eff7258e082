//! Tickets: short-lived, single-use credentials for browser streams.
//!
//! A browser cannot set an `Authorization` header on an `EventSource` or a
//! `WebSocket`, and a bearer token in a URL ends up in logs, history and
//! proxies. So the page asks `POST /api/tickets` (with its header) for a
//! ticket naming one stream — the event stream, one lease's logs, or one
//! shell session's attach — and opens that stream with `?ticket=`. The
//! ticket then:
//!
//! - is spent by its first presentation (a second use is refused, and so is
//!   one on another route: it is spent all the same),
//! - expires [`DEFAULT_TICKET_TTL`] after it was minted (never more than
//!   [`MAX_TICKET_TTL`]), by the manager's [`Clock`],
//! - stands for the caller who minted it (owner and admin flag),
//! - is 256 random bits, kept only as its SHA-256 (a lookup by hash reveals
//!   nothing about the tickets held, and a dump of memory holds none).
//!
//! One caller holds at most [`MAX_TICKETS_PER_CALLER`] unspent, unexpired
//! tickets (429 `too_many_tickets` above). Expired tickets are dropped as
//! tickets are minted and redeemed. Tickets live in this process's memory:
//! behind several replicas, a browser's ticket request and its stream must
//! reach the same one (sticky routing).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use lease_core::{Clock, LeaseId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::debug;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::leases::find_lease;
use crate::wire::time_text;

/// How long a ticket stays valid by default.
pub const DEFAULT_TICKET_TTL: Duration = Duration::from_secs(30);
/// The longest a ticket may be made to last.
pub const MAX_TICKET_TTL: Duration = Duration::from_secs(60);
/// Most unspent, unexpired tickets one caller may hold.
pub const MAX_TICKETS_PER_CALLER: usize = 64;
/// What every ticket starts with (so one is recognisable in a log line).
const TICKET_PREFIX: &str = "tkt_";
/// Longer presented tickets are refused without hashing them.
const MAX_PRESENTED_LEN: usize = 128;
/// Length of a shell session id: 26 lowercase base32 characters.
const SESSION_ID_LEN: usize = 26;

/// The stream a ticket opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TicketRoute {
    /// `GET /api/events`.
    Events,
    /// `GET /ws/logs/{lease}`.
    Logs(LeaseId),
    /// `GET /api/containers/{lease}/sessions/{session}/attach`.
    Attach(LeaseId, String),
    /// `/leases/{lease}/ports/{port}/…` (and the preview host of that
    /// port): exchanged for a cookie opening that one port.
    Port(LeaseId, u16),
}

impl TicketRoute {
    /// Whether this ticket opens the stream at `path`.
    fn opens(&self, path: &StreamPath<'_>) -> bool {
        match (self, path) {
            (TicketRoute::Events, StreamPath::Events) => true,
            (TicketRoute::Logs(lease), StreamPath::Logs(wanted)) => lease.as_str() == *wanted,
            (TicketRoute::Attach(lease, session), StreamPath::Attach(wanted, wanted_session)) => {
                lease.as_str() == *wanted && session == wanted_session
            }
            (TicketRoute::Port(lease, port), StreamPath::Port(wanted, wanted_port)) => {
                lease.as_str() == *wanted && port == wanted_port
            }
            _ => false,
        }
    }

    /// The route's name in requests and logs.
    fn name(&self) -> &'static str {
        match self {
            TicketRoute::Events => "events",
            TicketRoute::Logs(_) => "logs",
            TicketRoute::Attach(..) => "attach",
            TicketRoute::Port(..) => "port",
        }
    }
}

/// A stream route as a request names it: ids as written in its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamPath<'a> {
    /// `/api/events`.
    Events,
    /// `/ws/logs/{lease}`.
    Logs(&'a str),
    /// `/api/containers/{lease}/sessions/{session}/attach`.
    Attach(&'a str, &'a str),
    /// A port of a lease (the proxy redeems these itself; never from
    /// [`StreamPath::of`]).
    Port(&'a str, u16),
}

impl StreamPath<'_> {
    /// The stream a request for `path` opens, if it is one that takes
    /// tickets (the ids are taken as they are written in the path).
    pub(crate) fn of(path: &str) -> Option<StreamPath<'_>> {
        if path == "/api/events" {
            return Some(StreamPath::Events);
        }
        if let Some(lease) = path.strip_prefix("/ws/logs/") {
            return (!lease.is_empty() && !lease.contains('/')).then_some(StreamPath::Logs(lease));
        }
        let rest = path.strip_prefix("/api/containers/")?;
        let mut parts = rest.split('/');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some(lease), Some("sessions"), Some(session), Some("attach"), None)
                if !lease.is_empty() && !session.is_empty() =>
            {
                Some(StreamPath::Attach(lease, session))
            }
            _ => None,
        }
    }
}

/// Why a presented ticket was refused (each answers 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TicketRefused {
    /// Never minted, already used, or expired.
    #[error(
        "the ticket is not valid (unknown, already used or expired): get a new one from POST /api/tickets"
    )]
    Invalid,
    /// Minted for another stream (it is spent now).
    #[error(
        "the ticket was made for another stream: get one for this stream from POST /api/tickets"
    )]
    WrongRoute,
}

/// Why a ticket could not be minted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the caller already holds {MAX_TICKETS_PER_CALLER} unused tickets; use or let some expire")]
pub(crate) struct TooManyTickets;

/// A newly minted ticket.
#[derive(Clone, Debug)]
pub(crate) struct Minted {
    /// The ticket itself (given to the caller once, never stored).
    pub(crate) ticket: String,
    /// When it stops being accepted.
    pub(crate) expires_at: DateTime<Utc>,
}

/// What a ticket stands for.
#[derive(Debug)]
struct Entry {
    caller: Caller,
    route: TicketRoute,
    expires_at: DateTime<Utc>,
}

/// The live tickets, by the SHA-256 of each.
#[derive(Debug, Default)]
struct Book {
    by_hash: HashMap<[u8; 32], Entry>,
    /// Unspent tickets per owner.
    per_owner: HashMap<String, usize>,
    /// Every ticket minted and not yet purged, oldest first (with one TTL
    /// for all, that is also soonest to expire first). Spent ones stay here
    /// until their expiry and are skipped then.
    by_age: VecDeque<([u8; 32], DateTime<Utc>)>,
}

impl Book {
    /// Forgets `hash`'s entry, if live, and the owner's count of it.
    fn take(&mut self, hash: &[u8; 32]) -> Option<Entry> {
        let entry = self.by_hash.remove(hash)?;
        if let Some(count) = self.per_owner.get_mut(&entry.caller.owner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_owner.remove(&entry.caller.owner);
            }
        }
        Some(entry)
    }

    /// Drops the tickets expired at `now`.
    fn purge(&mut self, now: DateTime<Utc>) {
        while let Some((hash, expires_at)) = self.by_age.front().copied() {
            if expires_at > now {
                break;
            }
            self.by_age.pop_front();
            self.take(&hash);
        }
    }
}

/// The tickets of one server process (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct Tickets {
    ttl: chrono::Duration,
    clock: Arc<dyn Clock>,
    book: Mutex<Book>,
}

fn hash(ticket: &str) -> [u8; 32] {
    Sha256::digest(ticket.as_bytes()).into()
}

impl Tickets {
    /// Tickets lasting `ttl` (at most [`MAX_TICKET_TTL`], at least 1 s),
    /// timed by `clock`.
    pub(crate) fn new(ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let ttl = ttl.clamp(Duration::from_secs(1), MAX_TICKET_TTL);
        Tickets {
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30)),
            clock,
            book: Mutex::new(Book::default()),
        }
    }

    /// How long a ticket lasts, in whole seconds.
    pub(crate) fn ttl_seconds(&self) -> i64 {
        self.ttl.num_seconds()
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A panic while holding the lock cannot leave the book half-changed
        // in a way that matters (counts are advisory): go on with it.
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new ticket for `caller` to open `route`.
    pub(crate) fn mint(
        &self,
        caller: &Caller,
        route: TicketRoute,
    ) -> Result<Minted, TooManyTickets> {
        let now = self.clock.now();
        let mut book = self.book();
        book.purge(now);
        let held = book.per_owner.get(&caller.owner).copied().unwrap_or(0);
        if held >= MAX_TICKETS_PER_CALLER {
            return Err(TooManyTickets);
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = format!("{TICKET_PREFIX}{}", hex::encode(bytes));
        let key = hash(&ticket);
        let expires_at = now + self.ttl;
        book.by_hash.insert(
            key,
            Entry {
                caller: caller.clone(),
                route,
                expires_at,
            },
        );
        *book.per_owner.entry(caller.owner.clone()).or_insert(0) += 1;
        book.by_age.push_back((key, expires_at));
        Ok(Minted { ticket, expires_at })
    }

    /// Spends `presented` on the stream at `path`: the caller it stands for,
    /// or why it is refused. A ticket presented on the wrong stream is spent
    /// too (it may have leaked).
    pub(crate) fn redeem(
        &self,
        presented: &str,
        path: &StreamPath<'_>,
    ) -> Result<Caller, TicketRefused> {
        if presented.len() > MAX_PRESENTED_LEN || !presented.starts_with(TICKET_PREFIX) {
            return Err(TicketRefused::Invalid);
        }
        let key = hash(presented);
        let now = self.clock.now();
        let entry = {
            let mut book = self.book();
            book.purge(now);
            book.take(&key)
        };
        let Some(entry) = entry.filter(|entry| entry.expires_at > now) else {
            return Err(TicketRefused::Invalid);
        };
        if !entry.route.opens(path) {
            debug!(
                owner = %entry.caller.owner,
                minted_for = entry.route.name(),
                "ticket presented on another stream: spent and refused"
            );
            return Err(TicketRefused::WrongRoute);
        }
        Ok(entry.caller)
    }
}

/// The body of `POST /api/tickets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TicketRequest {
    /// `events`, `logs` or `attach`.
    route: String,
    /// The lease (for `logs` and `attach`).
    #[serde(default)]
    lease_id: Option<String>,
    /// The shell session (for `attach`).
    #[serde(default)]
    session_id: Option<String>,
    /// The port, 1–65535 (for `port`).
    #[serde(default)]
    port: Option<i64>,
}

/// The answer of `POST /api/tickets`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TicketJson {
    /// Pass as `?ticket=` on the stream's URL; good for one use.
    ticket: String,
    /// When it stops being accepted (RFC 3339).
    expires_at: String,
    /// Seconds it is valid from now.
    expires_in_seconds: i64,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).with_field(field)
}

/// Whether `text` is a session id: 26 lowercase base32 characters.
fn is_session_id(text: &str) -> bool {
    text.len() == SESSION_ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

fn lease_field(id: Option<&str>) -> Result<LeaseId, ApiError> {
    let id = id.ok_or_else(|| invalid("leaseId", "leaseId: required for this route"))?;
    id.parse()
        .map_err(|_| invalid("leaseId", "leaseId: not a lease id (`container-…`)"))
}

fn session_field(id: Option<&str>) -> Result<String, ApiError> {
    let id = id.ok_or_else(|| invalid("sessionId", "sessionId: required for this route"))?;
    if is_session_id(id) {
        Ok(id.to_owned())
    } else {
        Err(invalid(
            "sessionId",
            "sessionId: not a session id (26 lowercase base32 characters)",
        ))
    }
}

fn port_field(port: Option<i64>) -> Result<u16, ApiError> {
    let port = port.ok_or_else(|| invalid("port", "port: required for this route"))?;
    u16::try_from(port)
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| invalid("port", "port: must be 1 to 65535"))
}

/// The route a well-formed request asks for (ids checked for shape only).
fn requested_route(request: &TicketRequest) -> Result<TicketRoute, ApiError> {
    let lease = request.lease_id.as_deref();
    let session = request.session_id.as_deref();
    let route = match request.route.as_str() {
        "events" => TicketRoute::Events,
        "logs" => TicketRoute::Logs(lease_field(lease)?),
        "attach" => TicketRoute::Attach(lease_field(lease)?, session_field(session)?),
        "port" => TicketRoute::Port(lease_field(lease)?, port_field(request.port)?),
        _ => {
            return Err(invalid(
                "route",
                "route: must be `events`, `logs`, `attach` or `port`",
            ));
        }
    };
    if !matches!(route, TicketRoute::Port(..)) && request.port.is_some() {
        return Err(invalid("port", "port: taken by the port route only"));
    }
    if matches!(route, TicketRoute::Events) && lease.is_some() {
        return Err(invalid("leaseId", "leaseId: not taken by the events route"));
    }
    if !matches!(route, TicketRoute::Attach(..)) && session.is_some() {
        return Err(invalid(
            "sessionId",
            "sessionId: taken by the attach route only",
        ));
    }
    Ok(route)
}

/// Mints a single-use ticket for one stream of the caller's: the event
/// stream, a lease's logs, or a shell session's attach. Pass it as
/// `?ticket=` on that stream's URL within its lifetime (30 s).
#[utoipa::path(
    post,
    path = "/api/tickets",
    tag = "leases",
    request_body(content = TicketRequest, description = "`{\"route\":\"events\"}`, `{\"route\":\"logs\",\"leaseId\":…}`, `{\"route\":\"attach\",\"leaseId\":…,\"sessionId\":…}` or `{\"route\":\"port\",\"leaseId\":…,\"port\":8080}`"),
    responses(
        (status = 201, description = "The ticket: single use, for this route (and lease, session) only", body = TicketJson),
        (status = 400, description = "Unknown route, missing or malformed id, not a JSON object (`invalid_request`, `invalid_json`)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such lease or session (or not the caller's)", body = crate::error::ErrorBody),
        (status = 413, description = "Body over the limit", body = crate::error::ErrorBody),
        (status = 429, description = "Too many unused tickets (`too_many_tickets`) or over the rate limit (`rate_limited`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn mint(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<TicketRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let ApiJson(request) = body.map_err(as_bad_request)?;
    let route = requested_route(&request)?;
    match &route {
        TicketRoute::Events => {}
        TicketRoute::Logs(lease) | TicketRoute::Port(lease, _) => {
            find_lease(&state.manager, &caller, lease.as_str()).await?;
        }
        TicketRoute::Attach(lease, session) => {
            let lease = find_lease(&state.manager, &caller, lease.as_str()).await?;
            if state.shell.get(&lease.id, session).is_none() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no session {session}"),
                ));
            }
        }
    }
    let minted = state.tickets.mint(&caller, route).map_err(|error| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_tickets",
            error.to_string(),
        )
    })?;
    let json = TicketJson {
        ticket: minted.ticket,
        expires_at: time_text(minted.expires_at),
        expires_in_seconds: state.tickets.ttl_seconds(),
    };
    Ok((StatusCode::CREATED, axum::Json(json)))
}

/// A body of the wrong shape is a 400 `invalid_request` here (as for every
/// shell-session route), naming the field when serde could.
fn as_bad_request(error: ApiError) -> ApiError {
    if error.detail.code != "validation_failed" {
        return error;
    }
    let mut converted = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        error.detail.message,
    );
    converted.detail.field = error.detail.field;
    converted
}

#[cfg(test)]
mod tests {
    use lease_core::ManualClock;

    use super::*;

    fn alice() -> Caller {
        Caller {
            owner: "alice".to_owned(),
            admin: false,
        }
    }

    fn tickets(clock: Arc<ManualClock>) -> Tickets {
        Tickets::new(DEFAULT_TICKET_TTL, clock)
    }

    #[test]
    fn paths_of_the_stream_routes() {
        assert_eq!(StreamPath::of("/api/events"), Some(StreamPath::Events));
        assert_eq!(
            StreamPath::of("/ws/logs/container-a"),
            Some(StreamPath::Logs("container-a"))
        );
        assert_eq!(
            StreamPath::of("/api/containers/c/sessions/s/attach"),
            Some(StreamPath::Attach("c", "s"))
        );
        for other in [
            "/api/containers",
            "/api/containers/c/status",
            "/api/containers/c/sessions/s",
            "/api/containers/c/sessions/s/attach/x",
            "/api/containers//sessions/s/attach",
            "/ws/logs/",
            "/ws/logs/a/b",
            "/api/events/x",
        ] {
            assert_eq!(StreamPath::of(other), None, "{other}");
        }
    }

    #[test]
    fn a_ticket_is_spent_by_its_first_use() {
        let book = tickets(Arc::new(ManualClock::default()));
        let minted = book.mint(&alice(), TicketRoute::Events).unwrap();
        assert!(minted.ticket.len() >= TICKET_PREFIX.len() + 32);
        assert_eq!(
            book.redeem(&minted.ticket, &StreamPath::Events),
            Ok(alice())
        );
        assert_eq!(
            book.redeem(&minted.ticket, &StreamPath::Events),
            Err(TicketRefused::Invalid)
        );
    }

    #[test]
    fn a_ticket_expires_by_the_clock() {
        let clock = Arc::new(ManualClock::default());
        let book = tickets(clock.clone());
        let late = book.mint(&alice(), TicketRoute::Events).unwrap();
        let on_time = book.mint(&alice(), TicketRoute::Events).unwrap();
        clock.advance(chrono::Duration::seconds(29));
        assert_eq!(
            book.redeem(&on_time.ticket, &StreamPath::Events),
            Ok(alice())
        );
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(
            book.redeem(&late.ticket, &StreamPath::Events),
            Err(TicketRefused::Invalid)
        );
        assert!(book.book().by_hash.is_empty());
        assert!(book.book().by_age.is_empty());
    }

    #[test]
    fn the_lifetime_is_capped() {
        let book = Tickets::new(Duration::from_secs(3600), Arc::new(ManualClock::default()));
        assert_eq!(book.ttl_seconds(), 60);
    }

    #[test]
    fn a_ticket_opens_only_its_route_and_is_spent_by_a_wrong_one() {
        let book = tickets(Arc::new(ManualClock::default()));
        let lease: LeaseId = "container-aaaaaaaaaaaaaaaaaaaa".parse().unwrap();
        let minted = book
            .mint(&alice(), TicketRoute::Logs(lease.clone()))
            .unwrap();
        assert_eq!(
            book.redeem(
                &minted.ticket,
                &StreamPath::Logs("container-bbbbbbbbbbbbbbbbbbbb")
            ),
            Err(TicketRefused::WrongRoute)
        );
        assert_eq!(
            book.redeem(&minted.ticket, &StreamPath::Logs(lease.as_str())),
            Err(TicketRefused::Invalid)
        );
        let session = "a".repeat(SESSION_ID_LEN);
        let minted = book
            .mint(
                &alice(),
                TicketRoute::Attach(lease.clone(), session.clone()),
            )
            .unwrap();
        assert_eq!(
            book.redeem(
                &minted.ticket,
                &StreamPath::Attach(lease.as_str(), &"b".repeat(26))
            ),
            Err(TicketRefused::WrongRoute)
        );
        let minted = book
            .mint(
                &alice(),
                TicketRoute::Attach(lease.clone(), session.clone()),
            )
            .unwrap();
        assert_eq!(
            book.redeem(
                &minted.ticket,
                &StreamPath::Attach(lease.as_str(), &session)
            ),
            Ok(alice())
        );
    }

    #[test]
    fn a_caller_holds_at_most_the_cap_until_some_are_spent_or_expire() {
        let clock = Arc::new(ManualClock::default());
        let book = tickets(clock.clone());
        let mut minted = Vec::new();
        for _ in 0..MAX_TICKETS_PER_CALLER {
            minted.push(book.mint(&alice(), TicketRoute::Events).unwrap());
        }
        assert_eq!(
            book.mint(&alice(), TicketRoute::Events).err(),
            Some(TooManyTickets)
        );
        let bob = Caller {
            owner: "bob".to_owned(),
            admin: false,
        };
        assert!(book.mint(&bob, TicketRoute::Events).is_ok());
        book.redeem(&minted[0].ticket, &StreamPath::Events).unwrap();
        assert!(book.mint(&alice(), TicketRoute::Events).is_ok());
        clock.advance(chrono::Duration::seconds(31));
        for _ in 0..MAX_TICKETS_PER_CALLER {
            book.mint(&alice(), TicketRoute::Events).unwrap();
        }
    }

    #[test]
    fn foreign_texts_are_refused() {
        let book = tickets(Arc::new(ManualClock::default()));
        for presented in ["", "tkt_", "tkt_00", "clt_abc", &"tkt_a".repeat(100)] {
            assert_eq!(
                book.redeem(presented, &StreamPath::Events),
                Err(TicketRefused::Invalid)
            );
        }
    }

    #[test]
    fn session_ids_are_checked_for_shape() {
        assert!(is_session_id("abcdefghijklmnopqrstuvwxyz"));
        assert!(is_session_id("234567abcdefghijklmnopqrst"));
        assert!(!is_session_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
        assert!(!is_session_id("0bcdefghijklmnopqrstuvwxyz"));
        assert!(!is_session_id("abc"));
    }
}
