//! The hub: the application's handle on every connection, room and address.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::Value;
use switchboard_net::CloseCode;
use switchboard_proto::handshake::Request;
use tokio::sync::Notify;

use crate::cluster::{ClusterAdapter, RemotePresence, Route};
use crate::config::HubConfig;
use crate::envelope::{AddressMessage, Outgoing, Prepared, RequestError, Target};
use crate::id::ConnId;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::socket::{Meta, Socket};

/// What an event handler sees.
pub struct Context<'a> {
    /// The hub, to emit elsewhere.
    pub hub: &'a Hub,
    /// The connection that sent the event.
    pub socket: &'a Socket,
    /// The event name.
    pub event: &'a str,
    /// The payload.
    pub data: &'a Value,
    /// Where the client addressed it.
    pub target: &'a Target,
}

/// An event handler: its `Ok` value answers the client's ack; an `Err`
/// becomes the ack's error (or an `error` event) and stops the relay.
pub type EventHandler = Arc<dyn Fn(&Context<'_>) -> Result<Value, RequestError> + Send + Sync>;
/// Called with the connection that connected or disconnected.
pub type SocketHook = Arc<dyn Fn(&Hub, &Socket) + Send + Sync>;
/// Decides on an upgrade request: `Ok` with the connection's metadata, or
/// `Err` with an HTTP status (401, 403) and a reason.
pub type Authorizer = Arc<dyn Fn(&Request) -> Result<Meta, (u16, String)> + Send + Sync>;
/// Sees every address-style message published on this node (bridges, clusters).
pub type AddressHook = Arc<dyn Fn(&str, &[Value]) + Send + Sync>;

#[derive(Default)]
struct Hooks {
    events: HashMap<String, Vec<EventHandler>>,
    connect: Vec<SocketHook>,
    disconnect: Vec<SocketHook>,
    address: Vec<AddressHook>,
    authorizer: Option<Authorizer>,
}

pub(crate) struct HubInner {
    pub config: HubConfig,
    pub registry: RwLock<Registry>,
    hooks: RwLock<Hooks>,
    pub metrics: Arc<Metrics>,
    closing: AtomicBool,
    emptied: Notify,
    pub dirty_rooms: Mutex<HashSet<String>>,
    pub presence_wake: Arc<Notify>,
    pub presence_started: AtomicBool,
    /// The other nodes, when clustered (see `cluster`); set once.
    pub cluster: OnceLock<Arc<dyn ClusterAdapter>>,
    /// The other nodes' connections, when clustered.
    pub remote: RwLock<RemotePresence>,
}

impl Drop for HubInner {
    fn drop(&mut self) {
        // Wakes the presence task so that it sees the hub is gone and ends.
        self.presence_wake.notify_one();
    }
}

/// The event hub. Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("connections", &self.connection_count())
            .finish()
    }
}

/// Gauges of the hub at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Connections in the hub.
    pub connections: usize,
    /// Rooms with at least one member.
    pub rooms: usize,
    /// Address subscriptions.
    pub subscriptions: usize,
    /// Messages waiting in all outbound queues.
    pub queued: usize,
    /// The longest outbound queue.
    pub max_queued: usize,
}

