//! The hub: the application's handle on every connection, room and address.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::Value;
use switchboard_net::CloseCode;
use switchboard_proto::handshake::Request;
use tokio::sync::{Notify, Semaphore};

use crate::cluster::ClusterAdapter;
use crate::config::HubConfig;
use crate::envelope::{RequestError, Target};
use crate::forwarder::ForwardHook;
use crate::fragments::{Stream, StreamInfo};
use crate::grant::Grant;
use crate::id::ConnId;
use crate::metrics::Metrics;
use crate::rate::{AddressLimiters, ConnectionLimits};
use crate::registry::Registry;
use crate::remote::RemotePresence;
use crate::socket::{Meta, Socket};
use crate::socket_error::SocketError;

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
/// `Err` with an HTTP status (401, 403) and a reason. The form of
/// [`Hub::set_authorizer`]; [`GrantAuthorizer`] can say more.
pub type Authorizer = Arc<dyn Fn(&Request) -> Result<Meta, (u16, String)> + Send + Sync>;
/// Decides on an upgrade request: `Ok` with what the connection may do
/// (a [`Grant`]), or `Err` with an HTTP status (401, 403) and a reason.
pub type GrantAuthorizer = Arc<dyn Fn(&Request) -> Result<Grant, (u16, String)> + Send + Sync>;
/// Checks a token a client sends over its open connection (`refresh`):
/// `Ok` with the grant that replaces the connection's, or the error the
/// client is answered with.
pub type Refresher = Arc<dyn Fn(&str) -> Result<Grant, RequestError> + Send + Sync>;
/// Called with the sending connection and the stream, at `stream:start`
/// and at `stream:end`.
pub type StreamHook = Arc<dyn Fn(&Hub, &Socket, &StreamInfo) + Send + Sync>;
/// The streams clients announced with `stream:start` whose binary message
/// has not begun (`Some`), or is being relayed by the connection's task
/// (`None`): one per connection.
pub(crate) type PendingStreams = HashMap<ConnId, Option<Stream>>;
/// Called with a connection and the payload of a pong it sent.
pub type PongHook = Arc<dyn Fn(&Hub, &Socket, &[u8]) + Send + Sync>;
/// Called with a connection and an error the hub saw on it.
pub type ErrorHook = Arc<dyn Fn(&Hub, &Socket, &SocketError) + Send + Sync>;
/// Called with a connection that left, its close code and reason.
pub type CloseHook = Arc<dyn Fn(&Hub, &Socket, u16, &str) + Send + Sync>;
/// Sees every address-style message published on this node (bridges, clusters).
pub type AddressHook = Arc<dyn Fn(&str, &[Value]) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Hooks {
    events: HashMap<String, Vec<EventHandler>>,
    connect: Vec<SocketHook>,
    disconnect: Vec<SocketHook>,
    address: Vec<AddressHook>,
    pub pong: Vec<PongHook>,
    pub error: Vec<ErrorHook>,
    pub close: Vec<CloseHook>,
    pub stream_start: Vec<StreamHook>,
    pub stream_end: Vec<StreamHook>,
    authorizer: Option<GrantAuthorizer>,
    refresher: Option<Refresher>,
    pub forward: Option<ForwardHook>,
}

