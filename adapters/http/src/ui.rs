//! The portal web page: plain HTML, CSS and JavaScript modules from `ui/`,
//! embedded in the binary and served at `/` and `/ui/…`.
//!
//! These routes are open: the page must load without a token so that it can
//! ask for one. Everything it shows comes from the (authenticated) API.
//!
//! Caching: asset URLs carry a version (a hash of all the files), so
//! `/ui/<version>/app.js` is cached for a year as immutable; the page itself
//! (`/`) and unversioned asset URLs are revalidated (`no-cache` + `ETag`,
//! answered 304 when unchanged). A strict Content-Security-Policy allows
//! only this server's own scripts, styles, images and connections: no inline
//! script or style, no other origin, no framing.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, echo};

/// The Content-Security-Policy of every UI response.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const NO_CACHE: &str = "no-cache";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const HTML: &str = "text/html; charset=utf-8";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page loads (a test checks that `ui/` has no other).
const ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("boot.js", JS),
    asset!("api.js", JS),
    asset!("auth.js", JS),
    asset!("charts.js", JS),
    asset!("leases.js", JS),
    asset!("live.js", JS),
    asset!("logs.js", JS),
    asset!("money.js", JS),
    asset!("ops.js", JS),
    asset!("ports.js", JS),
    asset!("shell.js", JS),
    asset!("stats.js", JS),
    asset!("files.js", JS),
    asset!("tokens.js", JS),
    asset!("terminal/keys.js", JS),
    asset!("terminal/parser.js", JS),
    asset!("terminal/screen.js", JS),
    asset!("terminal/sgr.js", JS),
    asset!("terminal/terminal.js", JS),
    asset!("terminal/view.js", JS),
    asset!("terminal/width.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The page, with `{{version}}` standing for the assets' version.
const INDEX_TEMPLATE: &str = include_str!("../ui/index.html");

/// What is computed once: the version, the page, and each file's ETag.
struct Built {
    version: String,
    index: String,
    index_etag: String,
    etags: Vec<String>,
}

fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(&hasher.finalize()[..8])
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut parts: Vec<&[u8]> = vec![INDEX_TEMPLATE.as_bytes()];
        parts.extend(ASSETS.iter().flat_map(|a| [a.name.as_bytes(), a.body]));
        let version = digest(&parts);
        let index = INDEX_TEMPLATE.replace("{{version}}", &version);
        let index_etag = format!("\"{}\"", digest(&[index.as_bytes()]));
        let etags = ASSETS
            .iter()
            .map(|asset| format!("\"{}\"", digest(&[asset.body])))
            .collect();
        Built {
            version,
            index,
            index_etag,
            etags,
        }
    })
}

/// The UI's routes: `GET /`, `GET /index.html` and `GET /ui/{version}/{file}`
/// (or `/ui/{file}`). Open: no token is needed to load the page.
pub(crate) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/ui/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    let built = built();
    respond(
        &headers,
        HTML,
        Body::from(built.index.as_str()),
        &built.index_etag,
        NO_CACHE,
    )
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let built = built();
    // `/ui/<file>` (a file may be in a folder: `terminal/view.js`) or
    // `/ui/<version>/<file>`.
    let unversioned = ASSETS.iter().any(|asset| asset.name == path);
    let (version, name) = match path.split_once('/') {
        Some((version, name)) if !unversioned => (Some(version), name),
        _ => (None, path.as_str()),
    };
    let Some(position) = ASSETS.iter().position(|asset| asset.name == name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no UI file {}", echo(&path)),
        )
        .into_response();
    };
    let asset = &ASSETS[position];
    // Only the current version's URL may be cached for good: an old page
    // asking for an old version gets today's file, revalidated.
    let cache = if version == Some(built.version.as_str()) {
        IMMUTABLE
    } else {
        NO_CACHE
    };
    respond(
        &headers,
        asset.content_type,
        Body::from(asset.body),
        &built.etags[position],
        cache,
    )
}

/// Whether an `If-None-Match` header matches `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

