//! Where a message goes: every sender of the hub (client relays, the
//! application's `emit*`, `publish`, messages from other nodes) ends in
//! [`Hub::route`], and every local delivery in [`Hub::deliver_local`].
//!
//! A message is encoded once per encoding ([`Prepared`]) and the same frame
//! is pushed to every recipient's outbox, which writes it to the socket at
//! once when the socket can take it: a fan-out wakes no task for a
//! recipient that keeps up.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use switchboard_net::Cork;

use crate::cluster::Route;
use crate::envelope::{AddressMessage, Outgoing, Prepared, RequestError, Target};
use crate::history::{Appended, StoredCallback};
use crate::hub::Hub;
use crate::id::ConnId;
use crate::metrics::Metrics;
use crate::socket::{SendError, Socket};

impl Hub {
    /// Sends to the members of a room (Socket.IO's `io.to(room).emit`).
    pub fn to(&self, room: &str) -> RoomEmitter<'_> {
        RoomEmitter {
            hub: self,
            room: room.to_owned(),
            except: None,
        }
    }

    /// Sends an event to every connection (a broadcast, `replyAll` elsewhere); returns
    /// how many queued it, counting those on other nodes it was sent toward.
    pub fn emit_all(&self, event: &str, data: &Value) -> usize {
        self.emit_everyone(None, event, data)
    }

    /// Sends an event to every connection but one, typically the one whose
    /// message caused it (Socket.IO's `socket.broadcast.emit`); returns how
    /// many queued it, counting those on other nodes it was sent toward.
    pub fn emit_all_except(&self, except: &ConnId, event: &str, data: &Value) -> usize {
        self.emit_everyone(Some(except.as_str()), event, data)
    }

    fn emit_everyone(&self, except: Option<&str>, event: &str, data: &Value) -> usize {
        let mut message = Outgoing::new(event, data);
        message.broadcast = Some(true);
        self.route(Route::Everyone { except }, &Prepared::new(message), None)
    }

    /// Sends an event to one connection, on this node or another (handed
    /// to the cluster then). `Err` as for [`Socket::emit`]: no such
    /// connection, or its queue is full.
    pub fn emit_to(&self, id: &str, event: &str, data: &Value) -> Result<(), SendError> {
        let mut message = Outgoing::new(event, data);
        message.to = Some(id);
        if self.route(Route::Direct { to: id }, &Prepared::new(message), None) == 1 {
            Ok(())
        } else if self.socket(id).is_some() {
            Err(SendError::Full)
        } else {
            Err(SendError::Gone)
        }
    }

    /// Publishes an address-style message to every matching subscriber and
    /// to the address hooks (bridges); returns how many connections queued it.
    pub fn publish(&self, path: &str, values: &[Value]) -> usize {
        let delivered = self.publish_local(path, values);
        for hook in self.address_hooks() {
            hook(path, values);
        }
        delivered
    }

    /// Publishes to the subscribers (on every node, when clustered) without
    /// calling the address hooks: for messages that came in through a
    /// bridge, which routes them to the other bridges itself. Returns how
    /// many of this node's connections queued it.
    pub fn publish_local(&self, path: &str, values: &[Value]) -> usize {
        Metrics::add(&self.inner.metrics.published, 1);
        let prepared = Prepared::new(AddressMessage { path, values });
        self.route(Route::Address { path }, &prepared, None)
    }

    /// Relays a client event to its target; returns how many connections
    /// queued it, counting those on other nodes it was sent toward.
    pub(crate) fn relay(
        &self,
        from: &Socket,
        event: &str,
        data: &Value,
        target: &Target,
        echo: bool,
        cork: &mut Cork,
    ) -> Result<usize, RequestError> {
        let name = from.name();
        let mut message = Outgoing::new(event, data);
        message.from = Some(from.id().as_str());
        message.from_name = name.as_deref();
        message.from_meta = from.profile();
        let except = (!echo).then(|| from.id().as_str());
        let route = match target {
            Target::Server => return Ok(0),
            Target::Room(room) => {
                message.room = Some(room);
                Route::Room { room, except }
            }
            Target::Everyone => {
                message.broadcast = Some(true);
                Route::Everyone { except }
            }
            Target::Direct(id) => {
                message.to = Some(id.as_str());
                Route::Direct { to: id.as_str() }
            }
        };
        let delivered = self.route(route, &Prepared::new(message), Some(cork));
        if delivered == 0 && matches!(target, Target::Direct(_)) && !self.knows(route) {
            return Err(RequestError::new(
                "unknown_target",
                format!("no connection with id {}", route_target(route)),
            ));
        }
        Ok(delivered)
    }

    /// The one way out: delivers a message to this node's recipients on
    /// `route` (written at once, or when `cork` is flushed) and hands it to
    /// the other nodes that have some. Returns how many connections queued
    /// it, counting remote ones it was sent toward.
    pub(crate) fn route<T: Serialize>(
        &self,
        route: Route<'_>,
        prepared: &Prepared<T>,
        cork: Option<&mut Cork>,
    ) -> usize {
        let remote = self.forward(prepared, route).unwrap_or(0);
        self.deliver_local(route, prepared, cork) + remote
    }

    /// Delivers a message to this node's recipients on `route`, written at
    /// once or when `cork` is flushed.
    pub(crate) fn deliver_local<T: Serialize>(
        &self,
        route: Route<'_>,
        prepared: &Prepared<T>,
        mut cork: Option<&mut Cork>,
    ) -> usize {
        let now = Instant::now();
        let metrics = &self.inner.metrics;
        let registry = self.registry();
        match route {
            Route::Room { room, except } => {
                let members = registry.members(room);
                deliver(members, prepared, except, now, &mut cork, metrics)
            }
            Route::Everyone { except } => {
                let everyone = registry.conns.values();
                deliver(everyone, prepared, except, now, &mut cork, metrics)
            }
            Route::Direct { to } => {
                let socket = registry.conns.get(&ConnId::from_string(to));
                deliver(socket.into_iter(), prepared, None, now, &mut cork, metrics)
            }
            Route::Address { path } => {
                let subscribers = registry.subscribers(path);
                deliver(subscribers.iter(), prepared, None, now, &mut cork, metrics)
            }
        }
    }

    /// Whether a direct message's target exists on this node or another.
    fn knows(&self, route: Route<'_>) -> bool {
        match route {
            Route::Direct { to } => self.socket(to).is_some() || self.remote_owner(to),
            _ => true,
        }
    }
}

