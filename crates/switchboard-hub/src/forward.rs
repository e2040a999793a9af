//! Events that nothing on this node handles, handed to an asynchronous
//! forwarder (the server's event proxy), with the connection's `connect`
//! and `disconnect`.
//!
//! The connection's own task never waits for the forwarder: it puts the
//! event in the connection's forward queue and reads on. One worker task
//! per connection (started only when a forwarder is set) takes the queue
//! in order, awaits the forwarder for each event, and delivers its answer:
//! the `emit` entries through the hub's routing, then the ack. So the
//! answers of one connection come in the order of its events, and a slow
//! backend holds up no one else's. At most
//! [`max_forward_queue`](crate::HubConfig::max_forward_queue) events of one
//! connection wait; past that an event is refused at once (`proxy_busy`).
//! The queue's first entry is `connect` (after `ready`), its last
//! `disconnect` (after the close), which ends the worker. Between them,
//! when the forwarder asked for them (`"error"` among
//! [`Hub::forward_events`]), the errors the hub saw on the connection, in
//! the same queue and under the same bound (dropped past it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_net::Cork;
use tokio::sync::mpsc;

use crate::envelope::{self, Outgoing, Parsed, Request, RequestError, Target};
pub use crate::forwarder::{
    Connection, Emit, EmitTarget, Forward, ForwardError, ForwardFuture, ForwardKind, ForwardReply,
    Forwarder, PROXY_BUSY,
};
use crate::forwarder::{ForwardHook, ForwardQueue, Job};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::socket::Socket;

impl Connection {
    /// The connection's state now.
    pub fn of(socket: &Socket) -> Connection {
        let meta = match socket.profile() {
            Some(profile) => profile.clone(),
            None => json!(socket.meta()),
        };
        Connection {
            id: socket.id().as_str().to_owned(),
            name: socket.name(),
            meta,
            rooms: socket.rooms(),
        }
    }
}

impl Hub {
    /// Hands every client event that no handler takes and that is
    /// addressed to no one (otherwise `unknown_event`), and each
    /// connection's `connect` and `disconnect`, to `forwarder`, off the
    /// connection's task; see the module documentation of the order and
    /// the bounds. Set it before serving: connections that joined before
    /// are not forwarded. Replaces any forwarder set before.
    pub fn set_forwarder<F>(&self, forwarder: F)
    where
        F: Fn(Forward) -> ForwardFuture + Send + Sync + 'static,
    {
        let mut hooks = self.hooks_mut();
        let always = hooks
            .forward
            .as_ref()
            .map(|hook| hook.always.clone())
            .unwrap_or_default();
        hooks.forward = Some(ForwardHook {
            forwarder: Arc::new(forwarder),
            always,
        });
    }

    /// Events that go to the forwarder even when addressed to a room, a
    /// connection or everyone (after the connection's rights are checked),
    /// so that the backend can check or rewrite them; the hub relays them
    /// only through the reply's `emit`. Needs [`Hub::set_forwarder`] first.
    ///
    /// `"error"` (which no client may send) asks for the errors the hub
    /// sees on each connection, as [`ForwardKind::Error`].
    pub fn forward_events<I: IntoIterator<Item = String>>(&self, events: I) {
        if let Some(hook) = self.hooks_mut().forward.as_mut() {
            hook.always = Arc::new(events.into_iter().collect());
        }
    }

    /// A forward queue and its worker for a new connection, if a forwarder
    /// is set: the queue goes into the socket, the worker is started with
    /// [`Hub::start_forwarding`].
    pub(crate) fn forward_queue(&self) -> Option<(ForwardQueue, Worker)> {
        let hook = self.forward_hook()?;
        let (jobs, receiver) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let waiting_bytes = Arc::new(AtomicUsize::new(0));
        let queue = ForwardQueue {
            jobs,
            waiting: waiting.clone(),
            waiting_bytes: waiting_bytes.clone(),
            always: hook.always,
        };
        let worker = Worker {
            forwarder: hook.forwarder,
            jobs: receiver,
            waiting,
            waiting_bytes,
        };
        Some((queue, worker))
    }

    /// Starts a connection's worker and queues its `connect`.
    pub(crate) fn start_forwarding(&self, socket: &Socket, worker: Worker) {
        tokio::spawn(worker.run(self.clone(), socket.clone()));
        self.queue_builtin(
            socket,
            ForwardKind::Connect,
            "connect",
            Value::Null,
            Connection::of(socket),
        );
    }

    /// Queues a connection's `disconnect`, with its last state.
    pub(crate) fn forward_disconnect(
        &self,
        socket: &Socket,
        last: Connection,
        close: (u16, String),
    ) {
        let data = json!({ "code": close.0, "reason": close.1 });
        self.queue_builtin(socket, ForwardKind::Disconnect, "disconnect", data, last);
    }

