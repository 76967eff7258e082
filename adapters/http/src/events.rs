//! `GET /api/events`: Server-Sent Events of the caller's leases.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use lease_core::LeaseEvent;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::AppState;
use crate::auth::Caller;
use crate::extract::ApiQuery;
use crate::limits::StreamPermit;
use crate::wire::{EventJson, EventsParams};

fn sse_event(event: &LeaseEvent) -> Event {
    let json = EventJson::new(event);
    Event::default()
        .event(event.kind.as_str())
        .json_data(json)
        .unwrap_or_else(|_| Event::default().comment("unencodable event"))
}

/// Live lease events: `created`, `running`, `error`, `exited`, `extended`,
/// `expiring_soon`, `deleted`, `reap_failed` (the SSE event name), each
/// with the lease as JSON data. Only the caller's leases (an admin's: all).
/// A `lagged` event with a count tells a slow client it missed some (the
/// server keeps a bounded backlog per stream, never more); a client that
/// stops reading altogether is disconnected by the connection's idle
/// timeout once its socket is full.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "leases",
    params(EventsParams),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = EventJson),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 429, description = "The caller has too many streams open (`too_many_streams`)", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    permit: StreamPermit,
    ApiQuery(_params): ApiQuery<EventsParams>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before answering, so no event after the response is missed.
    let receiver = state.manager.subscribe();
    let events = BroadcastStream::new(receiver).filter_map(move |item| {
        let visible = match &item {
            Ok(event) => caller.admin || event.lease.owner == caller.owner,
            Err(_) => true,
        };
        let event = match item {
            Ok(event) if visible => Some(sse_event(&event)),
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                Some(Event::default().event("lagged").data(missed.to_string()))
            }
        };
        futures::future::ready(event.map(Ok))
    });
    let opening = stream::once(futures::future::ready(Ok(
        Event::default().comment("subscribed")
    )));
    let stream = opening
        .chain(events)
        .take_until(state.shutdown.clone().cancelled_owned())
        // The permit counts this stream until the response body is dropped.
        .map(move |event| {
            let _ = &permit;
            event
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(state.sse_keep_alive))
}
