//! The few HTML pages the sign-in routes answer (failures, the CLI's
//! confirm pages): small, self-contained, every piece of input escaped,
//! framed by no one.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The pages' CSP: no scripts, inline style only, forms to ourselves and
/// (the CLI login's allow step redirects there) the loopback address.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
                        form-action 'self' http://127.0.0.1:*; frame-ancestors 'none'; base-uri 'none'";

/// `text` with `& < > " '` escaped for HTML text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page with `title` and `body` (HTML, already escaped by the caller).
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · ContainerLease</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         button{{font:inherit;padding:.4rem 1rem;margin-right:.5rem}}code{{background:#eee;padding:0 .2rem}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 302 to `location` (not cached).
pub(crate) fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page with `title` and one paragraph of plain `text`.
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, title, &format!("<p>{}</p>", escape(text)))
}

/// A form POSTing `hidden` fields to `action`, with Allow and Deny buttons
/// (`decision=allow|deny`).
pub(crate) fn decision_form(action: &str, hidden: &[(&str, String)]) -> String {
    let mut form = format!("<form method=\"post\" action=\"{}\">", escape(action));
    for (name, value) in hidden {
        form.push_str(&hidden_field(name, value));
    }
    form.push_str(
        "<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
    );
    form
}

/// `<input type="hidden">`, escaped.
pub(crate) fn hidden_field(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

/// "sign-in failed: {reason}" with a link to try again.
pub(crate) fn sign_in_failed(status: StatusCode, reason: &str) -> Response {
    page(
        status,
        "Sign-in failed",
        &format!(
            "<p>sign-in failed: {}</p><p><a href=\"/auth/login\">Try again</a> · <a href=\"/\">Home</a></p>",
            escape(reason)
        ),
    )
}

/// 403 "{who} is not allowed to use this server".
pub(crate) fn not_allowed(message: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!(
            "<p>{}</p><p>Ask the server's operator for access.</p>",
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