    fn queue_builtin(
        &self,
        socket: &Socket,
        kind: ForwardKind,
        event: &str,
        data: Value,
        connection: Connection,
    ) {
        let Some(queue) = socket.forward_queue() else {
            return;
        };
        let forward = Forward {
            kind,
            connection,
            event: event.to_owned(),
            data,
            target: Target::Server,
        };
        let _ = queue.jobs.send(Job {
            forward,
            ack: None,
            bytes: 0,
        });
    }

    /// Queues a notice (an error, a stream's start or end) named `event`
    /// for the forwarder, under the connection's bound; one past it is
    /// dropped.
    pub(crate) fn queue_notice(
        &self,
        socket: &Socket,
        kind: ForwardKind,
        event: &str,
        data: Value,
    ) {
        let Some(queue) = socket.forward_queue() else {
            return;
        };
        let limit = self.inner.config.max_forward_queue;
        if queue.waiting.fetch_add(1, Ordering::AcqRel) >= limit {
            queue.waiting.fetch_sub(1, Ordering::AcqRel);
            Metrics::add(&self.inner.metrics.forward_busy, 1);
            return;
        }
        self.queue_builtin(socket, kind, event, data, Connection::of(socket));
    }

    /// Takes a client event for the forwarder if it goes there: one that
    /// no handler takes, addressed to no one, or one of the events always
    /// forwarded. Returns the message back when it does not; refusals are
    /// answered here.
    /// `bytes` is the size of the client message, counted against the
    /// connection's queue (`max_pending_send_bytes`) while it waits.
    pub(crate) fn take_forwarded(
        &self,
        socket: &Socket,
        parsed: Parsed,
        bytes: usize,
        cork: &mut Cork,
    ) -> Option<Parsed> {
        let Some(queue) = socket.forward_queue() else {
            return Some(parsed);
        };
        if !self.goes_forward(queue, &parsed.request) {
            return Some(parsed);
        }
        let (event, data, target, ack) = match parsed {
            Parsed {
                request:
                    Request::Event {
                        event,
                        data,
                        target,
                        ..
                    },
                ack,
            } => (event, data, target, ack),
            other => return Some(other),
        };
        let refusal = if matches!(event.as_str(), "connect" | "disconnect") {
            Err(RequestError::new(
                "reserved_event",
                format!("\"{event}\" is sent by the server to its event proxy"),
            ))
        } else {
            crate::access::check_target(socket, &target)
        };
        if let Err(error) = refusal {
            let error = ForwardError::new(error.code, error.message);
            self.answer_forwarded(socket, &event, ack.as_ref(), Err(error), Some(cork));
            return None;
        }
        let limit = self.inner.config.max_forward_queue;
        let max_bytes = self.inner.config.max_pending_send_bytes;
        let queued_bytes = queue.waiting_bytes.fetch_add(bytes, Ordering::AcqRel);
        // One event is always taken, however large (the message size limit
        // bounds it); more only within the byte bound.
        let over_bytes = queued_bytes > 0 && queued_bytes + bytes > max_bytes;
        if over_bytes || queue.waiting.fetch_add(1, Ordering::AcqRel) >= limit {
            if !over_bytes {
                queue.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            queue.waiting_bytes.fetch_sub(bytes, Ordering::AcqRel);
            Metrics::add(&self.inner.metrics.forward_busy, 1);
            let why = if over_bytes {
                format!("{queued_bytes} bytes of this connection's events are waiting for the event proxy")
            } else {
                format!("{limit} events of this connection are waiting for the event proxy")
            };
            let error = ForwardError::new(PROXY_BUSY, why);
            self.answer_forwarded(socket, &event, ack.as_ref(), Err(error), Some(cork));
            return None;
        }
        let forward = Forward {
            kind: ForwardKind::Event,
            connection: Connection::of(socket),
            event,
            data,
            target,
        };
        let job = Job {
            forward,
            ack,
            bytes,
        };
        if queue.jobs.send(job).is_err() {
            queue.waiting.fetch_sub(1, Ordering::AcqRel);
            queue.waiting_bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
        None
    }

    /// Whether a client request is an event for the forwarder: one that no
    /// handler takes, addressed to no one, or one always forwarded.
    fn goes_forward(&self, queue: &ForwardQueue, request: &Request) -> bool {
        let Request::Event { event, target, .. } = request else {
            return false;
        };
        queue.always.contains(event.as_str())
            || (*target == Target::Server && self.event_handlers(event).is_empty())
    }

    /// Delivers a reply's `emit` entries through the hub's routing;
    /// invalid ones are skipped and counted.
    fn deliver_emits(&self, socket: &Socket, emits: &[Emit]) {
        for emit in emits {
            if !self.deliver_emit(socket, emit) {
                Metrics::add(&self.inner.metrics.forward_emits_skipped, 1);
                tracing::debug!(event = %emit.event, target = ?emit.target, "emit skipped");
            }
        }
    }

    /// Sends one `emit` entry; false when it names an invalid event or
    /// room, or a connection that is not there.
    fn deliver_emit(&self, socket: &Socket, emit: &Emit) -> bool {
        if envelope::check_event_name(&emit.event).is_err() {
            return false;
        }
        let (event, data) = (emit.event.as_str(), &emit.data);
        if let Some(ask) = emit.ask {
            return self.deliver_ask(socket, emit, ask);
        }
        match &emit.target {
            EmitTarget::Connection(id) => return self.emit_to(id, event, data).is_ok(),
            EmitTarget::Room(room) => match envelope::room_name(Some(room)) {
                Ok(room) => self.to(&room).emit(event, data),
                Err(_) => return false,
            },
            EmitTarget::Everyone => self.emit_all(event, data),
            // A sender that is gone or full is not the reply's fault.
            EmitTarget::Sender => usize::from(socket.emit(event, data).is_ok()),
        };
        true
    }

    /// Sends an entry that asks for an acknowledgement, to the one
    /// connection it names (the sender, or `to` a connection of this
    /// node): an answer is one connection's, so rooms and everyone are not
    /// asked.
    fn deliver_ask(&self, socket: &Socket, emit: &Emit, ask: u64) -> bool {
        let recipient = match &emit.target {
            EmitTarget::Sender => socket.clone(),
            EmitTarget::Connection(id) => match self.socket(id) {
                Some(recipient) => recipient,
                None => return false,
            },
            EmitTarget::Room(_) | EmitTarget::Everyone => return false,
        };
        let mut message = Outgoing::new(&emit.event, &emit.data);
        message.ask = Some(ask);
        let frame = recipient.encoding().frame(&message);
        // A recipient that is gone or full is not the reply's fault.
        let _ = recipient.send(frame, None);
        true
    }

    /// Answers a forwarded event: its ack with the data or the error, or
    /// without an ack, the error as an `error` event. Both name the event.
    /// Written through `cork` when the connection's task answers (after
    /// what the same read already queued), at once from the worker.
    fn answer_forwarded(
        &self,
        socket: &Socket,
        event: &str,
        ack: Option<&Value>,
        result: Result<Value, ForwardError>,
        cork: Option<&mut Cork>,
    ) {
        let error = match &result {
            Ok(_) => None,
            Err(error) => {
                Metrics::add(&self.inner.metrics.errors, 1);
                Some(json!({ "code": error.code, "message": error.message, "event": event }))
            }
        };
        let data = result.unwrap_or(Value::Null);
        let frame = match (ack, &error) {
            (Some(ack), _) => {
                let mut message = Outgoing::new("ack", &data);
                message.ack = Some(ack);
                message.error = error.as_ref();
                socket.encoding().frame(&message)
            }
            (None, Some(error)) => socket.encoding().frame(&Outgoing::new("error", error)),
            (None, None) => return,
        };
        let _ = socket.send(frame, cork);
    }
}

/// The task that answers one connection's forwarded events, in order.
pub(crate) struct Worker {
    forwarder: Forwarder,
    jobs: mpsc::UnboundedReceiver<Job>,
    waiting: Arc<AtomicUsize>,
    waiting_bytes: Arc<AtomicUsize>,
}

impl Worker {
    async fn run(mut self, hub: Hub, socket: Socket) {
        while let Some(job) = self.jobs.recv().await {
            let kind = job.forward.kind;
            let event = job.forward.event.clone();
            let result = (self.forwarder)(job.forward).await;
            match kind {
                ForwardKind::Event => {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    self.waiting_bytes.fetch_sub(job.bytes, Ordering::AcqRel);
                    let result = result.map(|reply| {
                        hub.deliver_emits(&socket, &reply.emit);
                        reply.data
                    });
                    hub.answer_forwarded(&socket, &event, job.ack.as_ref(), result, None);
                }
                ForwardKind::Error | ForwardKind::Stream => {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    match result {
                        Ok(reply) => hub.deliver_emits(&socket, &reply.emit),
                        Err(error) => {
                            tracing::debug!(id = %socket.id(), code = %error.code, "error not forwarded");
                        }
                    }
                }
                ForwardKind::Connect => match result {
                    Ok(reply) => hub.deliver_emits(&socket, &reply.emit),
                    Err(error) => hub.answer_forwarded(&socket, &event, None, Err(error), None),
                },
                ForwardKind::Disconnect => {
                    match result {
                        Ok(reply) => hub.deliver_emits(&socket, &reply.emit),
                        Err(error) => {
                            tracing::debug!(id = %socket.id(), code = %error.code, "disconnect not forwarded");
                        }
                    }
                    // The last entry: the connection is gone.
                    return;
                }
            }
        }
    }
}
