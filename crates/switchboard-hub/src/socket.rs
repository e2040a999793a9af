//! A connection as the application sees it: id, name, metadata, rooms, and a
//! way to send to it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use serde_json::Value;
use switchboard_net::{CloseCode, Cork, Outbox, PushError};

use crate::config::SlowConsumerPolicy;
use crate::envelope::{Codec, Encoding, Outgoing};
use crate::forwarder::ForwardQueue;
use crate::id::ConnId;
use crate::metrics::Metrics;
use crate::pattern::Pattern;
use crate::rights::Rights;

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
    policy: SlowConsumerPolicy,
    metrics: Arc<Metrics>,
    /// Metadata, profile and forward queue, when the connection has any:
    /// boxed, as many connections have none and a socket's size is an
    /// idle cost.
    extras: Option<Box<Extras>>,
    remote: Option<SocketAddr>,
    /// `end` was sent (shutdown): it is sent once.
    ended: AtomicBool,
    /// Its rights limit some room or address ([`Rights::restricts`]); kept
    /// beside them so that an unlimited connection's messages take no
    /// extra lock.
    restricted: AtomicBool,
    state: Mutex<SocketState>,
}

/// What some connections have beside the rest.
struct Extras {
    meta: Meta,
    /// The object shown with the connection (user lists, `from_meta`).
    profile: Option<Value>,
    /// Where its events for the forwarder go, when one is set.
    forward: Option<ForwardQueue>,
}

/// The metadata of a connection that has none.
static NO_META: Meta = Meta::new();

#[derive(Default)]
pub(crate) struct SocketState {
    pub name: Option<String>,
    pub rooms: BTreeSet<String>,
    pub patterns: Vec<Pattern>,
    /// What the authorizer allowed, if it limited anything, named a
    /// subject or set a deadline; a refresh replaces it.
    pub rights: Option<Box<Rights>>,
    /// It acknowledges the room messages it processed (`?acks=1`).
    pub acks: bool,
}

impl Extras {
    /// The extras of a connection, `None` when it has none.
    fn of(
        meta: Meta,
        profile: Option<Value>,
        forward: Option<ForwardQueue>,
    ) -> Option<Box<Extras>> {
        if meta.is_empty() && profile.is_none() && forward.is_none() {
            return None;
        }
        Some(Box::new(Extras {
            meta,
            profile,
            forward,
        }))
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.inner.id)
            .field("name", &self.name())
            .finish()
    }
}

/// What a new [`Socket`] is made of.
pub(crate) struct SocketParts {
    pub id: ConnId,
    pub encoding: Encoding,
    pub outbox: Outbox,
    pub policy: SlowConsumerPolicy,
    pub metrics: Arc<Metrics>,
    pub meta: Meta,
    pub profile: Option<Value>,
    pub forward: Option<ForwardQueue>,
    pub remote: Option<SocketAddr>,
    pub name: Option<String>,
    pub rights: Rights,
}

