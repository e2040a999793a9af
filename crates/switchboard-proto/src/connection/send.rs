//! Commands and the transmit queue: turning messages into frames.

use std::time::Instant;

use bytes::Bytes;

use super::{Connection, Role, State};
use crate::close::CloseFrame;
use crate::error::UsageError;
use crate::frame::{encode_frame_into, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD};
use crate::message::{Message, MessageKind, Utf8Bytes};

/// Payloads up to this size are copied into the transmit buffer, so that small
/// frames go out in one write; larger ones are queued as their own chunk,
/// without a copy (servers only: a client must mask, which means copying).
const COPY_LIMIT: usize = 2048;

impl Connection {
    /// Sends a whole message in one frame.
    pub fn send_message(&mut self, message: Message) -> Result<(), UsageError> {
        match message {
            Message::Text(text) => self.send_text(text),
            Message::Binary(data) => self.send_binary(data),
        }
    }

    /// Sends a text message in one frame.
    pub fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), UsageError> {
        self.check_whole_message()?;
        self.queue_data(OpCode::Text, true, text.into().into_bytes());
        Ok(())
    }

    /// Sends a binary message in one frame.
    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), UsageError> {
        self.check_whole_message()?;
        self.queue_data(OpCode::Binary, true, data.into());
        Ok(())
    }

    /// Sends one fragment of a message (RFC 6455 §5.4): the first opens a
    /// message of `kind`, `fin` ends it. Control frames may be sent between
    /// fragments; other messages may not.
    ///
    /// A text message's fragments need not each be valid UTF-8, but together
    /// they must be; that is the caller's duty.
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        payload: Bytes,
        fin: bool,
    ) -> Result<(), UsageError> {
        self.check_open()?;
        let opcode = match self.outbound_fragmented {
            None => match kind {
                MessageKind::Text => OpCode::Text,
                MessageKind::Binary => OpCode::Binary,
            },
            Some(open) if open == kind => OpCode::Continuation,
            Some(_) => {
                return Err(UsageError::FragmentState(
                    "fragment of another kind while a message is open",
                ))
            }
        };
        self.outbound_fragmented = if fin { None } else { Some(kind) };
        self.queue_data(opcode, fin, payload);
        Ok(())
    }

    /// Queues a whole frame encoded beforehand with
    /// [`crate::frame::encode_server_frame`], shared with other connections
    /// (a broadcast). Only a server may do this: client frames are masked per
    /// connection.
    pub fn send_encoded(&mut self, frame: Bytes) -> Result<(), UsageError> {
        if self.role != Role::Server {
            return Err(UsageError::FragmentState(
                "only a server sends pre-encoded frames",
            ));
        }
        self.check_whole_message()?;
        self.timers.data_sent = true;
        self.queue_chunk(frame);
        Ok(())
    }

    /// Sends a ping with up to 125 bytes of payload.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.check_control(payload)?;
        self.queue_control(OpCode::Ping, payload);
        Ok(())
    }

    /// Sends an unsolicited pong, a one-way heartbeat (RFC 6455 §5.5.3).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.check_control(payload)?;
        self.queue_control(OpCode::Pong, payload);
        Ok(())
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2). Data may still arrive
    /// until the peer's close frame; nothing more can be sent.
    pub fn close(&mut self, now: Instant, frame: CloseFrame) -> Result<(), UsageError> {
        self.check_open()?;
        if let Some(code) = frame.code {
            if !code.is_valid_on_wire() {
                return Err(UsageError::InvalidCloseCode(code.0));
            }
        }
        self.queue_control(OpCode::Close, &frame.encode());
        self.sent_close = Some(Box::new(frame));
        self.state = State::CloseSent;
        self.timers.close_started = Some(now);
        Ok(())
    }

    pub(super) fn check_open(&self) -> Result<(), UsageError> {
        if self.state == State::Open {
            Ok(())
        } else {
            Err(UsageError::AlreadyClosing)
        }
    }

    pub(super) fn check_whole_message(&self) -> Result<(), UsageError> {
        self.check_open()?;
        if self.outbound_fragmented.is_some() {
            return Err(UsageError::FragmentState(
                "a fragmented message is open; finish it first",
            ));
        }
        Ok(())
    }

    pub(super) fn check_control(&self, payload: &[u8]) -> Result<(), UsageError> {
        if self.state == State::Closed || self.sent_close.is_some() {
            return Err(UsageError::AlreadyClosing);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(UsageError::ControlPayloadTooLong(payload.len()));
        }
        Ok(())
    }

    // ---- transmit queue ---------------------------------------------------

    pub(super) fn header(&self, fin: bool, opcode: OpCode, len: usize) -> FrameHeader {
        FrameHeader {
            fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: match self.role {
                Role::Client => Some(rand::random()),
                Role::Server => None,
            },
            payload_len: len as u64,
        }
    }

    pub(super) fn queue_data(&mut self, opcode: OpCode, fin: bool, payload: Bytes) {
        self.timers.data_sent = true;
        let compress = fin
            && opcode != OpCode::Continuation
            && self
                .compression
                .as_ref()
                .is_some_and(|c| payload.len() >= c.threshold);
        let (payload, rsv1) = match self.compression.as_mut() {
            Some(compression) if compress => {
                // RFC 7692 §6.1: the whole message, compressed, RSV1 on its first frame.
                let mut deflated = Vec::with_capacity(payload.len() / 2 + 16);
                compression.deflater.compress(&payload, &mut deflated);
                (Bytes::from(deflated), true)
            }
            _ => (payload, false),
        };
        let mut header = self.header(fin, opcode, payload.len());
        header.rsv1 = rsv1;
        if header.mask.is_some() || payload.len() <= COPY_LIMIT {
            let before = self.out.len();
            self.out.reserve(header.encoded_len() + payload.len());
            encode_frame_into(&mut self.out, header, &payload);
            self.pending += self.out.len() - before;
        } else {
            let before = self.out.len();
            header.encode(&mut self.out);
            self.pending += self.out.len() - before;
            self.queue_chunk(payload);
        }
    }

    pub(super) fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let header = self.header(true, opcode, payload.len());
        let before = self.out.len();
        encode_frame_into(&mut self.out, header, payload);
        self.pending += self.out.len() - before;
    }

    pub(super) fn queue_chunk(&mut self, chunk: Bytes) {
        if !self.out.is_empty() {
            self.chunks.push_back(self.out.split().freeze());
        }
        self.pending += chunk.len();
        self.chunks.push_back(chunk);
    }
}
