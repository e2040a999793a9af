//! Streams: one message sent to a room, a connection or everyone in
//! fragments, as its data comes, without the server holding it whole.
//!
//! Each recipient gets `stream:start`, the message's fragments and
//! `stream:end`, with no other data message between them: the stream has a
//! [`Lane`](switchboard_net::Lane) on each recipient's outbox, and what else is sent to that
//! recipient meanwhile waits behind it (bounded by its queue). A recipient
//! that cannot keep up, or whose other messages pile up behind a stream
//! that stalls, is cut from it: its message is ended with an empty final
//! fragment and it gets `stream:end` with `"complete":false`.
//!
//! The application sends a stream with [`Hub::stream`]; a client with
//! `stream:start` and then one binary message, relayed here fragment by
//! fragment from its connection's task. The stream itself is in
//! `fragments`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use switchboard_net::{Cork, Fragment, MessageKind};

use crate::envelope::{Codec, Outgoing, Prepared, RequestError, Target};
use crate::forward::ForwardKind;
use crate::fragments::{Head, OnEnd};
pub use crate::fragments::{Stream, StreamInfo};
pub use crate::hub::StreamHook;
use crate::hub::{Hub, PendingStreams};
use crate::id::ConnId;
use crate::metrics::Metrics;
use crate::socket::Socket;

/// What a connection's task does with the binary message it is reading.
#[derive(Default)]
pub(crate) enum Incoming {
    /// None under way.
    #[default]
    Idle,
    /// Relayed as a stream. Boxed: every connection's task holds an
    /// `Incoming` for its whole life, and streams are rare.
    Relaying(Box<Stream>),
    /// Refused (no `stream:start` before it): read and dropped.
    Ignoring,
}

impl Hub {
    /// Opens a stream of `kind` messages to `target` (a room, one
    /// connection, or everyone; [`Target::Server`] reaches no one): each
    /// recipient on this node gets `stream:start` now, then the fragments
    /// [`Stream::write`] sends, then `stream:end`. A connection already
    /// receiving another stream is left out ([`Stream::members`] counts
    /// those it reaches). Streams are not sent to other nodes.
    ///
    /// This is node websockets' `wsserver.write(chunk)` to everyone
    /// (`hub.stream(&Target::Everyone, MessageKind::Binary)`), and its
    /// `broadcast({fin, opcode}, chunk)` with the frame head's opcode as
    /// `kind` and `fin` as [`Stream::finish_with`].
    pub fn stream(&self, target: &Target, kind: MessageKind) -> Stream {
        self.open_stream(None, target, kind)
    }

    fn open_stream(&self, sender: Option<&Socket>, target: &Target, kind: MessageKind) -> Stream {
        let id = ConnId::random().as_str().to_owned();
        let head = Head {
            target: target.clone(),
            from: sender.map(|socket| socket.id().as_str().to_owned()),
        };
        let recipients: Vec<Socket> = {
            let registry = self.registry();
            let all: Vec<&Socket> = match target {
                Target::Room(room) => registry.members(room).collect(),
                Target::Everyone => registry.conns.values().collect(),
                Target::Direct(to) => registry.conns.get(to).into_iter().collect(),
                Target::Server => Vec::new(),
            };
            let except = sender.map(Socket::id);
            all.into_iter()
                .filter(|socket| Some(socket.id()) != except)
                .cloned()
                .collect()
        };
        let kind_name = match kind {
            MessageKind::Text => "text",
            MessageKind::Binary => "binary",
        };
        let start_data = json!({ "id": id, "kind": kind_name });
        let start = Prepared::new(head.outgoing("stream:start", &start_data));
        let cut_data = json!({ "id": id, "complete": false });
        let cut = Prepared::new(head.outgoing("stream:end", &cut_data));
        let now = Instant::now();
        let mut lanes = Vec::with_capacity(recipients.len());
        for socket in recipients {
            let encoding = socket.encoding();
            let Some(lane) = socket.outbox().open_lane(cut.frame(encoding)) else {
                continue;
            };
            if lane.send(start.frame(encoding), true, now).is_ok() {
                lanes.push((lane, encoding));
            }
        }
        Metrics::add(&self.inner.metrics.messages_out, lanes.len() as u64);
        let on_end = sender.map(|sender| {
            let (hub, sender) = (self.clone(), sender.clone());
            Box::new(move |info: &StreamInfo| {
                hub.inner.streams.fetch_sub(1, Ordering::AcqRel);
                for hook in hub.hooks().stream_end.clone() {
                    hook(&hub, &sender, info);
                }
                hub.forward_stream(&sender, "stream:end", info);
            }) as OnEnd
        });
        Stream {
            id,
            kind,
            head,
            lanes,
            started: false,
            bytes: 0,
            metrics: self.inner.metrics.clone(),
            on_end,
            done: false,
        }
    }