impl Socket {
    pub(crate) fn new(parts: SocketParts) -> Socket {
        Socket {
            inner: Arc::new(SocketInner {
                id: parts.id,
                encoding: parts.encoding,
                outbox: parts.outbox,
                policy: parts.policy,
                metrics: parts.metrics,
                extras: Extras::of(parts.meta, parts.profile, parts.forward),
                remote: parts.remote,
                ended: AtomicBool::new(false),
                restricted: AtomicBool::new(parts.rights.restricts()),
                state: Mutex::new(SocketState {
                    name: parts.name,
                    rights: parts.rights.boxed(),
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
        self.inner
            .extras
            .as_ref()
            .map_or(&NO_META, |extras| &extras.meta)
    }

    /// The object shown with the connection to other clients: `meta` in
    /// user lists, `from_meta` on the events it sends.
    pub fn profile(&self) -> Option<&Value> {
        self.inner.extras.as_ref()?.profile.as_ref()
    }

    /// The connection's forward queue, when a forwarder is set.
    pub(crate) fn forward_queue(&self) -> Option<&ForwardQueue> {
        self.inner.extras.as_ref()?.forward.as_ref()
    }

    /// Who the connection acts for, as its authorizer said (a token's `sub`).
    pub fn subject(&self) -> Option<String> {
        self.rights(|rights| rights.subject.clone())
    }

    /// Whether the connection may join `room` (and list its members).
    pub fn may_join(&self, room: &str) -> bool {
        !self.is_restricted() || self.rights(|rights| rights.rooms.allows(room))
    }

    /// Whether the connection may send events to `room`.
    pub fn may_publish(&self, room: &str) -> bool {
        !self.is_restricted() || self.rights(|rights| rights.publish.allows(room))
    }

    /// Whether the connection may publish an address message to `path`.
    pub fn may_publish_path(&self, path: &str) -> bool {
        !self.is_restricted() || self.rights(|rights| rights.paths.allows(path))
    }

    /// Whether the connection may send events to everyone.
    pub fn may_broadcast(&self) -> bool {
        !self.is_restricted() || self.rights(|rights| rights.publish.allows_all())
    }

    fn is_restricted(&self) -> bool {
        self.inner.restricted.load(Ordering::Acquire)
    }

    /// Reads the connection's rights under its lock.
    fn rights<T>(&self, read: impl FnOnce(&Rights) -> T) -> T {
        let state = self.state();
        read(state.rights.as_deref().unwrap_or(&Rights::UNLIMITED))
    }

    /// Replaces the connection's rights (a refresh).
    pub(crate) fn set_rights(&self, rights: Rights) {
        let restricts = rights.restricts();
        self.state().rights = rights.boxed();
        self.inner.restricted.store(restricts, Ordering::Release);
    }

    /// When the connection will be closed unless it refreshes its grant.
    pub fn expires(&self) -> Option<SystemTime> {
        self.rights(|rights| rights.expires)
    }

    /// The peer's address, when known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote
    }

    /// Whether the connection acknowledges the room messages it processed
    /// (it connected with `?acks=1`).
    pub fn wants_acks(&self) -> bool {
        self.state().acks
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

    /// Sends an event to this connection only (what other hubs call
    /// `replyOne` or `socket.emit`). `Err` says why it was not queued: the
    /// connection is gone, or its queue is full (the slow-consumer policy
    /// then dropped the message or closed the connection).
    pub fn emit(&self, event: &str, data: &Value) -> Result<(), SendError> {
        self.send(self.encoding().frame(&Outgoing::new(event, data)), None)
    }

    /// Pushes a frame for this connection alone (through `cork`, if given),
    /// counting it.
    pub(crate) fn send(&self, frame: Bytes, cork: Option<&mut Cork>) -> Result<(), SendError> {
        let len = frame.len() as u64;
        self.push(frame, Instant::now(), cork)?;
        Metrics::add(&self.inner.metrics.messages_out, 1);
        Metrics::add(&self.inner.metrics.bytes_out, len);
        Ok(())
    }

    /// The connection's outbox.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// Closes the connection after the messages already queued for it.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.inner.outbox.close(code, reason);
    }

    /// Messages waiting to be written to this connection.
    pub fn queued(&self) -> usize {
        self.inner.outbox.queued_frames()
    }

    /// Bytes waiting to be written to this connection.
    pub fn queued_bytes(&self) -> usize {
        self.inner.outbox.queued_bytes()
    }

    /// Pushes a finished frame, written now or when `cork` is flushed; a
    /// full queue applies the slow-consumer policy. Returns whether the
    /// frame was taken. Counted by the caller.
    pub(crate) fn push(
        &self,
        frame: Bytes,
        now: Instant,
        cork: Option<&mut Cork>,
    ) -> Result<(), SendError> {
        let pushed = match cork {
            Some(cork) => self.inner.outbox.push_corked(frame, now, cork),
            None => self.inner.outbox.push(frame, now),
        };
        match pushed {
            Ok(()) => Ok(()),
            Err(PushError::Full { frames, bytes }) => {
                let metrics = &self.inner.metrics;
                match self.inner.policy {
                    SlowConsumerPolicy::Drop => Metrics::add(&metrics.dropped, 1),
                    SlowConsumerPolicy::Close => {
                        // The abort stops the outbox from taking more, so
                        // this runs once per connection.
                        Metrics::add(&metrics.slow_consumers, 1);
                        let reason =
                            format!("slow consumer: {frames} messages ({bytes} bytes) queued");
                        self.inner
                            .outbox
                            .abort(CloseCode::POLICY_VIOLATION, &reason);
                    }
                }
                Err(SendError::Full)
            }
            Err(_) => Err(SendError::Gone),
        }
    }

    /// Marks `end` as sent; returns false if it was already.
    pub(crate) fn mark_ended(&self) -> bool {
        !self.inner.ended.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, SocketState> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of this connection in a user list.
    pub(crate) fn user_entry(&self) -> Value {
        match self.profile() {
            None => serde_json::json!({ "id": self.id().as_str(), "name": self.name() }),
            Some(profile) => {
                serde_json::json!({ "id": self.id().as_str(), "name": self.name(), "meta": profile })
            }
        }
    }
}

/// Why a message for one connection was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closing or gone, or no connection has that id.
    Gone,
    /// Its outbound queue is at its bound: the connection is not keeping
    /// up, and the slow-consumer policy dropped the message or closed it.
    Full,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::Gone => "the connection is gone",
            SendError::Full => "the connection's outbound queue is full",
        })
    }
}

impl std::error::Error for SendError {}
