//! Socket.IO v5 over Engine.IO v4 on the WebSocket transport: a Socket.IO
//! connection is an ordinary hub connection whose frames are encoded and
//! read differently (docs/SOCKETIO.md).
//!
//! - [`packet`]: Engine.IO and Socket.IO packets as text, no state.
//! - [`binary`]: attachments and their placeholders, held in the hub's
//!   JSON as `{"$binary":"<base64>"}`.
//! - [`mapping`]: hub messages to packets and back.
//! - `inbound`: what the connection's task does with each frame the
//!   client sends (namespaces, attachments, pongs), before the hub
//!   dispatches its events; `heartbeat`, the server's pings; `task`, both
//!   in the connection's one task.
//!
//! The Engine.IO `open` packet and the first namespace's CONNECT (with its
//! `auth`, which decides on the connection) come before the hub connection
//! exists: the server does them on the WebSocket, then admits the
//! connection with [`Admission::socket_io`](crate::Admission::socket_io).

pub mod binary;
pub(crate) mod heartbeat;
pub(crate) mod inbound;
pub mod mapping;
pub mod packet;
pub(crate) mod task;

use std::sync::Arc;
use std::time::Duration;

/// How a Socket.IO connection behaves, chosen by the endpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SocketIoOptions {
    /// Between the server's pings. Default: 25 s (Socket.IO's).
    pub ping_interval: Duration,
    /// For the client's pong, past which the connection is closed.
    /// Default: 20 s (Socket.IO's).
    pub ping_timeout: Duration,
    /// Namespaces one connection may join, the first included. Default: 8.
    pub max_namespaces: usize,
    /// Binary attachments in one packet. Default: 10.
    pub max_attachments: usize,
    /// The namespaces that exist; `None` (the default) accepts any.
    pub namespaces: Option<Arc<[String]>>,
}

impl Default for SocketIoOptions {
    fn default() -> Self {
        SocketIoOptions {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_namespaces: 8,
            max_attachments: 10,
            namespaces: None,
        }
    }
}

impl SocketIoOptions {
    /// Whether the namespace `nsp` exists.
    pub fn has_namespace(&self, nsp: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|list| list.iter().any(|n| n == nsp))
    }
}

/// What a Socket.IO connection carries from its admission into the hub.
#[derive(Debug, Clone)]
pub(crate) struct SocketIoProfile {
    pub options: SocketIoOptions,
    /// The namespace of the CONNECT that opened it.
    pub namespace: String,
}
