//! What the hub does with each message a client sends.

use serde_json::{json, Value};
use switchboard_net::{Cork, Message};

use crate::access::{check_join, check_path, check_target};
use crate::envelope::{self, Codec, Outgoing, Request, RequestError, Target};
use crate::history::{Relay, Since};
use crate::hub::{Context, Hub};
use crate::metrics::Metrics;
use crate::observe::SocketError;
use crate::socket::Socket;
use crate::subscriptions::TooManyWildcards;

/// How a request is answered.
pub(crate) enum Answer {
    /// With this ack data, now.
    Now(Value),
    /// Later, by the task or store that does the work.
    Later,
}

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
                let result = self.handle(socket, parsed.request, parsed.ack.as_ref(), cork);
                let refreshed = refresh && result.is_ok();
                match (result, parsed.ack) {
                    (Ok(Answer::Now(data)), Some(ack)) => {
                        self.reply_ack(socket, &ack, Ok(data), cork)
                    }
                    (Err(error), ack) => self.reply_error(socket, ack.as_ref(), &error, cork),
                    (Ok(_), _) => {}
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
        ack: Option<&Value>,
        cork: &mut Cork,
    ) -> Result<Answer, RequestError> {
        match request {
            Request::Join(room) => self.join_request(socket, &room, None, ack),
            Request::Recover { room, since } => self.join_request(socket, &room, Some(since), ack),
            Request::History { room, after, limit } => {
                check_join(socket, &room)?;
                if self.history_rule(&room).is_none() {
                    return Err(RequestError::new(
                        "no_history",
                        format!("the room {room:?} keeps no history"),
                    ));
                }
                self.history_request(socket, room, after, limit, ack.cloned());
                Ok(Answer::Later)
            }
            Request::Received(offsets) => {
                self.acknowledge(socket, &offsets);
                Ok(Answer::Now(Value::Null))
            }
            Request::Leave(room) => self.leave(socket, &room).map(Answer::Now),
            Request::Rename(name) => {
                self.rename(socket, name.clone());
                Ok(Answer::Now(json!({ "name": name })))
            }
            Request::Users { room, after } => {
                if let Some(room) = &room {
                    check_join(socket, room)?;
                }
                Ok(Answer::Now(Value::Array(self.users_after(
                    room.as_deref(),
                    after.as_deref(),
                    self.inner.config.userlist_limit,
                ))))
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
                Ok(Answer::Now(json!({ "pattern": text })))
            }
            Request::Unsubscribe(pattern) => {
                let existed = self.registry_mut().unsubscribe(&pattern, socket);
                Ok(Answer::Now(
                    json!({ "pattern": pattern, "existed": existed }),
                ))
            }
            Request::Event {
                event,
                data,
                target,
                echo,
            } => {
                check_target(socket, &target)?;
                let context = Context {
                    hub: self,
                    socket,
                    event: &event,
                    data: &data,
                    target: &target,
                };
                self.handle_event(context, echo, ack, cork)
            }
            Request::Refresh(token) => self.refresh(socket, &token).map(Answer::Now),
            Request::StreamStart(target) => {
                self.start_client_stream(socket, &target).map(Answer::Now)
            }
            Request::Address { path, values } => {
                check_path(socket, &path)?;
                let delivered = self.publish(&path, &values);
                Ok(Answer::Now(json!({ "delivered": delivered })))
            }
        }
    }

    /// A client's `join`: a room with history is answered once the
    /// connection is in its feed, after what it missed since `since`.
    fn join_request(
        &self,
        socket: &Socket,
        room: &str,
        since: Option<Since>,
        ack: Option<&Value>,
    ) -> Result<Answer, RequestError> {
        check_join(socket, room)?;
        if self.history_rule(room).is_none() {
            return self.join(socket, room).map(Answer::Now);
        }
        self.join_with_history(socket, room, since, ack.cloned())?;
        Ok(Answer::Later)
    }

    /// Puts a connection in a room (a room with history: in its feed,
    /// taking what comes after the feed's last message).
    pub(crate) fn join(&self, socket: &Socket, room: &str) -> Result<Value, RequestError> {
        self.join_gated(socket, room, false)
    }

    /// Puts a connection in a room; in a room with history, `gated` keeps
    /// its messages aside for a replay to send.
    pub(crate) fn join_gated(
        &self,
        socket: &Socket,
        room: &str,
        gated: bool,
    ) -> Result<Value, RequestError> {
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
        if joined && self.history_rule(room).is_some() {
            let feed = self.feed(room);
            crate::history::lock(&feed).add(socket, gated);
        }
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
            self.leave_feed(socket, room);
        }
        if was_member {
            self.presence_changed(socket);
            self.mark_dirty(room);
        }
        let members = size + self.remote_room_size(room);
        Ok(json!({ "room": room, "members": members, "was_member": was_member }))
    }

    /// Runs a client event's handlers, then relays it to its target.
    fn handle_event(
        &self,
        context: Context<'_>,
        echo: bool,
        ack: Option<&Value>,
        cork: &mut Cork,
    ) -> Result<Answer, RequestError> {
        let Context {
            socket,
            event,
            data,
            target,
            ..
        } = context;
        let handlers = self.event_handlers(event);
        if handlers.is_empty() && *target == Target::Server {
            return Err(RequestError::new(
                "unknown_event",
                format!("no handler for \"{event}\"; address it to a room, a connection (\"to\") or everyone (\"broadcast\")"),
            ));
        }
        let mut reply = Value::Null;
        for handler in &handlers {
            reply = handler(&context)?;
        }
        let reply = (!handlers.is_empty()).then_some(reply);
        if let Target::Room(room) = target {
            if let Some(rule) = self.history_rule(room) {
                let relay = Relay {
                    from: socket,
                    event,
                    data,
                    room,
                    echo,
                };
                return self.relay_history(relay, rule, reply, ack, cork);
            }
        }
        let delivered = self.relay(socket, event, data, target, echo, cork)?;
        Ok(Answer::Now(
            reply.unwrap_or_else(|| json!({ "delivered": delivered })),
        ))
    }

    /// Answers a request outside the dispatch (a replay, a store's
    /// answer): its ack, or an `error` event for a failure without one.
    pub(crate) fn answer(
        &self,
        socket: &Socket,
        ack: Option<&Value>,
        result: Result<Value, RequestError>,
    ) {
        let mut cork = Cork::default();
        match (result, ack) {
            (Ok(data), Some(ack)) => self.reply_ack(socket, ack, Ok(data), &mut cork),
            (Ok(_), None) => {}
            (Err(error), ack) => self.reply_error(socket, ack, &error, &mut cork),
        }
        cork.flush();
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