impl Hub {
    /// A hub with the given settings.
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                config,
                registry: RwLock::new(Registry::default()),
                hooks: RwLock::new(Hooks::default()),
                metrics: Arc::new(Metrics::default()),
                closing: AtomicBool::new(false),
                emptied: Notify::new(),
                dirty_rooms: Mutex::new(HashSet::new()),
                presence_wake: Arc::new(Notify::new()),
                presence_started: AtomicBool::new(false),
                cluster: OnceLock::new(),
                remote: RwLock::new(RemotePresence::default()),
            }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    // ---- hooks ------------------------------------------------------------

    /// Handles a client event by name (the seeds' `ws.on("event", …)`).
    ///
    /// Handlers run on the connection's reader task, in order of
    /// registration; keep them short, spawn for slow work. An event addressed
    /// to a room, a connection or everyone is relayed after its handlers
    /// return `Ok`; one addressed to no one goes to the handlers only.
    pub fn on<F>(&self, event: &str, handler: F)
    where
        F: Fn(&Context<'_>) -> Result<Value, RequestError> + Send + Sync + 'static,
    {
        self.hooks_mut()
            .events
            .entry(event.to_owned())
            .or_default()
            .push(Arc::new(handler));
    }

    /// Runs when a connection has joined the hub (after `ready` is queued).
    pub fn on_connect<F: Fn(&Hub, &Socket) + Send + Sync + 'static>(&self, hook: F) {
        self.hooks_mut().connect.push(Arc::new(hook));
    }

    /// Runs when a connection has left the hub.
    pub fn on_disconnect<F: Fn(&Hub, &Socket) + Send + Sync + 'static>(&self, hook: F) {
        self.hooks_mut().disconnect.push(Arc::new(hook));
    }

    /// Sees every address-style message published on this node.
    pub fn on_address<F: Fn(&str, &[Value]) + Send + Sync + 'static>(&self, hook: F) {
        self.hooks_mut().address.push(Arc::new(hook));
    }

    /// Decides on upgrade requests (authentication, access control).
    pub fn set_authorizer<F>(&self, authorizer: F)
    where
        F: Fn(&Request) -> Result<Meta, (u16, String)> + Send + Sync + 'static,
    {
        self.hooks_mut().authorizer = Some(Arc::new(authorizer));
    }

    /// Runs the authorizer on an upgrade request; without one, accepts with
    /// empty metadata.
    pub fn authorize(&self, request: &Request) -> Result<Meta, (u16, String)> {
        let authorizer = self.hooks().authorizer.clone();
        match authorizer {
            Some(authorizer) => authorizer(request),
            None => Ok(Meta::new()),
        }
    }

    pub(crate) fn event_handlers(&self, event: &str) -> Vec<EventHandler> {
        self.hooks().events.get(event).cloned().unwrap_or_default()
    }

    pub(crate) fn run_connect_hooks(&self, socket: &Socket) {
        let hooks = self.hooks().connect.clone();
        for hook in hooks {
            hook(self, socket);
        }
    }

    pub(crate) fn run_disconnect_hooks(&self, socket: &Socket) {
        let hooks = self.hooks().disconnect.clone();
        for hook in hooks {
            hook(self, socket);
        }
    }

    fn hooks(&self) -> RwLockReadGuard<'_, Hooks> {
        self.inner.hooks.read().unwrap_or_else(|p| p.into_inner())
    }

    fn hooks_mut(&self) -> RwLockWriteGuard<'_, Hooks> {
        self.inner.hooks.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn registry_mut(&self) -> RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    // ---- lookups ----------------------------------------------------------

    /// The connection with this id, if it is on this hub.
    pub fn socket(&self, id: &str) -> Option<Socket> {
        self.registry().conns.get(&ConnId::from_string(id)).cloned()
    }

    /// Every connection.
    pub fn sockets(&self) -> Vec<Socket> {
        self.registry().conns.values().cloned().collect()
    }

    /// How many connections are in the hub.
    pub fn connection_count(&self) -> usize {
        self.registry().conns.len()
    }

    /// The members of a room (or every connection) as `{id, name}` entries,
    /// on every node of the cluster, sorted by id, at most `limit`.
    pub fn users(&self, room: Option<&str>, limit: usize) -> Vec<Value> {
        let mut users: Vec<Value> = {
            let registry = self.registry();
            match room {
                Some(room) => registry.members(room).map(Socket::user_entry).collect(),
                None => registry.conns.values().map(Socket::user_entry).collect(),
            }
        };
        self.extend_remote_entries(room, &mut users);
        users.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        users.truncate(limit);
        users
    }

    /// Gauges at this instant.
    pub fn stats(&self) -> Stats {
        let registry = self.registry();
        let queues = registry.conns.values().map(Socket::queued);
        let (queued, max_queued) = queues.fold((0, 0), |(sum, max), q| (sum + q, max.max(q)));
        Stats {
            connections: registry.conns.len(),
            rooms: registry.rooms.len(),
            subscriptions: registry.subscription_count(),
            queued,
            max_queued,
        }
    }

    // ---- sending ------------------------------------------------------------

    /// Sends to the members of a room (the seeds' `hub.to(room).emit`).
    pub fn to(&self, room: &str) -> RoomEmitter<'_> {
        RoomEmitter {
            hub: self,
            room: room.to_owned(),
            except: None,
        }
    }

    /// Sends an event to every connection (the seeds' `replyAll`); returns
    /// how many queued it, counting those on other nodes it was sent toward.
    pub fn emit_all(&self, event: &str, data: &Value) -> usize {
        let mut message = Outgoing::new(event, data);
        message.broadcast = Some(true);
        let prepared = Prepared::new(message);
        let remote = self.forward(&prepared, Route::Everyone { except: None });
        let registry = self.registry();
        deliver(registry.conns.values(), &prepared, None) + remote.unwrap_or(0)
    }

    /// Sends an event to one connection, on this node or another; returns
    /// whether it was queued (or handed to the cluster).
    pub fn emit_to(&self, id: &str, event: &str, data: &Value) -> bool {
        let mut message = Outgoing::new(event, data);
        message.to = Some(id);
        let prepared = Prepared::new(message);
        match self.socket(id) {
            Some(socket) => socket.push(prepared.frame(socket.encoding())),
            None => self.forward(&prepared, Route::Direct { to: id }) == Some(1),
        }
    }

    /// Publishes an address-style message to every matching subscriber and
    /// to the address hooks (bridges); returns how many connections queued it.
    pub fn publish(&self, path: &str, values: &[Value]) -> usize {
        let delivered = self.publish_local(path, values);
        let hooks = self.hooks().address.clone();
        for hook in hooks {
            hook(path, values);
        }
        delivered
    }

    /// Publishes to the subscribers (on every node, when clustered) without
    /// calling the address hooks: for messages that came in through a
    /// bridge, which routes them to the other bridges itself. Returns how
    /// many of this node's connections queued it.
    pub fn publish_local(&self, path: &str, values: &[Value]) -> usize {
        let prepared = Prepared::new(AddressMessage { path, values });
        self.forward(&prepared, Route::Address { path });
        let subscribers = self.registry().subscribers(path);
        Metrics::add(&self.inner.metrics.published, 1);
        deliver(subscribers.iter(), &prepared, None)
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
    ) -> Result<usize, RequestError> {
        let name = from.name();
        let mut message = Outgoing::new(event, data);
        message.from = Some(from.id().as_str());
        message.from_name = name.as_deref();
        let except = (!echo).then(|| from.id());
        match target {
            Target::Server => Ok(0),
            Target::Room(room) => {
                message.room = Some(room);
                let prepared = Prepared::new(message);
                let except_id = except.map(ConnId::as_str);
                let remote = self.forward(
                    &prepared,
                    Route::Room {
                        room,
                        except: except_id,
                    },
                );
                let registry = self.registry();
                Ok(deliver(registry.members(room), &prepared, except) + remote.unwrap_or(0))
            }
            Target::Everyone => {
                message.broadcast = Some(true);
                let prepared = Prepared::new(message);
                let except_id = except.map(ConnId::as_str);
                let remote = self.forward(&prepared, Route::Everyone { except: except_id });
                let registry = self.registry();
                Ok(deliver(registry.conns.values(), &prepared, except) + remote.unwrap_or(0))
            }
            Target::Direct(id) => {
                message.to = Some(id.as_str());
                let prepared = Prepared::new(message);
                let Some(socket) = self.registry().conns.get(id).cloned() else {
                    // On another node, if the cluster knows the id.
                    return self
                        .forward(&prepared, Route::Direct { to: id.as_str() })
                        .ok_or_else(|| {
                            RequestError::new(
                                "unknown_target",
                                format!("no connection with id {id}"),
                            )
                        });
                };
                Ok(deliver(std::iter::once(&socket), &prepared, None))
            }
        }
    }

    // ---- shutdown -----------------------------------------------------------

    /// Whether the hub is shutting down (new connections are refused).
    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Acquire)
    }

    /// Graceful shutdown: refuses new connections, sends `end` and then a
    /// 1001 close to every connection, and waits up to `timeout` for them to
    /// leave. Returns whether every connection left in time.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.closing.store(true, Ordering::Release);
        let end = Prepared::new(Outgoing::new("end", &Value::Null));
        for socket in self.sockets() {
            socket.push(end.frame(socket.encoding()));
            socket.close(CloseCode::GOING_AWAY, "server shutting down");
        }
        tokio::time::timeout(timeout, self.wait_empty())
            .await
            .is_ok()
    }

    async fn wait_empty(&self) {
        loop {
            let emptied = self.inner.emptied.notified();
            if self.connection_count() == 0 {
                return;
            }
            emptied.await;
        }
    }

    pub(crate) fn notify_if_empty(&self) {
        if self.connection_count() == 0 {
            self.inner.emptied.notify_waiters();
        }
    }
}