pub(crate) struct HubInner {
    pub config: HubConfig,
    pub registry: RwLock<Registry>,
    hooks: RwLock<Hooks>,
    pub metrics: Arc<Metrics>,
    closing: AtomicBool,
    emptied: Notify,
    /// One permit per connection admitted (`max_connections`), taken where
    /// the upgrade is decided and held until the connection leaves.
    pub permits: Arc<Semaphore>,
    pub dirty_rooms: Mutex<HashSet<String>>,
    /// Rooms whose next `userlist` must wait (`userlist_rate`), and until when.
    pub userlist_holds: Mutex<HashMap<String, std::time::Instant>>,
    /// The rate limiters of source addresses (`rate_per_address`).
    pub address_limiters: AddressLimiters,
    pub presence_wake: Arc<Notify>,
    pub presence_started: AtomicBool,
    /// The other nodes, when clustered (see `cluster`); set once.
    pub cluster: OnceLock<Arc<dyn ClusterAdapter>>,
    /// The other nodes' connections, when clustered.
    pub remote: RwLock<RemotePresence>,
    /// Client streams under way (`max_streams`).
    pub streams: std::sync::atomic::AtomicUsize,
    /// Client streams announced, by sender.
    pub pending_streams: Mutex<PendingStreams>,
    /// The feeds of the rooms with history.
    pub feeds: crate::history::Feeds,
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
        let permits = Arc::new(Semaphore::new(
            config.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        let registry = RwLock::new(Registry::new(config.max_wildcard_patterns));
        Hub {
            inner: Arc::new(HubInner {
                permits,
                config,
                registry,
                hooks: RwLock::new(Hooks::default()),
                metrics: Arc::new(Metrics::default()),
                closing: AtomicBool::new(false),
                emptied: Notify::new(),
                dirty_rooms: Mutex::new(HashSet::new()),
                userlist_holds: Mutex::new(HashMap::new()),
                address_limiters: AddressLimiters::default(),
                presence_wake: Arc::new(Notify::new()),
                presence_started: AtomicBool::new(false),
                cluster: OnceLock::new(),
                remote: RwLock::new(RemotePresence::default()),
                streams: std::sync::atomic::AtomicUsize::new(0),
                pending_streams: Mutex::new(PendingStreams::new()),
                feeds: crate::history::Feeds::default(),
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

    /// The message rate limits of a connection from `address` that the
    /// application serves itself (another protocol on the same server):
    /// the hub's per-connection rate, and the per-address one shared with
    /// every connection from that address, the hub's included.
    pub fn rate_limits(&self, address: Option<IpAddr>) -> ConnectionLimits<'_> {
        let config = &self.inner.config;
        ConnectionLimits::new(
            config.rate,
            config.rate_per_address,
            address,
            &self.inner.address_limiters,
        )
    }

    // ---- hooks ------------------------------------------------------------

    /// Handles a client event by name (like `socket.on("event", …)` in Socket.IO).
    ///
    /// Handlers run on the connection's task (its one task), in order of
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

    /// Runs when a connection has joined the hub (after `ready` is queued):
    /// the `open` event of other servers. Runs on the connection's task,
    /// before any of its messages is read; the socket may be sent to at once.
    pub fn on_connect<F: Fn(&Hub, &Socket) + Send + Sync + 'static>(&self, hook: F) {
        self.hooks_mut().connect.push(Arc::new(hook));
    }

    /// Runs when a connection has left the hub (it is in no room any more).
    /// [`Hub::on_close`] hooks, which see the close's code and reason, run
    /// right after these.
    pub fn on_disconnect<F: Fn(&Hub, &Socket) + Send + Sync + 'static>(&self, hook: F) {
        self.hooks_mut().disconnect.push(Arc::new(hook));
    }

    /// Sees every address-style message published on this node.
    pub fn on_address<F: Fn(&str, &[Value]) + Send + Sync + 'static>(&self, hook: F) {
        self.hooks_mut().address.push(Arc::new(hook));
    }

    /// Decides on upgrade requests (authentication, access control); the
    /// connection gets the metadata and may do everything. Replaces any
    /// authorizer set before, of either form.
    pub fn set_authorizer<F>(&self, authorizer: F)
    where
        F: Fn(&Request) -> Result<Meta, (u16, String)> + Send + Sync + 'static,
    {
        self.set_grant_authorizer(move |request| authorizer(request).map(Grant::with_meta));
    }

    /// Decides on upgrade requests with a [`Grant`]: name, metadata, the
    /// rooms the connection may join and send to, and when it expires.
    /// Replaces any authorizer set before, of either form.
    pub fn set_grant_authorizer<F>(&self, authorizer: F)
    where
        F: Fn(&Request) -> Result<Grant, (u16, String)> + Send + Sync + 'static,
    {
        self.hooks_mut().authorizer = Some(Arc::new(authorizer));
    }

    /// Checks the tokens clients send with `refresh` (the `refresh` request);
    /// without a refresher, `refresh` is answered `refresh_unavailable`.
    pub fn set_refresher<F>(&self, refresher: F)
    where
        F: Fn(&str) -> Result<Grant, RequestError> + Send + Sync + 'static,
    {
        self.hooks_mut().refresher = Some(Arc::new(refresher));
    }

    /// Runs the authorizer on an upgrade request and returns the metadata
    /// it gave; without one, accepts with empty metadata.
    pub fn authorize(&self, request: &Request) -> Result<Meta, (u16, String)> {
        self.authorize_grant(request).map(|grant| grant.meta)
    }

    /// Runs the authorizer on an upgrade request; without one, grants
    /// everything ([`Grant::default`]).
    pub fn authorize_grant(&self, request: &Request) -> Result<Grant, (u16, String)> {
        let authorizer = self.hooks().authorizer.clone();
        match authorizer {
            Some(authorizer) => authorizer(request),
            None => Ok(Grant::default()),
        }
    }

    pub(crate) fn refresher(&self) -> Option<Refresher> {
        self.hooks().refresher.clone()
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

    pub(crate) fn address_hooks(&self) -> Vec<AddressHook> {
        self.hooks().address.clone()
    }

    pub(crate) fn forward_hook(&self) -> Option<ForwardHook> {
        self.hooks().forward.clone()
    }

    pub(crate) fn hooks(&self) -> RwLockReadGuard<'_, Hooks> {
        self.inner.hooks.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn hooks_mut(&self) -> RwLockWriteGuard<'_, Hooks> {
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

    // ---- shutdown -----------------------------------------------------------

    /// Whether the hub is shutting down (new connections are refused).
    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::SeqCst)
    }

    /// Graceful shutdown: refuses new connections (503), sends `end` and then
    /// a 1001 close to every connection, and waits up to `timeout` for them to
    /// leave. Returns whether every connection left in time.
    ///
    /// A connection admitted just before (its 101 already on the way) gets
    /// the same `end` and 1001 as soon as it joins.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.closing.store(true, Ordering::SeqCst);
        for socket in self.sockets() {
            self.send_end(&socket);
        }
        tokio::time::timeout(timeout, self.wait_empty())
            .await
            .is_ok()
    }

    /// Sends `end` and a 1001 close to one connection, once.
    pub(crate) fn send_end(&self, socket: &Socket) {
        if socket.mark_ended() {
            let _ = socket.emit("end", &Value::Null);
            socket.close(CloseCode::GOING_AWAY, "server shutting down");
        }
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