    /// A client's `stream:start`: opens its stream, to be relayed from its
    /// next binary message. Answers `{"id","delivered"}`.
    pub(crate) fn start_client_stream(
        &self,
        socket: &Socket,
        target: &Target,
    ) -> Result<Value, RequestError> {
        let config = &self.inner.config;
        if socket.codec() != Codec::Json || config.max_streams == 0 {
            return Err(RequestError::new(
                "stream_unsupported",
                "streams are sent as binary messages on JSON connections (no subprotocol, or switchboard.json), where the server allows them",
            ));
        }
        crate::access::check_target(socket, target)?;
        if self.pending_streams().contains_key(socket.id()) {
            return Err(RequestError::new(
                "stream_busy",
                "this connection's stream has not ended: one stream at a time",
            ));
        }
        let max = config.max_streams;
        if self.inner.streams.fetch_add(1, Ordering::AcqRel) >= max {
            self.inner.streams.fetch_sub(1, Ordering::AcqRel);
            return Err(RequestError::new(
                "too_many_streams",
                format!("{max} streams are under way; try again later"),
            ));
        }
        let stream = self.open_stream(Some(socket), target, MessageKind::Binary);
        let answer = json!({ "id": stream.id, "delivered": stream.members() });
        let info = stream.info(stream.members(), false);
        self.pending_streams()
            .insert(socket.id().clone(), Some(stream));
        for hook in self.hooks().stream_start.clone() {
            hook(self, socket, &info);
        }
        self.forward_stream(socket, "stream:start", &info);
        Ok(answer)
    }

    /// Tells the forwarder of a client's stream starting or ending, when
    /// it asked for `event` ([`Hub::forward_events`]).
    fn forward_stream(&self, socket: &Socket, event: &str, info: &StreamInfo) {
        if !socket
            .forward_queue()
            .is_some_and(|queue| queue.wants(event))
        {
            return;
        }
        let mut data = json!({ "id": info.id, "bytes": info.bytes, "members": info.members });
        match &info.target {
            Target::Room(room) => data["room"] = json!(room),
            Target::Direct(to) => data["to"] = json!(to.as_str()),
            Target::Everyone => data["broadcast"] = json!(true),
            Target::Server => {}
        }
        if event == "stream:end" {
            data["complete"] = json!(info.complete);
        }
        self.queue_notice(socket, ForwardKind::Stream, event, data);
    }

    /// One fragment of a client's binary message: relayed if it announced
    /// a stream, refused (once, at the first fragment) if not. At the last
    /// fragment the members get `stream:end`, and so does the sender, with
    /// `{"id","bytes","delivered"}`.
    pub(crate) fn stream_fragment(
        &self,
        socket: &Socket,
        fragment: Fragment,
        incoming: &mut Incoming,
        cork: &mut Cork,
    ) {
        let metrics = &self.inner.metrics;
        Metrics::add(&metrics.bytes_in, fragment.payload.len() as u64);
        if fragment.first {
            let pending = self
                .pending_streams()
                .get_mut(socket.id())
                .and_then(Option::take);
            *incoming = match pending {
                Some(stream) => Incoming::Relaying(Box::new(stream)),
                None => {
                    Metrics::add(&metrics.messages_in, 1);
                    let error = RequestError::new(
                        "binary_not_supported",
                        "binary messages need the switchboard.msgpack subprotocol, or a stream:start before them",
                    );
                    self.reply_error(socket, None, &error, cork);
                    Incoming::Ignoring
                }
            };
        }
        if let Incoming::Relaying(stream) = incoming {
            stream.send(&fragment.payload, fragment.fin);
        }
        if !fragment.fin {
            return;
        }
        if let Incoming::Relaying(stream) = std::mem::take(incoming) {
            Metrics::add(&metrics.messages_in, 1);
            self.pending_streams().remove(socket.id());
            let (id, bytes) = (stream.id.clone(), stream.bytes);
            let delivered = stream.end();
            let data = json!({ "id": id, "bytes": bytes, "delivered": delivered });
            let frame = socket.encoding().frame(&Outgoing::new("stream:end", &data));
            let _ = socket.send(frame, Some(cork));
        }
    }

    /// Drops a connection's announced stream when it leaves (its members
    /// get `"complete":false`).
    pub(crate) fn drop_stream(&self, socket: &Socket) {
        let stream = self.pending_streams().remove(socket.id());
        drop(stream);
    }

    fn pending_streams(&self) -> std::sync::MutexGuard<'_, PendingStreams> {
        self.inner
            .pending_streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Runs when a client starts a stream (`stream:start`), with the
    /// stream's id, target and recipients.
    pub fn on_stream_start<F: Fn(&Hub, &Socket, &StreamInfo) + Send + Sync + 'static>(
        &self,
        hook: F,
    ) {
        self.hooks_mut().stream_start.push(Arc::new(hook));
    }

    /// Runs when a client's stream ends: its last fragment went out
    /// (`complete`), or its sender left before that.
    pub fn on_stream_end<F: Fn(&Hub, &Socket, &StreamInfo) + Send + Sync + 'static>(
        &self,
        hook: F,
    ) {
        self.hooks_mut().stream_end.push(Arc::new(hook));
    }
}
