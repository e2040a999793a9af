//! One connection's life in the hub: join, read and dispatch, leave. One
//! task does all of it: it owns the connection's [`Session`], which reads,
//! keeps the timers and writes what other tasks could not write at once.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use serde_json::json;
use switchboard_net::{Accepted, CloseCause, CloseCode, Cork, Event, Session};
use tokio::sync::OwnedSemaphorePermit;

use crate::admission::Admission;
use crate::envelope::{self, Codec, Encoding};
use crate::expiry::Deadline;
use crate::forward::Connection;
use crate::hub::Hub;
use crate::id::ConnId;
use crate::metrics::Metrics;
use crate::observe::SocketError;
use crate::pattern::Pattern;
use crate::socket::{Socket, SocketParts};
use crate::socketio::heartbeat::Beat;
use crate::socketio::task::{After, SocketIoTask};
use crate::stream::Incoming;

impl Hub {
    /// Runs an accepted connection in the hub until it closes: sends `ready`,
    /// dispatches its messages, and removes it from its rooms at the end.
    /// The task that awaits this is the connection's only task.
    ///
    /// The name comes from the authorizer's [`Grant`](crate::Grant), or
    /// else from the `name` query parameter of the upgrade request
    /// (`/ws?name=alice`). The connect hooks run after `ready` is
    /// queued, before any message of the client is read; the disconnect
    /// hooks once the connection has left every room, then the close hooks.
    ///
    /// The setup runs before the returned future is first polled, so that
    /// the future holds only what the connection needs for its life (an
    /// idle connection costs a few KiB).
    pub fn serve(
        &self,
        accepted: Accepted<Admission>,
        remote: Option<SocketAddr>,
    ) -> impl Future<Output = ()> + Send + '_ {
        let (mut session, socket, permit, answer, socket_io) = self.open(accepted, remote);
        // Used in place, not moved into a local: a move would hold the
        // session twice in the future.
        async move {
            let close = self
                .run(&mut session, &socket, answer.as_deref(), socket_io)
                .await;
            self.close_out(socket, close);
            // The close reply (or our close frame) is written and the stream
            // shut down, within the close timeout.
            while session.next_event().await.is_ok() {}
            // The connection's place under `max_connections`, given back last.
            drop(permit);
        }
    }

    /// Takes a closed connection out of the hub: its stream, rooms and
    /// presence, then the close hooks and the forwarder's `disconnect`.
    /// Not inline in [`Hub::serve`]'s future: what it uses would take room
    /// there for the connection's whole life.
    fn close_out(&self, socket: Socket, close: (u16, String)) {
        self.drop_stream(&socket);
        let last = socket.forward_queue().map(|_| Connection::of(&socket));
        self.remove(&socket);
        self.run_close_hooks(&socket, close.0, &close.1);
        if let Some(last) = last {
            self.forward_disconnect(&socket, last, close);
        }
    }

    /// Turns an accepted connection into a session and a socket in the hub.
    fn open(
        &self,
        accepted: Accepted<Admission>,
        remote: Option<SocketAddr>,
    ) -> (
        Session,
        Socket,
        OwnedSemaphorePermit,
        Option<Box<Bytes>>,
        Option<Box<SocketIoTask>>,
    ) {
        let config = &self.inner.config;
        let (mut session, parts) =
            accepted.into_session(config.queue_len, config.max_pending_send_bytes);
        let (grant, permit, endpoint) = parts.admission.into_parts();
        let (identity, join, rights) = grant.into_parts();
        // The request (its headers) is not kept for the connection's life.
        // A name the authorizer gave wins over the one the client asked for.
        let name = identity.name.or_else(|| parts.request.query_param("name"));
        // `?acks=1`: the client acknowledges the room messages it processed.
        let acks = parts
            .request
            .query_param("acks")
            .is_some_and(|value| matches!(value.as_str(), "1" | "true"));
        let (name, name_error) = match name.map(|name| envelope::user_name(&name)) {
            Some(Ok(name)) => (Some(name), None),
            Some(Err(error)) => (None, Some(error)),
            None => (None, None),
        };
        let socket_io = endpoint
            .socket_io
            .map(|profile| SocketIoTask::new(*profile));
        // Socket.IO frames are sent plain: a client's compressed frames are
        // still read, and an attachment after its packet is a frame apart.
        let encoding = match socket_io {
            Some(_) => Encoding {
                codec: Codec::SocketIo,
                deflate: None,
            },
            None => Encoding {
                codec: Codec::from_protocol(parts.protocol.as_deref()),
                deflate: parts.deflate,
            },
        };
        // On a JSON connection a binary message is a stream (or refused):
        // its fragments are taken as they come, never assembled.
        if encoding.codec == Codec::Json && config.max_streams > 0 {
            session.set_binary_streaming(Some(config.max_stream_size));
        }
        let (forward, worker) = self.forward_queue().unzip();
        let socket = Socket::new(SocketParts {
            id: ConnId::random(),
            encoding,
            outbox: session.outbox().clone(),
            policy: config.slow_consumer,
            metrics: self.inner.metrics.clone(),
            meta: identity.meta,
            profile: identity.profile,
            forward,
            remote,
            name,
            rights,
        });
        socket.state().acks = acks;
        let connected = socket_io
            .as_ref()
            .map(|task| task.connected_frame(socket.id().as_str()));
        self.join_hub(
            &socket,
            connected,
            name_error,
            &join,
            endpoint.subscriptions,
        );
        if let Some(worker) = worker {
            self.start_forwarding(&socket, worker);
        }
        // Encoded once for the connection's life, and boxed: few endpoints
        // answer, and every connection's future would keep room for it.
        let answer = endpoint
            .answer
            .map(|answer| Box::new(encoding.frame(&answer)));
        (session, socket, permit, answer, socket_io)
    }

    /// Enters the connection in the hub with its endpoint's subscriptions
    /// and the rooms its grant joins it to, all before `ready` (which lists
    /// those rooms, when there are): once a client has its `ready`, every
    /// message published to it is delivered. `connected`, a Socket.IO
    /// connection's CONNECT answer, goes before everything else.
    fn join_hub(
        &self,
        socket: &Socket,
        connected: Option<Bytes>,
        name_error: Option<envelope::RequestError>,
        join: &[String],
        subscriptions: Vec<Pattern>,
    ) {
        if let Some(frame) = connected {
            let _ = socket.send(frame, None);
        }
        {
            let mut registry = self.registry_mut();
            registry.insert(socket.clone());
            for pattern in subscriptions {
                if let Err(error) = registry.subscribe(pattern, socket) {
                    tracing::warn!(id = %socket.id(), max = error.0, "endpoint subscription refused");
                }
            }
        }
        self.presence_changed(socket);
        self.mark_hub_dirty();
        Metrics::add(&self.inner.metrics.connections_opened, 1);
        tracing::debug!(id = %socket.id(), remote = ?socket.remote_addr(), "connected");
        for room in join {
            let joined = envelope::room_name(Some(room)).and_then(|room| self.join(socket, &room));
            if let Err(error) = joined {
                tracing::debug!(id = %socket.id(), %room, code = error.code, "granted room not joined");
            }
        }
        let mut ready = json!({ "id": socket.id().as_str(), "name": socket.name() });
        if !join.is_empty() {
            ready["rooms"] = json!(socket.rooms());
        }
        let _ = socket.emit("ready", &ready);
        if let Some(error) = name_error {
            let _ = socket.emit(
                "error",
                &json!({ "code": error.code, "message": error.message }),
            );
        }
        self.run_connect_hooks(socket);
        // A shutdown that began while this connection was being admitted
        // did not see it in the registry; it gets its `end` here.
        if self.is_closing() {
            self.send_end(socket);
        }
    }

    /// Reads and dispatches until the connection closes. What the messages
    /// of one read fan out is written once they are all dispatched: one
    /// write per recipient per batch.
    ///
    /// When the grant's deadline passes, the connection is told and closed
    /// (4001); what it sends after that is read but not acted on, until its
    /// close completes. A `refresh` moves the deadline. Waiting on the
    /// deadline beside the read loses nothing: the read is cancel-safe; a
    /// connection without one waits on the read alone.
    /// `answer`, if its endpoint set one, follows the handling of each
    /// message ([`Admission::answer_each_message`]). A Socket.IO
    /// connection's messages go through its `socket_io` state first, and
    /// its heartbeat is waited on beside the read (cancel-safe likewise).
    ///
    /// Returns the close's code and reason (1006 and the error when the
    /// connection just ended).
    async fn run(
        &self,
        session: &mut Session,
        socket: &Socket,
        answer: Option<&Bytes>,
        mut socket_io: Option<Box<SocketIoTask>>,
    ) -> (u16, String) {
        let mut cork = Cork::default();
        let mut limits = self.rate_limits(socket.remote_addr().map(|a| a.ip()));
        let mut deadline = Deadline::of(socket);
        // Once expired or over its rate, the connection is closing: what it
        // still sends is not dispatched.
        let mut closing = false;
        let mut incoming = Incoming::Idle;
        loop {
            let beating = socket_io.is_some() && !closing;
            let event = if deadline.is_set() || beating {
                tokio::select! {
                    event = session.next_event_corked(&mut cork) => event,
                    () = deadline.passed(), if deadline.is_set() => {
                        self.expire(socket);
                        (deadline, closing) = (Deadline::none(), true);
                        continue;
                    }
                    beat = heartbeat(&mut socket_io), if beating => {
                        if let After::Closing(code, reason) = self.socket_io_beat(socket, beat) {
                            closing = true;
                            if let Some(task) = socket_io.as_mut() {
                                task.closed = Some((code, reason));
                            }
                        }
                        continue;
                    }
                }
            } else {
                session.next_event_corked(&mut cork).await
            };
            match event {
                Ok(Event::Message(_)) if closing => {}
                Ok(Event::Message(message)) if !limits.allow(message.len()) => {
                    closing = true;
                    self.over_rate(socket);
                }
                Ok(Event::Message(message)) if socket_io.is_some() => {
                    let Some(task) = socket_io.as_mut() else {
                        continue;
                    };
                    match self.socket_io_message(task, socket, message, &mut cork) {
                        After::Continue => {}
                        After::Refreshed => deadline = Deadline::of(socket),
                        After::Closing(code, reason) => {
                            closing = true;
                            task.closed = Some((code, reason));
                        }
                    }
                }
                Ok(Event::Message(message)) => {
                    if self.dispatch(socket, message, &mut cork) {
                        deadline = Deadline::of(socket);
                    }
                    if let Some(answer) = answer {
                        let _ = socket.send(answer.clone(), Some(&mut cork));
                    }
                }
                Ok(Event::Fragment(_)) if closing => {}
                Ok(Event::Fragment(fragment)) if !limits.allow(fragment.payload.len()) => {
                    closing = true;
                    self.over_rate(socket);
                }
                Ok(Event::Fragment(fragment)) => {
                    self.stream_fragment(socket, fragment, &mut incoming, &mut cork);
                }
                Ok(Event::Pong(payload)) => self.run_pong_hooks(socket, &payload),
                Ok(Event::Closed(info)) => {
                    tracing::debug!(id = %socket.id(), code = %info.code(), cause = ?info.cause, "closed");
                    if let CloseCause::Protocol(error) = &info.cause {
                        let error =
                            SocketError::fatal("protocol_error", error.to_string(), info.code().0);
                        self.report_error(socket, &error);
                    }
                    if let Some(ours) = socket_io.as_mut().and_then(|task| task.closed.take()) {
                        return ours;
                    }
                    let frame = info.received.as_ref().or(info.sent.as_ref());
                    let reason = frame.map(|frame| frame.reason.clone()).unwrap_or_default();
                    return (info.code().0, reason);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(id = %socket.id(), %error, "connection ended");
                    return (CloseCode::ABNORMAL.0, error.to_string());
                }
            }
        }
    }

    /// Closes a connection over its rate limit (1008).
    fn over_rate(&self, socket: &Socket) {
        Metrics::add(&self.inner.metrics.rate_limited, 1);
        tracing::debug!(id = %socket.id(), "rate limit exceeded");
        let code = CloseCode::POLICY_VIOLATION;
        socket.close(code, "rate limit exceeded");
        let why = "rate limit exceeded".to_owned();
        self.report_error(socket, &SocketError::fatal("rate_limited", why, code.0));
    }

    fn remove(&self, socket: &Socket) {
        let rooms = self.registry_mut().remove(socket);
        for room in &rooms {
            self.leave_feed(socket, room);
        }
        self.presence_removed(socket);
        self.mark_hub_dirty();
        for room in &rooms {
            self.mark_dirty(room);
        }
        Metrics::add(&self.inner.metrics.connections_closed, 1);
        self.run_disconnect_hooks(socket);
        self.notify_if_empty();
    }
}

/// A Socket.IO connection's next heartbeat; never for another connection.
async fn heartbeat(socket_io: &mut Option<Box<SocketIoTask>>) -> Beat {
    match socket_io {
        Some(task) => task.beat().await,
        None => std::future::pending().await,
    }
}
