//! [`App`]: what the connection tasks, the routes and the metrics read.

use std::sync::Arc;

use switchboard_hub::Hub;
use switchboard_net::{Config, MemoryBudget};
use tokio::sync::Semaphore;

use crate::bridge::Bridges;
use crate::cluster::Cluster;
use crate::settings::ServeSettings;

use super::rooms::Rooms;
use super::slots::Slots;
use super::tls::Tls;

/// Everything a connection task needs.
pub struct App {
    pub hub: Hub,
    pub settings: ServeSettings,
    pub net: Config,
    /// Places for `/echo` connections (`max_echo_connections`); the hub
    /// counts its own (`max_connections`).
    pub echo_permits: Arc<Semaphore>,
    /// Places for TCP connections in their handshake (`max_handshakes`,
    /// `max_handshakes_per_ip`).
    pub handshakes: Arc<Slots>,
    /// Places for connections from one address (`max_connections_per_ip`).
    pub connections_per_ip: Arc<Slots>,
    /// The bytes all connections may hold in partial messages and queued
    /// output (`memory_budget`); shared with `net`.
    pub memory: MemoryBudget,
    pub started: std::time::Instant,
    /// ZeroMQ and OSC endpoints, opened by `run` from `settings.bridge`.
    pub bridges: Bridges,
    /// The link to the other nodes, with `--redis`.
    pub cluster: Option<Cluster>,
    /// With `--tls-cert`: every connection starts with a TLS handshake.
    pub tls: Option<Arc<Tls>>,
    /// With `--connect-proxy`: the backend that decides on /ws upgrades.
    pub connect_proxy: Option<super::connect_proxy::ConnectProxy>,
    /// With `--event-proxy`: the hub's forwarder (for its metrics).
    pub event_proxy: Option<Arc<super::event_proxy::EventProxy>>,
    /// The rooms of the `rooms` endpoints (Espruino's protocol).
    pub rooms: Rooms,
    /// Socket.IO, unless `socketio_path` is empty.
    pub socket_io: Option<super::socketio::SocketIo>,
    /// Places for streamed publishes (`POST /api/publish?room=…`), as
    /// many as `max_streams`.
    pub http_streams: Arc<Semaphore>,
}

impl App {
    /// WebSocket connections admitted and not yet gone, hub and echo.
    pub fn websockets(&self) -> usize {
        let echo_max = self
            .settings
            .max_echo_connections
            .min(Semaphore::MAX_PERMITS);
        self.hub.admitted() + echo_max - self.echo_permits.available_permits()
    }
}
