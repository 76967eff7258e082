//! A transaction begun by hand on a pooled connection, so that its
//! `BEGIN` and its `COMMIT` can ride in the same round trip as the
//! statements beside them (tokio-postgres sends requests in the order
//! they are first polled, and the server runs them in that order).
//!
//! The pool hands a connection back as it is, in or out of a
//! transaction. So a connection whose transaction may still be open — an
//! error mid-way, or the caller's future dropped (a client that hung up)
//! — is taken out of the pool and closed, and the server rolls the
//! transaction back. Only a connection whose transaction was seen to end
//! goes back to the pool.

use deadpool_postgres::Object;

/// A pooled connection with a transaction that may be open.
pub(crate) struct OpenTransaction {
    client: Option<Object>,
}

impl OpenTransaction {
    /// Wraps `client`, on which the caller is about to send `BEGIN`.
    pub(crate) fn new(client: Object) -> Self {
        OpenTransaction {
            client: Some(client),
        }
    }

    /// The connection, to send the transaction's statements on.
    pub(crate) fn client(&self) -> &Object {
        // Only `ended` and `drop` take it, and both consume `self`.
        match &self.client {
            Some(client) => client,
            None => unreachable!("an open transaction has its connection"),
        }
    }

    /// The transaction has ended (committed or rolled back): the
    /// connection goes back to the pool.
    pub(crate) fn ended(mut self) {
        drop(self.client.take());
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Out of the pool, then closed: the server rolls back.
            drop(Object::take(client));
        }
    }
}
