//! What the hub does with each message a client sends.

use serde_json::{json, Value};
use switchboard_net::{Cork, Message};

use crate::access::{check_join, check_path, check_target};
use crate::envelope::{self, Codec, Outgoing, Request, RequestError, Target};
use crate::hub::{Context, Hub};
use crate::metrics::Metrics;
use crate::observe::SocketError;
use crate::socket::Socket;
use crate::subscriptions::TooManyWildcards;

impl Hub {
    /// Handles one message from a client. Every failure is answered with an
    /// `error` event (or the ack's `error`); the connection stays open.
    /// Relayed messages are written when `cork` is flushed. Returns whether
    /// the connection's grant was replaced (a `refresh`), so that the task
    /// resets its deadline.
    pub(crate) fn dispatch(&self, socket: &Socket, message: Message, cork: &mut Cork) -> bool {
        let metrics = &self.inner.metrics;
        let message_len = message.len();
        Metrics::add(&metrics.messages_in, 1);
        Metrics::add(&metrics.bytes_in, message_len as u64);
        let decoded = match (&message, socket.codec()) {
            (Message::Text(text), _) => Codec::Json.decode(text.as_bytes()),
            (Message::Binary(bytes), Codec::MsgPack) => Codec::MsgPack.decode(bytes),
            (Message::Binary(_), Codec::Json | Codec::SocketIo) => Err(String::from(
                "binary messages need the switchboard.msgpack subprotocol",
            )),
        };
        let value = match decoded {
            Ok(value) => value,
            Err(why) => {
                let code = if matches!(message, Message::Binary(_)) && socket.codec() == Codec::Json
                {
                    "binary_not_supported"
                } else {
                    "invalid_json"
                };
                self.reply_error(socket, None, &RequestError::new(code, why), cork);
                return false;
            }
        };
        self.dispatch_value(socket, value, message_len, cork)
    }

    /// Handles one decoded message of `message_len` bytes (counted in the
    /// metrics by the caller): what [`Hub::dispatch`] does after decoding,
    /// and what a Socket.IO connection's events go through.
    pub(crate) fn dispatch_value(
        &self,
        socket: &Socket,
        value: Value,
        message_len: usize,
        cork: &mut Cork,
    ) -> bool {
        match envelope::parse(value) {
            Ok(parsed) => {
                let Some(parsed) = self.take_forwarded(socket, parsed, message_len, cork) else {
                    return false;
                };
                let refresh = matches!(parsed.request, Request::Refresh(_));
                let result = self.handle(socket, parsed.request, cork);
                let refreshed = refresh && result.is_ok();
                match (result, parsed.ack) {
                    (Ok(data), Some(ack)) => self.reply_ack(socket, &ack, Ok(data), cork),
                    (Err(error), ack) => self.reply_error(socket, ack.as_ref(), &error, cork),
                    (Ok(_), None) => {}
                }
                refreshed
            }
            Err((error, ack)) => {
                self.reply_error(socket, ack.as_ref(), &error, cork);
                false
            }
        }
    }

    fn handle(
        &self,
        socket: &Socket,
        request: Request,
        cork: &mut Cork,
    ) -> Result<Value, RequestError> {
        match request {
            Request::Join(room) => {
                check_join(socket, &room)?;
                self.join(socket, &room)
            }
            Request::Leave(room) => self.leave(socket, &room),
            Request::Rename(name) => {
                self.rename(socket, name.clone());
                Ok(json!({ "name": name }))
            }
            Request::Users { room, after } => {
                if let Some(room) = &room {
                    check_join(socket, room)?;
                }
                Ok(Value::Array(self.users_after(
                    room.as_deref(),
                    after.as_deref(),
                    self.inner.config.userlist_limit,
                )))
            }
            Request::Subscribe(pattern) => {
                let limit = self.inner.config.max_subscriptions_per_connection;
                if socket.state().patterns.len() >= limit {
                    return Err(RequestError::new(
                        "too_many_subscriptions",
                        format!("at most {limit} subscriptions per connection"),
                    ));
                }
                let text = pattern.as_str().to_owned();
                self.registry_mut()
                    .subscribe(pattern, socket)
                    .map_err(|TooManyWildcards(max)| {
                        RequestError::new(
                            "too_many_patterns",
                            format!("the hub holds {max} different wildcard segments; subscribe to one already in use or to an exact address"),
                        )
                    })?;
                Ok(json!({ "pattern": text }))
            }
            Request::Unsubscribe(pattern) => {
                let existed = self.registry_mut().unsubscribe(&pattern, socket);
                Ok(json!({ "pattern": pattern, "existed": existed }))
            }
            Request::Event {
                event,
                data,
                target,
                echo,
            } => {
                check_target(socket, &target)?;
                self.handle_event(socket, &event, &data, &target, echo, cork)
            }
            Request::Refresh(token) => self.refresh(socket, &token),
            Request::StreamStart(target) => self.start_client_stream(socket, &target),
            Request::Address { path, values } => {
                check_path(socket, &path)?;
                let delivered = self.publish(&path, &values);
                Ok(json!({ "delivered": delivered }))
            }
        }
    }