/// Queues a prepared message to each socket (in its codec), skipping `except`.
pub(crate) fn deliver<'a, T: serde::Serialize>(
    sockets: impl Iterator<Item = &'a Socket>,
    prepared: &Prepared<T>,
    except: Option<&ConnId>,
) -> usize {
    sockets
        .filter(|socket| Some(socket.id()) != except)
        .filter(|socket| socket.push(prepared.frame(socket.encoding())))
        .count()
}

/// Sends to a room, optionally leaving one connection out.
pub struct RoomEmitter<'a> {
    hub: &'a Hub,
    room: String,
    except: Option<ConnId>,
}

impl RoomEmitter<'_> {
    /// Leaves this connection out (typically the sender).
    pub fn except(mut self, id: &ConnId) -> Self {
        self.except = Some(id.clone());
        self
    }

    /// Sends the event; returns how many connections queued it, counting
    /// those on other nodes it was sent toward.
    pub fn emit(self, event: &str, data: &Value) -> usize {
        let mut message = Outgoing::new(event, data);
        message.room = Some(&self.room);
        let prepared = Prepared::new(message);
        let route = Route::Room {
            room: &self.room,
            except: self.except.as_ref().map(ConnId::as_str),
        };
        let remote = self.hub.forward(&prepared, route);
        let registry = self.hub.registry();
        deliver(
            registry.members(&self.room),
            &prepared,
            self.except.as_ref(),
        ) + remote.unwrap_or(0)
    }
}
