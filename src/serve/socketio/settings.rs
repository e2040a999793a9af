//! Socket.IO as `serve` is configured for it: its path, the options of
//! its connections and the table of long-polling sessions.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_hub::socketio::SocketIoOptions;

use super::sessions::Sessions;
use crate::settings::ServeSettings;

/// Socket.IO as `serve` is configured for it.
pub struct SocketIo {
    /// The path prefix, `/socket.io/`.
    pub path: String,
    pub options: SocketIoOptions,
    /// Engine.IO's `maxPayload`: bytes of one polling body.
    pub max_payload: usize,
    /// The open long-polling sessions.
    pub polling: Sessions,
}

impl SocketIo {
    /// Socket.IO as the settings want it; `None` when it is turned off.
    pub fn from_settings(settings: &ServeSettings) -> Option<SocketIo> {
        if settings.socketio_path.is_empty() {
            return None;
        }
        let mut options = SocketIoOptions::default();
        options.ping_interval = Duration::from_secs_f64(settings.socketio_ping_interval);
        options.ping_timeout = Duration::from_secs_f64(settings.socketio_ping_timeout);
        options.max_namespaces = settings.socketio_max_namespaces;
        options.max_attachments = settings.socketio_max_attachments;
        if !settings.socketio_namespaces.is_empty() {
            options.namespaces = Some(Arc::from(settings.socketio_namespaces.clone()));
        }
        // Sessions waiting for their CONNECT count among the handshakes,
        // admitted ones among the hub's connections.
        let max_sessions = settings.max_connections + settings.max_handshakes;
        Some(SocketIo {
            path: settings.socketio_path.clone(),
            options,
            max_payload: settings.socketio_max_payload,
            polling: Sessions::new(max_sessions),
        })
    }

    /// Whether a request is for Engine.IO (`/socket.io/` and `/socket.io`).
    pub fn is_path(&self, path: &str) -> bool {
        path == self.path || Some(path) == self.path.strip_suffix('/')
    }

    /// The Engine.IO `open` packet of a new session.
    pub fn open_packet(&self, sid: &str, upgrades: &[&str]) -> String {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let open = json!({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": millis(self.options.ping_interval),
            "pingTimeout": millis(self.options.ping_timeout),
            "maxPayload": self.max_payload,
        });
        format!("0{open}")
    }
}