fn route_target<'a>(route: Route<'a>) -> &'a str {
    match route {
        Route::Direct { to } => to,
        Route::Room { room, .. } => room,
        Route::Address { path } => path,
        Route::Everyone { .. } => "*",
    }
}

/// Pushes a prepared message to each socket (in its encoding), skipping
/// `except`; returns how many took it.
fn deliver<'a, T: Serialize>(
    sockets: impl Iterator<Item = &'a Socket>,
    prepared: &Prepared<T>,
    except: Option<&str>,
    now: Instant,
    cork: &mut Option<&mut Cork>,
    metrics: &Metrics,
) -> usize {
    let (mut delivered, mut bytes) = (0, 0);
    for socket in sockets {
        if Some(socket.id().as_str()) == except {
            continue;
        }
        let frame = prepared.frame(socket.encoding());
        let len = frame.len();
        if socket.push(frame, now, cork.as_deref_mut()).is_ok() {
            delivered += 1;
            bytes += len;
        }
    }
    Metrics::add(&metrics.messages_out, delivered as u64);
    Metrics::add(&metrics.bytes_out, bytes as u64);
    delivered
}

/// Sends to a room, optionally leaving one connection out.
pub struct RoomEmitter<'a> {
    pub(crate) hub: &'a Hub,
    pub(crate) room: String,
    pub(crate) except: Option<ConnId>,
}

impl RoomEmitter<'_> {
    /// Leaves this connection out (typically the sender).
    pub fn except(mut self, id: &ConnId) -> Self {
        self.except = Some(id.clone());
        self
    }

    /// Sends the event; returns how many connections queued it, counting
    /// those on other nodes it was sent toward. In a room with history it
    /// is numbered and stored first; in a cluster that happens after this
    /// returns ([`RoomEmitter::emit_stored`] waits for it).
    pub fn emit(self, event: &str, data: &Value) -> usize {
        let mut message = Outgoing::new(event, data);
        message.room = Some(&self.room);
        let except = self.except.as_ref().map(ConnId::as_str);
        if let Some(rule) = self.hub.history_rule(&self.room) {
            let done = |_| -> StoredCallback { Box::new(|_| {}) };
            return match self
                .hub
                .append_history(&self.room, rule, except, message, done, None)
            {
                Appended::Now { delivered, .. } | Appended::Later { delivered } => delivered,
                Appended::Failed(_) => 0,
            };
        }
        let route = Route::Room {
            room: &self.room,
            except,
        };
        self.hub.route(route, &Prepared::new(message), None)
    }
}
