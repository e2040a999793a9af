//! Hooks that watch a connection's life beside its messages: the pongs it
//! sends, the errors the hub saw on it, and how it closed
//! ([`Hub::on_pong`], [`Hub::on_error`], [`Hub::on_close`]).
//!
//! Each runs on the connection's own task, like the event handlers: keep
//! them short, spawn for slow work.

use std::sync::Arc;

use serde_json::json;

use crate::forward::ForwardKind;
use crate::hub::Hub;
pub use crate::hub::{CloseHook, ErrorHook, PongHook};
use crate::socket::Socket;
pub use crate::socket_error::SocketError;

impl Hub {
    /// Runs when a connection sends a pong (the answer to the server's
    /// keepalive ping, or one it sent unasked), with its payload.
    pub fn on_pong<F: Fn(&Hub, &Socket, &[u8]) + Send + Sync + 'static>(&self, hook: F) {
        self.hooks_mut().pong.push(Arc::new(hook));
    }

    /// Runs for each error the hub sees on a connection ([`SocketError`]):
    /// a request refused with an error code (invalid JSON, a forbidden
    /// room, …; the client was told and stays connected), a protocol
    /// violation (the connection is closed with its RFC 6455 code: 1002,
    /// 1007, 1009), or its rate limit (closed with 1008).
    pub fn on_error<F: Fn(&Hub, &Socket, &SocketError) + Send + Sync + 'static>(&self, hook: F) {
        self.hooks_mut().error.push(Arc::new(hook));
    }

    /// Runs when a connection has left the hub, with its close code and
    /// reason: the peer's after a closing handshake (1005 when it gave
    /// none), the code the server closed it with, or 1006 and what broke
    /// when it just ended. Runs after the [`Hub::on_disconnect`] hooks.
    pub fn on_close<F: Fn(&Hub, &Socket, u16, &str) + Send + Sync + 'static>(&self, hook: F) {
        self.hooks_mut().close.push(Arc::new(hook));
    }

    pub(crate) fn run_pong_hooks(&self, socket: &Socket, payload: &[u8]) {
        let hooks = self.hooks().pong.clone();
        for hook in hooks {
            hook(self, socket, payload);
        }
    }

    /// Tells the error hooks, and the forwarder when it asked for `error`
    /// ([`Hub::forward_events`]).
    pub(crate) fn report_error(&self, socket: &Socket, error: &SocketError) {
        let hooks = self.hooks().error.clone();
        for hook in hooks {
            hook(self, socket, error);
        }
        if socket
            .forward_queue()
            .is_some_and(|queue| queue.wants("error"))
        {
            let mut data = json!({ "code": error.code, "message": error.message });
            if let Some(code) = error.close_code {
                data["close_code"] = json!(code);
            }
            self.queue_notice(socket, ForwardKind::Error, "error", data);
        }
    }

    pub(crate) fn run_close_hooks(&self, socket: &Socket, code: u16, reason: &str) {
        let hooks = self.hooks().close.clone();
        for hook in hooks {
            hook(self, socket, code, reason);
        }
    }
}