fn respond(
    request: &HeaderMap,
    content_type: &'static str,
    body: Body,
    etag: &str,
    cache: &'static str,
) -> Response {
    let mut response = if not_modified(request, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(ETAG, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::Request;
    use http_body_util::BodyExt;
    use lease_core::LeaseManager;
    use lease_core::testing::fake_runtime::FakeRuntime;
    use lease_store_memory::MemoryStore;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::{Auth, TokenFile};
    use crate::{ApiConfig, router};

    async fn get_path(app: &Router, path: &str, headers: &[(&str, &str)]) -> (Response, String) {
        let mut request = Request::get(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty()).expect("request");
        let response = app.clone().oneshot(request).await.expect("answer");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (Response::from_parts(parts, Body::empty()), text)
    }

    fn header(response: &Response, name: HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The full API router with tokens on and no token known.
    fn token_router() -> Router {
        let manager = LeaseManager::builder(
            Arc::new(MemoryStore::new()),
            Arc::new(FakeRuntime::default()),
        )
        .build()
        .expect("manager");
        router(
            manager,
            ApiConfig::default().auth(Auth::tokens(TokenFile::default())),
        )
    }

    #[tokio::test]
    async fn the_page_loads_without_a_token_and_the_api_still_needs_one() {
        let app = token_router();
        let (page, html) = get_path(&app, "/", &[]).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(header(&page, CONTENT_TYPE), HTML);
        assert_eq!(header(&page, CONTENT_SECURITY_POLICY), CSP);
        assert_eq!(header(&page, CACHE_CONTROL), NO_CACHE);
        assert_eq!(header(&page, X_CONTENT_TYPE_OPTIONS), "nosniff");
        let version = &built().version;
        assert!(
            html.contains(&format!("src=\"/ui/{version}/app.js\"")),
            "{html}"
        );
        assert!(!html.contains("{{"), "unreplaced placeholder");

        let (api, _) = get_path(&app, "/api/catalog", &[]).await;
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED);

        let (script, body) = get_path(&app, &format!("/ui/{version}/app.js"), &[]).await;
        assert_eq!(script.status(), StatusCode::OK);
        assert_eq!(header(&script, CONTENT_TYPE), JS);
        assert_eq!(header(&script, CACHE_CONTROL), IMMUTABLE);
        assert!(body.contains("import"));
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_unknown_files_are_404() {
        let app = routes::<()>();
        for asset in ASSETS {
            let (response, body) = get_path(&app, &format!("/ui/{}", asset.name), &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.name);
            assert_eq!(header(&response, CONTENT_TYPE), asset.content_type);
            // Unversioned and old-version URLs are revalidated, not kept.
            assert_eq!(header(&response, CACHE_CONTROL), NO_CACHE);
            assert_eq!(header(&response, CONTENT_SECURITY_POLICY), CSP);
            assert_eq!(body.as_bytes(), asset.body);
            let (old, _) = get_path(&app, &format!("/ui/0123/{}", asset.name), &[]).await;
            assert_eq!(header(&old, CACHE_CONTROL), NO_CACHE);
        }
        for path in ["/ui/nope.js", "/ui/../Cargo.toml", "/ui/x/y/app.js", "/ui/"] {
            let (response, body) = get_path(&app, path, &[]).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            if response.status() == StatusCode::NOT_FOUND && path != "/ui/" {
                assert!(body.contains("\"not_found\""), "{path}: {body}");
            }
        }
    }

    #[tokio::test]
    async fn unchanged_files_answer_304() {
        let app = routes::<()>();
        let (page, _) = get_path(&app, "/", &[]).await;
        let etag = header(&page, ETAG).to_owned();
        assert!(etag.starts_with('"'));
        let (again, body) = get_path(&app, "/", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(header(&again, ETAG), etag);
        let (changed, _) = get_path(&app, "/", &[("if-none-match", "\"other\"")]).await;
        assert_eq!(changed.status(), StatusCode::OK);
    }

    /// The files under `dir` (recursively), as paths relative to `ui/`.
    fn files_under(dir: &std::path::Path, prefix: &str) -> Vec<String> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).expect("ui/").filter_map(Result::ok) {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.path().is_dir() {
                files.extend(files_under(&entry.path(), &format!("{name}/")));
            } else {
                files.push(name);
            }
        }
        files
    }

    /// The CSP forbids inline code, so the page must have none; and every
    /// file in `ui/` must be embedded, every module import must resolve.
    #[test]
    fn the_files_fit_the_policy_and_are_all_embedded() {
        let html = INDEX_TEMPLATE;
        for (at, _) in html.match_indices("<script") {
            let tag = &html[at..at + html[at..].find('>').unwrap_or(0)];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        assert!(!html.contains("<style"), "inline style element");
        assert!(!html.contains(" style="), "inline style attribute");
        let handler = html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!handler, "inline event handler attribute");

        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut files = files_under(&dir, "");
        files.retain(|name| name != "index.html" && name != "README.md");
        files.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        embedded.sort();
        assert_eq!(files, embedded, "ui/ and ASSETS differ");

        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).expect("utf-8");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let relative = line
                    .split(['\'', '"'])
                    .nth(1)
                    .and_then(|t| t.strip_prefix("./"))
                    .unwrap_or_else(|| panic!("{}: import not relative: {line}", asset.name));
                // Relative to the importing module's folder.
                let target = match asset.name.rsplit_once('/') {
                    Some((folder, _)) => format!("{folder}/{relative}"),
                    None => relative.to_owned(),
                };
                assert!(
                    ASSETS.iter().any(|a| a.name == target),
                    "{}: imports missing {target}",
                    asset.name
                );
            }
        }
    }
}
