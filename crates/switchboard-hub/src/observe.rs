//! Hooks that watch a connection's life beside its messages: the pongs it
//! sends, the errors the hub saw on it, and how it closed
//! ([`Hub::on_pong`], [`Hub::on_error`], [`Hub::on_close`]).
//!
//! Each runs on the connection's own task, like the event handlers: keep
//! them short, spawn for slow work.

use std::sync::Arc;

use serde_json::json;

use crate::envelope::RequestError;
use crate::forward::ForwardKind;
use crate::hub::Hub;
use crate::socket::Socket;

/// Called with a connection and the payload of a pong it sent.
pub type PongHook = Arc<dyn Fn(&Hub, &Socket, &[u8]) + Send + Sync>;
/// Called with a connection and an error the hub saw on it.
pub type ErrorHook = Arc<dyn Fn(&Hub, &Socket, &SocketError) + Send + Sync>;
/// Called with a connection that left, its close code and reason.
pub type CloseHook = Arc<dyn Fn(&Hub, &Socket, u16, &str) + Send + Sync>;

/// An error the hub saw on a connection: a request it refused (the client
/// was answered with an `error` event or the ack's error, and the
/// connection stays open), or a fault that closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketError {
    /// What went wrong, machine-readable: a protocol error code as the
    /// client got it (`invalid_json`, `forbidden`, …), `protocol_error`
    /// (the peer broke RFC 6455), `rate_limited`.
    pub code: String,
    /// For people.
    pub message: String,
    /// The close code the connection is closed with, when it is.
    pub close_code: Option<u16>,
}

impl SocketError {
    /// A refused request; the connection stays open.
    pub(crate) fn refused(error: &RequestError) -> SocketError {
        SocketError {
            code: error.code.to_string(),
            message: error.message.clone(),
            close_code: None,
        }
    }

    /// A fault that closes the connection with `close_code`.
    pub(crate) fn fatal(code: &str, message: String, close_code: u16) -> SocketError {
        SocketError {
            code: code.to_owned(),
            message,
            close_code: Some(close_code),
        }
    }
}

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(code) = self.close_code {
            write!(f, " (closed with {code})")?;
        }
        Ok(())
    }
}

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
            self.queue_notice(socket, ForwardKind::Error, data);
        }
    }

    pub(crate) fn run_close_hooks(&self, socket: &Socket, code: u16, reason: &str) {
        let hooks = self.hooks().close.clone();
        for hook in hooks {
            hook(self, socket, code, reason);
        }
    }
}