    pub(crate) fn join(&self, socket: &Socket, room: &str) -> Result<Value, RequestError> {
        let limit = self.inner.config.max_rooms_per_connection;
        let (joined, size) = {
            let mut registry = self.registry_mut();
            if socket.state().rooms.len() >= limit && !socket.state().rooms.contains(room) {
                return Err(RequestError::new(
                    "too_many_rooms",
                    format!("at most {limit} rooms per connection"),
                ));
            }
            let joined = registry.join(room, socket).is_some();
            (joined, registry.room_size(room))
        };
        if joined {
            self.presence_changed(socket);
        }
        self.mark_dirty(room);
        let members = size + self.remote_room_size(room);
        Ok(json!({ "room": room, "members": members }))
    }

    /// Gives the connection a (checked) name; its rooms' lists follow.
    pub(crate) fn rename(&self, socket: &Socket, name: String) {
        socket.state().name = Some(name);
        for room in socket.rooms() {
            self.mark_dirty(&room);
        }
        self.presence_changed(socket);
        self.mark_hub_dirty();
    }

    pub(crate) fn leave(&self, socket: &Socket, room: &str) -> Result<Value, RequestError> {
        let (was_member, size) = {
            let mut registry = self.registry_mut();
            let was = registry.leave(room, socket);
            (was, registry.room_size(room))
        };
        if was_member {
            self.presence_changed(socket);
            self.mark_dirty(room);
        }
        let members = size + self.remote_room_size(room);
        Ok(json!({ "room": room, "members": members, "was_member": was_member }))
    }

    fn handle_event(
        &self,
        socket: &Socket,
        event: &str,
        data: &Value,
        target: &Target,
        echo: bool,
        cork: &mut Cork,
    ) -> Result<Value, RequestError> {
        let handlers = self.event_handlers(event);
        if handlers.is_empty() && *target == Target::Server {
            return Err(RequestError::new(
                "unknown_event",
                format!("no handler for \"{event}\"; address it to a room, a connection (\"to\") or everyone (\"broadcast\")"),
            ));
        }
        let context = Context {
            hub: self,
            socket,
            event,
            data,
            target,
        };
        let mut reply = Value::Null;
        for handler in &handlers {
            reply = handler(&context)?;
        }
        let delivered = self.relay(socket, event, data, target, echo, cork)?;
        if handlers.is_empty() {
            Ok(json!({ "delivered": delivered }))
        } else {
            Ok(reply)
        }
    }

    /// Answers a request's ack, after what the request relayed (through the
    /// same cork, so in order).
    fn reply_ack(
        &self,
        socket: &Socket,
        ack: &Value,
        result: Result<Value, &RequestError>,
        cork: &mut Cork,
    ) {
        let (data, error) = match result {
            Ok(data) => (data, None),
            Err(error) => (
                Value::Null,
                Some(json!({ "code": error.code, "message": error.message })),
            ),
        };
        let mut message = Outgoing::new("ack", &data);
        message.ack = Some(ack);
        message.error = error.as_ref();
        let _ = socket.send(socket.encoding().frame(&message), Some(cork));
    }

    /// Answers bad input: as the ack's error if the client asked for an
    /// ack (exactly one reply), else as an `error` event.
    pub(crate) fn reply_error(
        &self,
        socket: &Socket,
        ack: Option<&Value>,
        error: &RequestError,
        cork: &mut Cork,
    ) {
        Metrics::add(&self.inner.metrics.errors, 1);
        self.report_error(socket, &SocketError::refused(error));
        match ack {
            Some(ack) => self.reply_ack(socket, ack, Err(error), cork),
            None => {
                let data = json!({ "code": error.code, "message": error.message });
                let frame = socket.encoding().frame(&Outgoing::new("error", &data));
                let _ = socket.send(frame, Some(cork));
            }
        }
    }
}
