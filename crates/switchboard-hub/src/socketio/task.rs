//! The Socket.IO part of a connection's task: each message through the
//! connection's [`Reader`] before the hub dispatches it, and the
//! heartbeat's pings and timeout.

use bytes::Bytes;
use serde_json::Value;
use switchboard_net::{CloseCode, Cork, Message};
use switchboard_proto::frame::{encode_server_frame, OpCode};

use super::heartbeat::{Beat, Heartbeat};
use super::inbound::{Inbound, Reader};
use super::SocketIoProfile;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::observe::SocketError;
use crate::socket::Socket;

/// A Socket.IO connection's own state in its task (boxed there: a hub
/// connection that does not speak Socket.IO pays a pointer).
pub(crate) struct SocketIoTask {
    reader: Reader,
    heartbeat: Heartbeat,
    /// The close this state began (code and reason), once it has: kept
    /// here rather than in every connection's future.
    pub closed: Option<(u16, String)>,
}

/// What the task does after a message or a beat.
pub(crate) enum After {
    /// Go on.
    Continue,
    /// The hub's grant was replaced (a `refresh`): reset the deadline.
    Refreshed,
    /// The connection is closing, with this code and reason (already
    /// sent): what it still sends is not acted on, and the close is
    /// reported with these even if the client's own close frame crosses
    /// ours (a client that leaves sends DISCONNECT, then closes).
    Closing(u16, String),
}

impl SocketIoTask {
    pub fn new(profile: SocketIoProfile) -> Box<SocketIoTask> {
        let heartbeat = Heartbeat::new(profile.options.ping_interval, profile.options.ping_timeout);
        Box::new(SocketIoTask {
            reader: Reader::new(profile),
            heartbeat,
            closed: None,
        })
    }

    /// The CONNECT answer sent before the hub's `ready`.
    pub fn connected_frame(&self, id: &str) -> Bytes {
        self.reader.connected_frame(id)
    }

    /// Completes when the heartbeat fires.
    pub async fn beat(&mut self) -> Beat {
        self.heartbeat.fired().await
    }
}

impl Hub {
    /// Handles one message of a Socket.IO connection.
    pub(crate) fn socket_io_message(
        &self,
        task: &mut SocketIoTask,
        socket: &Socket,
        message: Message,
        cork: &mut Cork,
    ) -> After {
        let len = message.len();
        let metrics = &self.inner.metrics;
        Metrics::add(&metrics.messages_in, 1);
        Metrics::add(&metrics.bytes_in, len as u64);
        match task.reader.handle(message, socket.id().as_str()) {
            Inbound::Dispatch(value) => {
                if self.dispatch_value(socket, value, len, cork) {
                    return After::Refreshed;
                }
            }
            Inbound::Reply(frame) => {
                let _ = socket.send(frame, Some(cork));
            }
            Inbound::Joined { reply, notice } => {
                let _ = socket.send(reply, Some(cork));
                self.socket_io_notice(socket, notice, cork);
            }
            Inbound::Notice(notice) => self.socket_io_notice(socket, notice, cork),
            Inbound::Pong => task.heartbeat.pong(),
            Inbound::Nothing => {}
            Inbound::Close {
                clean: true,
                reason,
            } => {
                tracing::debug!(id = %socket.id(), %reason, "socket.io client left");
                socket.close(CloseCode::NORMAL, &reason);
                return After::Closing(CloseCode::NORMAL.0, reason);
            }
            Inbound::Close {
                clean: false,
                reason,
            } => {
                tracing::debug!(id = %socket.id(), %reason, "socket.io protocol error");
                let code = CloseCode::POLICY_VIOLATION;
                let error = SocketError::fatal("protocol_error", reason.clone(), code.0);
                self.report_error(socket, &error);
                socket.close(code, &reason);
                return After::Closing(code.0, reason);
            }
        }
        After::Continue
    }

    /// A namespace's `connect` or `disconnect`, for its handlers (a Rust
    /// hook on `/chat#connect`, or the event proxy): dispatched as the
    /// client's event when someone listens, dropped otherwise (the client
    /// did not send it, so an `unknown_event` would not be its error).
    fn socket_io_notice(&self, socket: &Socket, notice: Value, cork: &mut Cork) {
        let event = notice
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.event_handlers(event).is_empty() && socket.forward_queue().is_none() {
            return;
        }
        let _ = self.dispatch_value(socket, notice, 0, cork);
    }

    /// Acts on the heartbeat: a ping, or the close of a client that did
    /// not answer the last one.
    pub(crate) fn socket_io_beat(&self, socket: &Socket, beat: Beat) -> After {
        match beat {
            Beat::Ping => {
                let _ = socket.send(encode_server_frame(OpCode::Text, false, b"2"), None);
                After::Continue
            }
            Beat::TimedOut => {
                tracing::debug!(id = %socket.id(), "socket.io ping timeout");
                let reason = String::from("ping timeout");
                socket.close(CloseCode::NORMAL, &reason);
                After::Closing(CloseCode::NORMAL.0, reason)
            }
        }
    }
}
