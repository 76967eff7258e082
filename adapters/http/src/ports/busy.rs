//! Keeping a proxied connection from the idle watchdog of
//! [`crate::serve`] while the app owes the viewer bytes.
//!
//! An app may rightly stay silent longer than the idle timeout: a long
//! poll, a server-sent event stream between events, a slow report. The
//! viewer's connection is then quiet through no fault of the viewer's, so
//! the proxy holds an [`IdleExemption`] for it — from the moment the
//! viewer's request body is all sent (at once for a request without one)
//! until the app's response body ends or the viewer goes. A viewer that
//! stalls while sending its body is not exempt, and one that stops
//! reading the response counts as idle again (see
//! [`crate::serve::IdleWatch::exempt`]): the watchdog still ends both.
//! Such exchanges are bounded by the connection caps and end with the
//! lease.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use hyper::body::{Frame, SizeHint};

use crate::serve::{IdleExemption, IdleWatch};

/// The exemption of one proxied exchange (inert when the connection is
/// not served by [`crate::serve`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Busy {
    inner: Option<Arc<Held>>,
}

#[derive(Debug)]
struct Held {
    watch: IdleWatch,
    exemption: Mutex<Option<IdleExemption>>,
}

impl Busy {
    /// The (not yet engaged) exemption of `request`'s connection.
    pub(crate) fn of(request: &Request) -> Busy {
        Busy {
            inner: request.extensions().get::<IdleWatch>().map(|watch| {
                Arc::new(Held {
                    watch: watch.clone(),
                    exemption: Mutex::new(None),
                })
            }),
        }
    }

    /// Exempts the connection from now on, while `self` or a clone lives.
    pub(crate) fn engage(&self) {
        if let Some(held) = &self.inner {
            let mut exemption = held.exemption.lock().unwrap_or_else(|p| p.into_inner());
            if exemption.is_none() {
                *exemption = Some(held.watch.exempt());
            }
        }
    }

    /// Whether the exemption is engaged.
    #[cfg(test)]
    fn engaged(&self) -> bool {
        self.inner.as_ref().is_some_and(|held| {
            held.exemption
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
        })
    }

    /// The viewer's request body, engaging the exemption once it has all
    /// been read.
    pub(crate) fn request_body(&self, body: Body) -> Body {
        if body.is_end_stream() || self.inner.is_none() {
            self.engage();
            return body;
        }
        Body::new(Sent {
            body,
            busy: self.clone(),
        })
    }

    /// The app's response body, keeping the exemption until it is dropped.
    pub(crate) fn response_body<B>(self, body: B) -> Body
    where
        B: HttpBody<Data = hyper::body::Bytes> + Send + Unpin + 'static,
        B::Error: Into<axum::BoxError>,
    {
        Body::new(Keeping { body, _busy: self })
    }
}

/// A request body that engages its exchange's exemption when it ends.
struct Sent {
    body: Body,
    busy: Busy,
}

impl HttpBody for Sent {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(poll, Poll::Ready(None)) || self.body.is_end_stream() {
            self.busy.engage();
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its exchange's exemption while it lives.
struct Keeping<B> {
    body: B,
    _busy: Busy,
}

impl<B> HttpBody for Keeping<B>
where
    B: HttpBody + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A `Busy` for a connection, with a way to see its exemptions.
    fn busy() -> (Busy, IdleWatch) {
        let watch = IdleWatch::unattached();
        let mut request = Request::new(Body::empty());
        request.extensions_mut().insert(watch.clone());
        (Busy::of(&request), watch)
    }

    #[test]
    fn a_request_without_body_engages_at_once_until_the_response_goes() {
        let (busy, watch) = busy();
        let body = busy.request_body(Body::empty());
        assert!(watch.is_exempt());
        drop(body);
        let response = busy.response_body(Body::empty());
        assert!(watch.is_exempt(), "the response keeps it");
        drop(response);
        assert!(!watch.is_exempt());
    }

    #[tokio::test]
    async fn a_request_body_engages_once_read_to_its_end() {
        let (busy, watch) = busy();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<&'static str, std::io::Error>>(1);
        let body = busy.request_body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        assert!(
            !busy.engaged() && !watch.is_exempt(),
            "the viewer owes bytes"
        );
        let reading = tokio::spawn(body.collect());
        tx.send(Ok("part")).await.unwrap_or_else(|e| panic!("{e}"));
        tokio::task::yield_now().await;
        assert!(!watch.is_exempt());
        drop(tx);
        let collected = reading
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(collected.to_bytes(), "part");
        assert!(watch.is_exempt(), "now the app owes the answer");
        drop(busy);
        assert!(!watch.is_exempt());
    }

    #[test]
    fn without_a_watch_nothing_is_held() {
        let busy = Busy::of(&Request::new(Body::empty()));
        let body = busy.request_body(Body::empty());
        assert!(!busy.engaged());
        drop(body);
    }
}
