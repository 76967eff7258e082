//! A table of bad requests: each answers a 4xx JSON error and none creates
//! a container or a lease.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use harness::Harness;

struct Case {
    name: &'static str,
    method: Method,
    uri: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn json_case(name: &'static str, body: &str, status: StatusCode, code: &'static str) -> Case {
    Case {
        name,
        method: Method::POST,
        uri: "/api/provision".to_owned(),
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status,
        code,
    }
}

fn raw(
    name: &'static str,
    method: Method,
    uri: &str,
    content_type: Option<&'static str>,
    body: &[u8],
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        uri: uri.to_owned(),
        content_type,
        body: body.to_vec(),
        status,
        code,
    }
}

fn cases() -> Vec<Case> {
    const BAD: StatusCode = StatusCode::BAD_REQUEST;
    const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
    let valid = br#"{"imageType":"alpine","durationMinutes":2}"#;
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let long_key = format!(r#"{{"imageType":"{}"}}"#, "a".repeat(10_000));
    let huge_padding = format!(
        r#"{{"imageType":"alpine","durationMinutes":2,"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let huge_key = format!(r#"{{"imageType":"{}"}}"#, "y".repeat(100 * 1024));
    let extend = "/api/containers/container-aaaaaaaaaaaaaaaaaaaa/extend";
    vec![
        // Content type.
        raw(
            "no content type",
            Method::POST,
            "/api/provision",
            None,
            valid,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        raw(
            "text/plain",
            Method::POST,
            "/api/provision",
            Some("text/plain"),
            valid,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        raw(
            "form encoded",
            Method::POST,
            "/api/provision",
            Some("application/x-www-form-urlencoded"),
            b"imageType=alpine&durationMinutes=2",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        raw(
            "multipart",
            Method::POST,
            "/api/provision",
            Some("multipart/form-data; boundary=x"),
            b"--x--",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        // Malformed JSON.
        json_case("truncated json", r#"{"imageType":"#, BAD, "invalid_json"),
        json_case("empty body", "", BAD, "invalid_json"),
        json_case(
            "single quotes",
            "{'imageType':'alpine'}",
            BAD,
            "invalid_json",
        ),
        json_case(
            "trailing garbage",
            r#"{"imageType":"alpine"} rm -rf /"#,
            BAD,
            "invalid_json",
        ),
        json_case(
            "trailing comma",
            r#"{"imageType":"alpine",}"#,
            BAD,
            "invalid_json",
        ),
        json_case("deep nesting", &deep, UNPROCESSABLE, "validation_failed"),
        raw(
            "invalid utf-8",
            Method::POST,
            "/api/provision",
            Some("application/json"),
            b"{\"imageType\":\"\xff\xfe\"}",
            BAD,
            "invalid_json",
        ),
        // Wrong shapes and types.
        json_case("null", "null", UNPROCESSABLE, "validation_failed"),
        json_case(
            "array",
            r#"["alpine",2]"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "bare string",
            r#""alpine""#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case("empty object", "{}", UNPROCESSABLE, "validation_failed"),
        json_case(
            "imageType null",
            r#"{"imageType":null}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "imageType number",
            r#"{"imageType":42}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "nested junk",
            r#"{"imageType":{"$ne":null},"durationMinutes":[1,{"a":[]}]}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "unknown field",
            r#"{"imageType":"alpine","privileged":true}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "image field",
            r#"{"imageType":"alpine","image":"evil:latest"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "duplicate field",
            r#"{"imageType":"alpine","imageType":"ubuntu"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        // Durations.
        json_case(
            "duration as string",
            r#"{"imageType":"alpine","durationMinutes":"2"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "fractional duration",
            r#"{"imageType":"alpine","durationMinutes":2.5}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "zero duration",
            r#"{"imageType":"alpine","durationMinutes":0}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "negative duration",
            r#"{"imageType":"alpine","durationMinutes":-5}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "duration past max",
            r#"{"imageType":"alpine","durationMinutes":481}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "u32 overflow",
            r#"{"imageType":"alpine","durationMinutes":4294967297}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "huge duration",
            r#"{"imageType":"alpine","durationMinutes":99999999999999999999999}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "exponent duration",
            r#"{"imageType":"alpine","durationMinutes":1e12}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "boolean duration",
            r#"{"imageType":"alpine","durationMinutes":true}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        // Image types.
        json_case(
            "unknown image",
            r#"{"imageType":"windows"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "uppercase image",
            r#"{"imageType":"ALPINE"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "empty image",
            r#"{"imageType":""}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "shell injection",
            r#"{"imageType":"alpine; docker run --privileged evil"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "image reference",
            r#"{"imageType":"docker.io/library/alpine:latest"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "path traversal image",
            r#"{"imageType":"../../etc/passwd"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "script tag",
            r#"{"imageType":"<script>alert(1)</script>"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "sql injection",
            r#"{"imageType":"alpine' OR '1'='1"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "nul byte",
            r#"{"imageType":"alpine\u0000"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        json_case(
            "10 KB image type",
            &long_key,
            UNPROCESSABLE,
            "validation_failed",
        ),
        // Size.
        json_case(
            "body over 64 KiB",
            &huge_padding,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        json_case(
            "image type over 64 KiB",
            &huge_key,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        // Methods and routes.
        raw(
            "GET provision",
            Method::GET,
            "/api/provision",
            None,
            b"",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        raw(
            "PUT containers",
            Method::PUT,
            "/api/containers",
            Some("application/json"),
            valid,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        raw(
            "PATCH a lease",
            Method::PATCH,
            "/api/containers/container-aaaaaaaaaaaaaaaaaaaa",
            Some("application/json"),
            b"{}",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        raw(
            "unknown api route",
            Method::POST,
            "/api/provision/now",
            Some("application/json"),
            valid,
            NOT_FOUND,
            "not_found",
        ),
        // Ids and path tricks.
        raw(
            "traversal id",
            Method::GET,
            "/api/containers/..%2F..%2Fetc%2Fpasswd/status",
            None,
            b"",
            NOT_FOUND,
            "not_found",
        ),
        raw(
            "dot-dot id",
            Method::DELETE,
            "/api/containers/..",
            None,
            b"",
            NOT_FOUND,
            "not_found",
        ),
        raw(
            "short id",
            Method::GET,
            "/api/containers/container-short/status",
            None,
            b"",
            NOT_FOUND,
            "not_found",
        ),
        raw(
            "nul id",
            Method::GET,
            "/api/containers/%00/status",
            None,
            b"",
            NOT_FOUND,
            "not_found",
        ),
        raw(
            "docker id instead",
            Method::DELETE,
            "/api/containers/fake000000000001",
            None,
            b"",
            NOT_FOUND,
            "not_found",
        ),
        raw(
            "glob id",
            Method::DELETE,
            "/api/containers/container-*",
            None,
            b"",
            NOT_FOUND,
            "not_found",
        ),
        raw(
            "long id",
            Method::GET,
            &format!("/api/containers/container-{}/status", "a".repeat(5000)),
            None,
            b"",
            NOT_FOUND,
            "not_found",
        ),
        raw(
            "unicode id",
            Method::GET,
            "/api/containers/container-%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4%C3%A4/status",
            None,
            b"",
            NOT_FOUND,
            "not_found",
        ),
        raw(
            "bad percent escape",
            Method::GET,
            "/api/containers/%ff%fe/status",
            None,
            b"",
            BAD,
            "bad_request",
        ),
        // Extend bodies.
        raw(
            "extend without body",
            Method::POST,
            extend,
            Some("application/json"),
            b"",
            BAD,
            "invalid_json",
        ),
        raw(
            "extend minutes string",
            Method::POST,
            extend,
            Some("application/json"),
            br#"{"minutes":"30"}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        raw(
            "extend zero",
            Method::POST,
            extend,
            Some("application/json"),
            br#"{"minutes":0}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        raw(
            "extend negative",
            Method::POST,
            extend,
            Some("application/json"),
            br#"{"minutes":-30}"#,
            UNPROCESSABLE,
            "validation_failed",
        ),
        // Queries.
        raw(
            "unknown list filter",
            Method::GET,
            "/api/containers?foo=1",
            None,
            b"",
            BAD,
            "bad_request",
        ),
        raw(
            "bad status filter",
            Method::GET,
            "/api/containers?status=running;drop",
            None,
            b"",
            BAD,
            "bad_request",
        ),
        raw(
            "history limit text",
            Method::GET,
            "/api/history?limit=abc",
            None,
            b"",
            BAD,
            "bad_request",
        ),
        raw(
            "history limit huge",
            Method::GET,
            "/api/history?limit=100000",
            None,
            b"",
            BAD,
            "bad_request",
        ),
        raw(
            "history bad cursor",
            Method::GET,
            "/api/history?cursor=%27%3B--",
            None,
            b"",
            BAD,
            "bad_request",
        ),
        raw(
            "websocket without upgrade",
            Method::GET,
            "/ws/logs/container-aaaaaaaaaaaaaaaaaaaa",
            None,
            b"",
            NOT_FOUND,
            "not_found",
        ),
    ]
}

#[tokio::test]
async fn bad_requests_get_4xx_json_and_create_nothing() {
    let h = Harness::new();
    let cases = cases();
    assert!(cases.len() >= 30);
    for case in &cases {
        let mut builder = Request::builder()
            .method(case.method.clone())
            .uri(case.uri.as_str());
        if let Some(content_type) = case.content_type {
            builder = builder.header("content-type", content_type);
        }
        let reply = h
            .send(builder.body(Body::from(case.body.clone())).unwrap())
            .await;
        assert_eq!(reply.status, case.status, "{}: {}", case.name, reply.text());
        assert!(reply.status.is_client_error(), "{}", case.name);
        assert_eq!(
            reply.error_code(),
            case.code,
            "{}: {}",
            case.name,
            reply.text()
        );
    }
    // The server still serves, and nothing was created.
    let list = h.get("/api/containers", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["containers"].as_array().unwrap().len(), 0);
    assert_eq!(h.runtime.create_calls(), 0);
    assert!(h.runtime.containers().is_empty());
}

#[tokio::test]
async fn errors_name_the_field() {
    let h = Harness::new();
    for (body, field) in [
        (
            r#"{"imageType":"alpine","durationMinutes":2.5}"#,
            "durationMinutes",
        ),
        (
            r#"{"imageType":"alpine","durationMinutes":0}"#,
            "durationMinutes",
        ),
        (r#"{"imageType":"windows"}"#, "imageType"),
        (r#"{"imageType":7}"#, "imageType"),
    ] {
        let reply = h
            .call(Method::POST, "/api/provision", None, Some(body))
            .await;
        let json = reply.json();
        assert_eq!(json["error"]["field"], field, "{body}: {json}");
        assert!(json["error"]["message"].as_str().unwrap().contains(field));
    }
    // Unknown offerings list the known ones.
    let reply = h
        .call(
            Method::POST,
            "/api/provision",
            None,
            Some(r#"{"imageType":"windows"}"#),
        )
        .await;
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("alpine") && message.contains("ubuntu"),
        "{message}"
    );
}
