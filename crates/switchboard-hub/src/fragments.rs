//! A message on its way to many connections in fragments ([`Stream`]),
//! and what the stream hooks see of it ([`StreamInfo`]): the part of
//! streams that the hub's state holds, apart from the hub's handling of
//! them (`stream`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Value};
use switchboard_net::{Lane, MessageKind};
use switchboard_proto::frame::{encode_server_fragment, OpCode};

use crate::envelope::{Encoding, Outgoing, Prepared, Target};
use crate::metrics::Metrics;

/// A stream as the stream hooks see it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamInfo {
    /// The stream's id, as its `stream:start` and `stream:end` carry it.
    pub id: String,
    /// Where it goes.
    pub target: Target,
    /// Payload bytes sent so far (all of them, at the end).
    pub bytes: u64,
    /// Recipients still in the stream.
    pub members: usize,
    /// At the end: whether the whole message was sent (false when its
    /// sender left or broke off).
    pub complete: bool,
}

/// Where the stream's announcements go, and from whom.
pub(crate) struct Head {
    pub(crate) target: Target,
    pub(crate) from: Option<String>,
}

impl Head {
    pub(crate) fn outgoing<'a>(&'a self, event: &'a str, data: &'a Value) -> Outgoing<'a> {
        let mut message = Outgoing::new(event, data);
        message.from = self.from.as_deref();
        match &self.target {
            Target::Room(room) => message.room = Some(room),
            Target::Direct(id) => message.to = Some(id.as_str()),
            Target::Everyone => message.broadcast = Some(true),
            Target::Server => {}
        }
        message
    }
}

/// One message on its way to many connections in fragments: the
/// library's `write(chunk)` to a room or to everyone. Made by
/// [`Hub::stream`](crate::Hub::stream); each recipient has already got `stream:start`.
///
/// [`Stream::write`](Stream::write) sends a fragment, [`Stream::finish`](Stream::finish) (or
/// [`Stream::finish_with`](Stream::finish_with) a last chunk) ends the message and sends
/// `stream:end`. Dropping an unfinished stream cuts it for everyone
/// (`"complete":false`).
pub struct Stream {
    pub(crate) id: String,
    pub(crate) kind: MessageKind,
    pub(crate) head: Head,
    pub(crate) lanes: Vec<(Lane, Encoding)>,
    pub(crate) started: bool,
    pub(crate) bytes: u64,
    pub(crate) metrics: Arc<Metrics>,
    /// For a client's stream: gives its place under `max_streams` back and
    /// runs the end hooks.
    pub(crate) on_end: Option<OnEnd>,
    pub(crate) done: bool,
}

/// What a client's stream does when it ends.
pub(crate) type OnEnd = Box<dyn Fn(&StreamInfo) + Send + Sync>;

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("members", &self.lanes.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Stream {
    /// The stream's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Recipients still in the stream.
    pub fn members(&self) -> usize {
        self.lanes.len()
    }

    /// Sends `chunk` as the next fragment to every recipient still in the
    /// stream; returns how many. The frame is encoded once and shared.
    pub fn write(&mut self, chunk: &[u8]) -> usize {
        self.send(chunk, false)
    }

    /// Sends `chunk` as the last fragment, then `stream:end`; returns how
    /// many recipients got the whole message.
    pub fn finish_with(mut self, chunk: &[u8]) -> usize {
        self.send(chunk, true);
        self.end()
    }

    /// Ends the message (with an empty last fragment) and sends
    /// `stream:end`; returns how many recipients got the whole message.
    pub fn finish(self) -> usize {
        self.finish_with(&[])
    }

    pub(crate) fn send(&mut self, chunk: &[u8], fin: bool) -> usize {
        let opcode = match (self.started, self.kind) {
            (true, _) => OpCode::Continuation,
            (false, MessageKind::Text) => OpCode::Text,
            (false, MessageKind::Binary) => OpCode::Binary,
        };
        self.started = true;
        self.bytes += chunk.len() as u64;
        let frame = fragment_frame(opcode, fin, chunk);
        let now = Instant::now();
        // A lane that is refused was cut (its recipient got the notice).
        self.lanes
            .retain(|(lane, _)| lane.send(frame.clone(), fin, now).is_ok());
        let metrics = &self.metrics;
        Metrics::add(&metrics.bytes_out, (frame.len() * self.lanes.len()) as u64);
        self.lanes.len()
    }

    /// Sends `stream:end` on every lane and ends them.
    pub(crate) fn end(mut self) -> usize {
        self.done = true;
        let data = json!({ "id": self.id, "bytes": self.bytes, "complete": true });
        let end = Prepared::new(self.head.outgoing("stream:end", &data));
        let now = Instant::now();
        let mut delivered = 0;
        for (lane, encoding) in self.lanes.drain(..) {
            if lane.finish(end.frame(encoding), now).is_ok() {
                delivered += 1;
            }
        }
        Metrics::add(&self.metrics.messages_out, delivered as u64);
        self.ended(delivered, true);
        delivered
    }

    /// Runs the end hooks of a client's stream and gives its place back.
    fn ended(&self, members: usize, complete: bool) {
        if let Some(on_end) = &self.on_end {
            on_end(&self.info(members, complete));
        }
    }

    pub(crate) fn info(&self, members: usize, complete: bool) -> StreamInfo {
        StreamInfo {
            id: self.id.clone(),
            target: self.head.target.clone(),
            bytes: self.bytes,
            members,
            complete,
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.done {
            // The lanes are cut as they drop: each recipient gets the
            // end of the message and `stream:end` with `"complete":false`.
            self.lanes.clear();
            self.ended(0, false);
        }
    }
}

/// A frame of a fragmented message, as a server sends it (unmasked).
pub(crate) fn fragment_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Bytes {
    encode_server_fragment(opcode, fin, false, payload)
}
