//! What the forwarder is asked ([`Forward`]) and answers ([`ForwardReply`],
//! [`ForwardError`]), and a connection's queue to it: the part of
//! forwarding that connections and the hub's state hold, apart from the
//! hub's handling of it (`forward`).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::envelope::Target;

/// The error code of an event refused because its connection already has
/// `max_forward_queue` events waiting for the forwarder.
pub const PROXY_BUSY: &str = "proxy_busy";

/// What the forwarder is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardKind {
    /// A client event that no handler takes (or one named in
    /// [`Hub::forward_events`](crate::Hub::forward_events)).
    Event,
    /// The connection joined the hub (after its `ready`).
    Connect,
    /// The connection left (after its close); `data` holds the close's
    /// `code` and `reason`.
    Disconnect,
    /// An error the hub saw on the connection (see
    /// [`SocketError`](crate::SocketError)); `data` holds its `code`,
    /// `message` and, when the connection is closed for it, `close_code`.
    /// Sent only when `"error"` is among [`Hub::forward_events`](crate::Hub::forward_events).
    Error,
    /// A stream the connection sent began (`stream:start`) or ended
    /// (`stream:end`); `data` holds its `id`, its target (`room`, `to` or
    /// `broadcast`), `bytes`, `members` and, at the end, `complete`. Sent
    /// only when that event name is among [`Hub::forward_events`](crate::Hub::forward_events).
    Stream,
}

/// The connection an event came from, as it was when the event was sent
/// (for `disconnect`, its last state).
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Its id.
    pub id: String,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Its profile ([`Socket::profile`](crate::Socket::profile)), or else its metadata as an object
    /// of strings.
    pub meta: Value,
    /// The rooms it is in.
    pub rooms: Vec<String>,
}

/// One question to the forwarder.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// An event, `connect` or `disconnect`.
    pub kind: ForwardKind,
    /// Who sent it.
    pub connection: Connection,
    /// The event name (`connect` and `disconnect` for those).
    pub event: String,
    /// The payload (`null` for `connect`; `{"code","reason"}` for `disconnect`).
    pub data: Value,
    /// Where the client addressed it: [`Target::Server`] unless the event
    /// is one of [`Hub::forward_events`](crate::Hub::forward_events) and was sent to someone.
    pub target: Target,
}

/// Where an `emit` entry of a reply goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitTarget {
    /// One connection, by id.
    Connection(String),
    /// The members of a room.
    Room(String),
    /// Every connection.
    Everyone,
    /// The connection that sent the event.
    Sender,
}

/// One event a reply asks the hub to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    /// The event name.
    pub event: String,
    /// The payload.
    pub data: Value,
    /// Where it goes.
    pub target: EmitTarget,
    /// Asks the recipient to acknowledge it with this id (one connection:
    /// `reply` or `to` on this node); its answer comes back as the event
    /// `ack` with data `{"id","data"}`.
    pub ask: Option<u64>,
}

/// The forwarder's answer: the ack's data, and events to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForwardReply {
    /// What the event's ack is answered with.
    pub data: Value,
    /// Events delivered before the ack, in order.
    pub emit: Vec<Emit>,
}

/// A refusal or failure: sent to the client as an `error` event (or as the
/// ack's error) with this code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardError {
    /// A machine-readable code (the backend's own, or `proxy_*`).
    pub code: String,
    /// For people.
    pub message: String,
}

impl ForwardError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ForwardError {
        ForwardError {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What the forwarder's future gives.
pub type ForwardFuture = Pin<Box<dyn Future<Output = Result<ForwardReply, ForwardError>> + Send>>;
/// The forwarder: asked about each [`Forward`]; its future must end (the
/// hub sets no deadline of its own).
pub type Forwarder = Arc<dyn Fn(Forward) -> ForwardFuture + Send + Sync>;

/// The forwarder and the events that go to it even when addressed.
#[derive(Clone)]
pub(crate) struct ForwardHook {
    pub forwarder: Forwarder,
    pub always: Arc<HashSet<String>>,
}

/// An event waiting in a connection's forward queue, with its ack id.
pub(crate) struct Job {
    pub(crate) forward: Forward,
    pub(crate) ack: Option<Value>,
    /// The size of the client message it came in (0 for notices).
    pub(crate) bytes: usize,
}

/// A connection's end of its forward queue.
pub(crate) struct ForwardQueue {
    pub(crate) jobs: mpsc::UnboundedSender<Job>,
    /// Events queued or being answered (`connect`/`disconnect` not counted).
    pub(crate) waiting: Arc<AtomicUsize>,
    /// The bytes of the client messages those events came in: a count
    /// alone would let 64 large events hold 64 times the message size.
    pub(crate) waiting_bytes: Arc<AtomicUsize>,
    pub(crate) always: Arc<HashSet<String>>,
}

impl ForwardQueue {
    /// Whether the forwarder asked for `event` wherever it goes.
    pub(crate) fn wants(&self, event: &str) -> bool {
        self.always.contains(event)
    }
}
