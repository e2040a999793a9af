//! A connection as the application sees it: id, name, metadata, rooms, and a
//! way to send to it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use switchboard_net::CloseCode;

use crate::envelope::{Codec, Encoding, Outgoing};
use crate::id::ConnId;
use crate::outbox::Outbox;
use crate::pattern::Pattern;

/// Metadata attached to a connection when it is accepted (e.g. the user an
/// authentication hook found), visible to handlers.
pub type Meta = BTreeMap<String, String>;

/// A handle on one connection. Cheap to clone.
#[derive(Clone)]
pub struct Socket {
    inner: Arc<SocketInner>,
}

struct SocketInner {
    id: ConnId,
    encoding: Encoding,
    outbox: Outbox,
    meta: Meta,
    remote: Option<SocketAddr>,
    state: Mutex<SocketState>,
}

#[derive(Default)]
pub(crate) struct SocketState {
    pub name: Option<String>,
    pub rooms: BTreeSet<String>,
    pub patterns: Vec<Pattern>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.inner.id)
            .field("name", &self.name())
            .finish()
    }
}

impl Socket {
    pub(crate) fn new(
        id: ConnId,
        encoding: Encoding,
        outbox: Outbox,
        meta: Meta,
        remote: Option<SocketAddr>,
        name: Option<String>,
    ) -> Socket {
        Socket {
            inner: Arc::new(SocketInner {
                id,
                encoding,
                outbox,
                meta,
                remote,
                state: Mutex::new(SocketState {
                    name,
                    ..SocketState::default()
                }),
            }),
        }
    }

    /// The connection's unique id.
    pub fn id(&self) -> &ConnId {
        &self.inner.id
    }

    /// The name the client chose, if any.
    pub fn name(&self) -> Option<String> {
        self.state().name.clone()
    }

    /// The metadata given when the connection was accepted.
    pub fn meta(&self) -> &Meta {
        &self.inner.meta
    }

    /// The peer's address, when known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote
    }

    /// The rooms the connection is in.
    pub fn rooms(&self) -> Vec<String> {
        self.state().rooms.iter().cloned().collect()
    }

    /// The encoding the connection negotiated.
    pub fn codec(&self) -> Codec {
        self.inner.encoding.codec
    }

    /// The codec and compression of this connection's frames.
    pub fn encoding(&self) -> Encoding {
        self.inner.encoding
    }

    /// Sends an event to this connection only (the seeds' `replyOne`).
    /// Returns whether it was queued.
    pub fn emit(&self, event: &str, data: &Value) -> bool {
        self.push(self.encoding().frame(&Outgoing::new(event, data)))
    }

    /// Closes the connection after the messages already queued for it.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.inner.outbox.close(code, reason);
    }

    /// Messages waiting to be written to this connection.
    pub fn queued(&self) -> usize {
        self.inner.outbox.queued()
    }

    pub(crate) fn push(&self, frame: bytes::Bytes) -> bool {
        self.inner.outbox.push(frame)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, SocketState> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of this connection in a user list.
    pub(crate) fn user_entry(&self) -> Value {
        serde_json::json!({ "id": self.id().as_str(), "name": self.name() })
    }
}
