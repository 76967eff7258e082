//! `GET /healthz` (the process answers) and `GET /readyz` (the store and the
//! container runtime answer; the details only for operators).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lease_core::error::error_chain;
use tracing::warn;

use crate::AppState;
use crate::error::ApiError;
use crate::wire::{ChecksJson, HealthJson, ReadyJson};

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Up", body = HealthJson))
)]
pub(crate) async fn healthz() -> Json<HealthJson> {
    Json(HealthJson {
        status: "ok".to_owned(),
        checks: None,
    })
}

/// The lease store and the container runtime can be reached.
///
/// Load balancers and probes get `{"ready":true}` (200) or
/// `{"ready":false,…}` (503) and nothing else; operators (admins, the local
/// user in single-user mode) get which dependency failed and why, and the
/// server log always has it.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready. Anonymous callers: `{\"ready\":true}`; admins: `{\"status\":\"ready\",\"checks\":{…}}`", body = ReadyJson),
        (status = 401, description = "A bearer token was sent and is not valid", body = crate::error::ErrorBody),
        (status = 503, description = "The store or the runtime cannot be reached. Anonymous callers: `{\"ready\":false,\"error\":{…}}` without details; admins: the error naming what failed", body = ReadyJson),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn readyz(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let operator = state
        .auth
        .is_operator(
            state.metrics_token.as_ref(),
            state.oidc.as_ref(),
            &headers,
            state.manager.clock().now(),
        )
        .await?;
    let (store, runtime) = check(&state).await;
    let ready = store.is_ok() && runtime.is_ok();
    if !ready {
        warn!(
            store = %describe(&store),
            runtime = %describe(&runtime),
            "not ready"
        );
    }
    Ok(match (operator, ready) {
        (true, true) => Json(HealthJson {
            status: "ready".to_owned(),
            checks: Some(ChecksJson {
                store: "ok".to_owned(),
                runtime: "ok".to_owned(),
            }),
        })
        .into_response(),
        (true, false) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!(
                "store: {}; runtime: {}",
                describe(&store),
                describe(&runtime)
            ),
        )
        .into_response(),
        (false, true) => Json(ReadyJson {
            ready: true,
            error: None,
        })
        .into_response(),
        (false, false) => {
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "not ready; the server log says why",
            );
            let body = ReadyJson {
                ready: false,
                error: Some(error.detail),
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    })
}

/// Pings the store and the runtime together, each within the ready timeout.
async fn check(state: &AppState) -> (Result<(), String>, Result<(), String>) {
    let timeout = state.ready_timeout;
    let store = state.manager.store().clone();
    let runtime = state.manager.runtime().clone();
    let (store, runtime) = tokio::join!(
        tokio::time::timeout(timeout, store.ping()),
        tokio::time::timeout(timeout, runtime.ping()),
    );
    let store = match store {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error_chain(&error)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    };
    let runtime = match runtime {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error_chain(&error)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    };
    (store, runtime)
}

fn describe(result: &Result<(), String>) -> &str {
    match result {
        Ok(()) => "ok",
        Err(error) => error,
    }
}
