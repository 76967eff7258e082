//! `GET /healthz` (the process answers) and `GET /readyz` (the store and the
//! container runtime answer).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use lease_core::error::error_chain;

use crate::AppState;
use crate::error::ApiError;
use crate::wire::{ChecksJson, HealthJson};

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
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthJson),
        (status = 503, description = "The store or the runtime cannot be reached", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<HealthJson>, ApiError> {
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
    if store.is_ok() && runtime.is_ok() {
        return Ok(Json(HealthJson {
            status: "ready".to_owned(),
            checks: Some(ChecksJson {
                store: "ok".to_owned(),
                runtime: "ok".to_owned(),
            }),
        }));
    }
    let describe = |result: Result<(), String>| result.err().unwrap_or_else(|| "ok".to_owned());
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        format!("store: {}; runtime: {}", describe(store), describe(runtime)),
    ))
}
