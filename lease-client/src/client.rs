//! [`Client`]: the REST calls, one method per route.

use std::time::Duration;

use lease_http::wire::{
    CatalogJson, ContainersJson, ExtendBody, HistoryJson, LeaseJson, ProvisionBody, UsageJson,
};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::events::EventStream;
use crate::logs::LogStream;
use crate::session::{SessionInfo, SessionJson, SessionRequest, SessionsJson};

/// How long a REST call may take, connection included, unless
/// [`Client::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest history page the server gives.
const HISTORY_PAGE: u32 = 1000;

/// A lease-server's HTTP API, with or without a bearer token. Cheap to
/// clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// For long-lived responses (the event stream): no overall time limit.
    pub(crate) streams: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Client {
    /// A client of the server at `base` (`http://host:8080`,
    /// `https://leases.example/prefix/`), sending `token` as
    /// `Authorization: Bearer` when given. Makes no request.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_timeout(base, token, DEFAULT_TIMEOUT)
    }

    /// [`Client::new`] with another time limit per REST call (streams
    /// have none).
    pub fn with_timeout(
        base: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let base = parse_base(base)?;
        if let Some(token) = &token
            && HeaderValue::from_str(&format!("Bearer {token}")).is_err()
        {
            return Err(ClientError::InvalidUrl {
                url: base.to_string(),
                reason: "the token holds characters an HTTP header cannot carry".to_owned(),
            });
        }
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .user_agent(concat!("lease-client/", env!("CARGO_PKG_VERSION")))
        };
        let failed = |source| ClientError::Transport {
            url: base.to_string(),
            source,
        };
        let http = builder().timeout(timeout).build().map_err(failed)?;
        let streams = builder().build().map_err(failed)?;
        Ok(Client {
            http,
            streams,
            base,
            token,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The URL of `segments` under the base, each segment escaped (an id
    /// cannot smuggle a `/` or a `?` into the path).
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `Authorization: Bearer …`, if there is a token.
    pub(crate) fn authorization(&self) -> Option<HeaderValue> {
        let token = self.token.as_ref()?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    pub(crate) async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(value) = self.authorization() {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |source| ClientError::Transport {
            url: without_query(&url),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let bytes = response.bytes().await.map_err(transport)?;
        tracing::debug!(method = %method, url = %without_query(&url), status = status.as_u16(), "lease-server call");
        if status.is_success() {
            Ok((status, bytes.to_vec()))
        } else {
            Err(ClientError::from_answer(
                status.as_u16(),
                &bytes,
                retry_after,
            ))
        }
    }

    pub(crate) async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (_, bytes) = self.call(method, url, body).await?;
        decode(&bytes)
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        self.json::<T, ()>(Method::GET, url, None).await
    }

    /// `POST /api/provision`: rents `image_type` for `minutes` (the
    /// offering's default when `None`). The lease comes back `pending`.
    pub async fn provision(
        &self,
        image_type: &str,
        minutes: Option<u32>,
    ) -> Result<LeaseJson, ClientError> {
        let body = ProvisionBody {
            image_type: image_type.to_owned(),
            duration_minutes: minutes.map(i64::from),
        };
        self.json(Method::POST, self.url(&["api", "provision"]), Some(&body))
            .await
    }

    /// `GET /api/containers`: the caller's active leases (an admin's:
    /// everyone's, or `owner`'s).
    pub async fn list(&self, owner: Option<&str>) -> Result<Vec<LeaseJson>, ClientError> {
        let mut url = self.url(&["api", "containers"]);
        if let Some(owner) = owner {
            url.query_pairs_mut().append_pair("owner", owner);
        }
        let answer: ContainersJson = self.get(url).await?;
        Ok(answer.containers)
    }

    /// `GET /api/containers/{id}/status`: one lease, active or ended.
    pub async fn status(&self, id: &str) -> Result<LeaseJson, ClientError> {
        self.get(self.url(&["api", "containers", id, "status"]))
            .await
    }

    /// `POST /api/containers/{id}/extend`: books `minutes` more.
    pub async fn extend(&self, id: &str, minutes: u32) -> Result<LeaseJson, ClientError> {
        let body = ExtendBody {
            minutes: i64::from(minutes),
        };
        self.json(
            Method::POST,
            self.url(&["api", "containers", id, "extend"]),
            Some(&body),
        )
        .await
    }

    /// `DELETE /api/containers/{id}`: ends the lease now; the server
    /// removes its container in the background (status `deleting`, then
    /// `deleted`).
    pub async fn delete(&self, id: &str) -> Result<LeaseJson, ClientError> {
        self.json::<_, ()>(Method::DELETE, self.url(&["api", "containers", id]), None)
            .await
    }

    /// `GET /api/catalog`: the offerings and their prices.
    pub async fn catalog(&self) -> Result<CatalogJson, ClientError> {
        self.get(self.url(&["api", "catalog"])).await
    }

    /// `GET /api/usage`: the caller's spend (an admin's: `owner`'s).
    pub async fn usage(&self, owner: Option<&str>) -> Result<UsageJson, ClientError> {
        let mut url = self.url(&["api", "usage"]);
        if let Some(owner) = owner {
            url.query_pairs_mut().append_pair("owner", owner);
        }
        self.get(url).await
    }

    /// `GET /api/history`: one page of ended leases, newest first.
    pub async fn history_page(
        &self,
        owner: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<HistoryJson, ClientError> {
        let mut url = self.url(&["api", "history"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(owner) = owner {
                query.append_pair("owner", owner);
            }
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        self.get(url).await
    }

    /// Every ended lease still in history (all pages), newest first.
    pub async fn history(&self, owner: Option<&str>) -> Result<Vec<LeaseJson>, ClientError> {
        let mut leases = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .history_page(owner, Some(HISTORY_PAGE), cursor.as_deref())
                .await?;
            leases.extend(page.leases);
            match page.next_cursor {
                // A cursor that does not move would loop forever.
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => return Ok(leases),
            }
        }
    }

    /// `GET /ws/logs/{id}?tail=N&follow=B`: the container's last `tail`
    /// lines, then (with `follow`) new ones as they come, until the
    /// container stops or the lease ends; without `follow` the stream ends
    /// after the lines written so far.
    pub async fn logs(
        &self,
        id: &str,
        tail: Option<u32>,
        follow: bool,
    ) -> Result<LogStream, ClientError> {
        let mut url = self.url(&["ws", "logs", id]);
        if let Some(tail) = tail {
            url.query_pairs_mut().append_pair("tail", &tail.to_string());
        }
        if !follow {
            url.query_pairs_mut().append_pair("follow", "false");
        }
        LogStream::open(self, url).await
    }

    /// `GET /api/events`: the caller's lease events (an admin's: everyone's)
    /// from now on, as they happen.
    pub async fn events(&self) -> Result<EventStream, ClientError> {
        let url = self.url(&["api", "events"]);
        let mut request = self
            .streams
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(value) = self.authorization() {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: without_query(&url),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(ClientError::from_answer(status.as_u16(), &bytes, None));
        }
        Ok(EventStream::new(response))
    }

    /// `POST /api/containers/{id}/sessions`: starts a process in the
    /// lease's container (the login shell when `request.command` is `None`).
    pub async fn create_session(
        &self,
        id: &str,
        request: &SessionRequest,
    ) -> Result<SessionJson, ClientError> {
        self.json(
            Method::POST,
            self.url(&["api", "containers", id, "sessions"]),
            Some(request),
        )
        .await
    }

    /// `GET /api/containers/{id}/sessions`: the lease's sessions.
    pub async fn sessions(&self, id: &str) -> Result<Vec<SessionInfo>, ClientError> {
        let answer: SessionsJson = self
            .get(self.url(&["api", "containers", id, "sessions"]))
            .await?;
        Ok(answer.sessions)
    }

    /// `DELETE /api/containers/{id}/sessions/{sid}`: kills the session's processes.
    pub async fn delete_session(&self, id: &str, session: &str) -> Result<(), ClientError> {
        self.call::<()>(
            Method::DELETE,
            self.url(&["api", "containers", id, "sessions", session]),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `GET /api/containers/{id}/sessions/{sid}/attach?offset=N`: the
    /// session's output from byte `offset` on, and a sender for its input.
    pub async fn attach(
        &self,
        id: &str,
        session: &str,
        offset: u64,
    ) -> Result<crate::session::Attachment, ClientError> {
        let mut url = self.url(&["api", "containers", id, "sessions", session, "attach"]);
        url.query_pairs_mut()
            .append_pair("offset", &offset.to_string());
        crate::session::Attachment::open(self, url).await
    }

    /// `GET /api/containers/{id}/ports/{port}/tcp`: a TCP connection to
    /// `port` of the lease's container, over a WebSocket. Nothing listening
    /// there is a [`ClientError::Api`] 502 `upstream_unreachable`.
    pub async fn forward(
        &self,
        id: &str,
        port: u16,
    ) -> Result<crate::forward::Tunnel, ClientError> {
        let url = self.url(&["api", "containers", id, "ports", &port.to_string(), "tcp"]);
        crate::forward::Tunnel::open(self, url).await
    }
}

/// Checks and normalises a base URL: `http` or `https`, no query or
/// fragment, a path that ends with `/`.
fn parse_base(text: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: text.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(text.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a server URL takes no query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "put the token in LEASE_TOKEN or `lease login`, not in the URL",
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A URL without its query, for messages and logs.
pub(crate) fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|source| ClientError::Decode {
        what: "a JSON answer",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_the_base() {
        let client = Client::new("http://h:1", None).expect("valid");
        assert_eq!(client.base().as_str(), "http://h:1/");
        let client = Client::new("https://h/prefix", None).expect("valid");
        assert_eq!(
            client.url(&["api", "containers"]).as_str(),
            "https://h/prefix/api/containers"
        );
    }

    #[test]
    fn escapes_ids_in_paths() {
        let client = Client::new("http://h:1/", None).expect("valid");
        let url = client.url(&["api", "containers", "../x?y=1#z", "status"]);
        assert_eq!(
            url.as_str(),
            "http://h:1/api/containers/..%2Fx%3Fy=1%23z/status"
        );
    }

    #[test]
    fn refuses_odd_bases() {
        for bad in [
            "",
            "h:1",
            "ftp://h/",
            "http://h/?q=1",
            "http://u:p@h/",
            "file:///x",
        ] {
            assert!(Client::new(bad, None).is_err(), "{bad}");
        }
        assert!(Client::new("http://h/", Some("a\nb".into())).is_err());
    }

    #[test]
    fn hides_the_token_in_debug() {
        let client = Client::new("http://h/", Some("clt_secret".into())).expect("valid");
        assert!(!format!("{client:?}").contains("secret"));
    }
}
