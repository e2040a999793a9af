//! The connection state machine: bytes in, events out; commands in, bytes out.
//!
//! A [`Connection`] starts after the opening handshake and runs until both
//! close frames have been exchanged (or the connection failed). It never
//! touches a socket or a clock. A driver calls, in a loop:
//!
//! 1. [`Connection::handle_bytes`] with what the transport read (and
//!    [`Connection::handle_eof`] when it reads nothing more), or
//!    [`Connection::handle_timeout`] when the instant from
//!    [`Connection::poll_timeout`] has come;
//! 2. [`Connection::poll_event`] until it returns `None`, handing each event to
//!    the application;
//! 3. [`Connection::poll_transmit`] until it returns `None`, writing each chunk
//!    to the transport in order;
//! 4. [`Connection::is_finished`]: when true, the transport is shut down.
//!
//! Commands (`send_*`, [`Connection::ping`], [`Connection::close`]) may be
//! called at any time; their bytes come out of `poll_transmit`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::deflate::codec::InflateError;
use crate::deflate::{DeflateConfig, Deflater, Inflater, Negotiated};
use crate::error::{ProtocolError, UsageError};
use crate::frame::{encode_frame_into, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD};
use crate::mask::apply_mask;
use crate::message::{Fragment, Message, MessageKind, Utf8Bytes};
use crate::timer::{Timer, TimerTable};
use crate::utf8::Utf8Validator;

/// Payloads up to this size are copied into the transmit buffer, so that small
/// frames go out in one write; larger ones are queued as their own chunk,
/// without a copy (servers only: a client must mask, which means copying).
const COPY_LIMIT: usize = 2048;

/// Which end of the connection this is; it decides the masking rules (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The end that accepted the connection: receives masked frames, sends unmasked.
    Server,
    /// The end that opened the connection: sends masked frames, receives unmasked.
    Client,
}

/// What happened on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete message (when not streaming).
    Message(Message),
    /// A piece of a message (when streaming, see [`Connection::set_streaming`]).
    Fragment(Fragment),
    /// The peer pinged; the pong has already been queued.
    Ping(Bytes),
    /// The peer sent a pong.
    Pong(Bytes),
    /// The connection is closed; no event follows.
    Closed(CloseInfo),
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close frame the peer sent, if one arrived.
    pub received: Option<CloseFrame>,
    /// The close frame this end sent, if any.
    pub sent: Option<CloseFrame>,
    /// Why the connection ended.
    pub cause: CloseCause,
}

impl CloseInfo {
    /// The code that best describes the close, as a browser would report it:
    /// the peer's code after a closing handshake (1005 if it gave none), the
    /// code we failed the connection with, or 1006 when it just dropped.
    pub fn code(&self) -> CloseCode {
        match &self.cause {
            CloseCause::Handshake => self
                .received
                .as_ref()
                .and_then(|frame| frame.code)
                .unwrap_or(CloseCode::NO_STATUS),
            CloseCause::Protocol(error) => error.close_code(),
            _ => CloseCode::ABNORMAL,
        }
    }

    /// Whether the closing handshake completed.
    pub fn is_clean(&self) -> bool {
        self.cause == CloseCause::Handshake
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseCause {
    /// Both close frames were exchanged.
    Handshake,
    /// The peer broke the protocol; we sent a close frame with its code.
    Protocol(ProtocolError),
    /// The transport ended before the closing handshake did.
    Eof,
    /// A keepalive ping went unanswered within `pong_timeout`.
    PongTimeout,
    /// The peer did not answer our close frame within `close_timeout`.
    CloseTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Data flows both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// The closing handshake is over or the connection failed; a client still
    /// waits for the server to drop the transport.
    Closed,
}

/// The message being received.
#[derive(Debug)]
struct Inbound {
    kind: MessageKind,
    /// Assembled fragments; unused for single-frame messages and when streaming.
    buf: BytesMut,
    size: u64,
    fragments: usize,
    streaming: bool,
    validator: Utf8Validator,
    /// RSV1 was set on the first frame: the payload is deflated (RFC 7692 §6).
    compressed: bool,
    /// Bytes inflated so far, bounded by `max_message_size`.
    inflated: usize,
}

/// The negotiated permessage-deflate state of a connection.
#[derive(Debug)]
struct Compression {
    deflater: Deflater,
    inflater: Inflater,
    threshold: usize,
}

/// The frame being received: its header, and how much of its payload is
/// already unmasked (and validated, for text) in the input buffer.
#[derive(Debug, Clone, Copy)]
struct PartialFrame {
    header: FrameHeader,
    done: usize,
}

/// A WebSocket connection after its opening handshake, without I/O.
///
/// See the module documentation for the order in which a driver calls it.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    state: State,
    transport_done: bool,
    streaming: bool,
    frame: Option<PartialFrame>,
    inbound: Option<Inbound>,
    /// The kind of the fragmented message being sent, if one is open.
    outbound_fragmented: Option<MessageKind>,
    events: VecDeque<Event>,
    /// Small frames, coalesced; always after everything in `chunks`.
    out: BytesMut,
    chunks: VecDeque<Bytes>,
    pending: usize,
    sent_close: Option<CloseFrame>,
    /// A protocol error found behind messages not yet polled; applied once
    /// they have been, so that replies to them go out before the close.
    pending_failure: Option<ProtocolError>,
    /// The peer's close frame, found behind messages not yet polled (and when
    /// it arrived); answered once they have been, like `pending_failure`.
    pending_close: Option<(CloseFrame, Instant)>,
    compression: Option<Box<Compression>>,
    timers: TimerTable,
    keepalive_counter: u32,
}

impl Connection {
    /// A connection in the open state, as it is right after the handshake.
    ///
    /// `config` should have passed [`Config::validate`]; the connection treats
    /// any value literally and never panics on one.
    pub fn new(role: Role, config: Config, now: Instant) -> Self {
        Connection {
            role,
            config,
            state: State::Open,
            transport_done: false,
            streaming: false,
            frame: None,
            inbound: None,
            outbound_fragmented: None,
            events: VecDeque::new(),
            out: BytesMut::new(),
            chunks: VecDeque::new(),
            pending: 0,
            sent_close: None,
            pending_failure: None,
            pending_close: None,
            compression: None,
            timers: TimerTable::new(now),
            keepalive_counter: 0,
        }
    }

    /// Turns on permessage-deflate as negotiated in the handshake (RFC 7692).
    /// Nothing is allocated until a message is compressed or inflated.
    pub fn set_deflate(&mut self, negotiated: &Negotiated, config: &DeflateConfig) {
        let (ours, theirs) = match self.role {
            Role::Server => (
                (
                    negotiated.server_max_window_bits,
                    negotiated.server_no_context_takeover,
                ),
                (
                    negotiated.client_max_window_bits,
                    negotiated.client_no_context_takeover,
                ),
            ),
            Role::Client => (
                (
                    negotiated.client_max_window_bits,
                    negotiated.client_no_context_takeover,
                ),
                (
                    negotiated.server_max_window_bits,
                    negotiated.server_no_context_takeover,
                ),
            ),
        };
        self.compression = Some(Box::new(Compression {
            deflater: Deflater::new(config.level, ours.0, ours.1),
            inflater: Inflater::new(theirs.0, theirs.1),
            threshold: config.threshold,
        }));
    }

    /// Whether permessage-deflate is in use.
    pub fn is_deflate(&self) -> bool {
        self.compression.is_some()
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Delivers messages as [`Event::Fragment`]s as their frames arrive, instead
    /// of assembling them. Takes effect from the next message on.
    pub fn set_streaming(&mut self, streaming: bool) {
        self.streaming = streaming;
    }

    /// Whether the connection can still send data.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the connection is over and its transport should be shut down
    /// (once `poll_transmit` has been drained).
    pub fn is_finished(&self) -> bool {
        self.transport_done
    }

    /// Bytes queued for the transport and not yet taken by `poll_transmit`:
    /// the send buffer size a driver applies backpressure with.
    pub fn pending_send_bytes(&self) -> usize {
        self.pending
    }

    // ---- inputs -------------------------------------------------------------

    /// Processes bytes read from the transport.
    ///
    /// Complete frames are taken from the front of `buf`; the start of an
    /// incomplete frame is left there (already unmasked as far as it goes), and
    /// the driver appends the next read to the same buffer.
    pub fn handle_bytes(&mut self, buf: &mut BytesMut, now: Instant) {
        if self.state == State::Closed || self.stopped_reading() {
            buf.clear();
            return;
        }
        if !buf.is_empty() {
            self.timers.last_received = now;
            self.timers.ping_sent = None;
        }
        while self.state != State::Closed && !self.stopped_reading() {
            match self.read_frame(buf, now) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(error) => {
                    if self.events.is_empty() {
                        self.fail(error);
                    } else {
                        self.pending_failure = Some(error);
                    }
                    buf.clear();
                    break;
                }
            }
        }
        if self.state == State::Closed || self.stopped_reading() {
            buf.clear();
        }
    }

    /// Whether a close frame or an error was found behind unpolled events:
    /// nothing after it is read.
    fn stopped_reading(&self) -> bool {
        self.pending_failure.is_some() || self.pending_close.is_some()
    }

    /// The transport will deliver no more bytes.
    pub fn handle_eof(&mut self) {
        if let Some((received, at)) = self.pending_close.take() {
            self.accept_close(received, at);
        }
        if self.state != State::Closed {
            self.finish(None, CloseCause::Eof);
        }
        self.transport_done = true;
    }

    /// Lets timers fire; call it when the instant from `poll_timeout` has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((deadline, timer)) = self.next_timer() else {
            return;
        };
        if now < deadline {
            return;
        }
        match timer {
            Timer::KeepAlive => {
                self.keepalive_counter = self.keepalive_counter.wrapping_add(1);
                let payload = self.keepalive_counter.to_be_bytes();
                self.queue_control(OpCode::Ping, &payload);
                self.timers.ping_sent = Some(now);
            }
            Timer::PongDeadline => {
                self.finish(None, CloseCause::PongTimeout);
                self.transport_done = true;
            }
            Timer::Idle => {
                if self.timers.data_sent {
                    self.timers.data_sent = false;
                    self.timers.last_data = now;
                } else {
                    let _ = self.close(now, CloseFrame::new(CloseCode::GOING_AWAY, "idle timeout"));
                }
            }
            Timer::Close => {
                if self.state != State::Closed {
                    self.finish(None, CloseCause::CloseTimeout);
                }
                self.transport_done = true;
            }
        }
    }

    // ---- outputs ------------------------------------------------------------

    /// The next event, if any.
    ///
    /// Events come in the order their frames arrived. When a protocol error
    /// or the peer's close frame follows complete messages in the same input,
    /// those messages are delivered first and the connection fails (or answers
    /// the close) only when they have been polled, so the application's
    /// answers to them still go out.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if let Some((received, at)) = self.pending_close.take() {
            self.accept_close(received, at);
            return self.events.pop_front();
        }
        let error = self.pending_failure.take()?;
        self.fail(error);
        self.events.pop_front()
    }

    /// The next chunk of bytes to write, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let chunk = match self.chunks.pop_front() {
            Some(chunk) => chunk,
            None if !self.out.is_empty() => self.out.split().freeze(),
            None => return None,
        };
        self.pending -= chunk.len();
        Some(chunk)
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(deadline, _)| deadline)
    }

    fn next_timer(&self) -> Option<(Instant, Timer)> {
        if self.transport_done {
            return None;
        }
        let keepalive = if self.state == State::Open {
            self.config.ping_interval
        } else {
            None
        };
        let idle = if self.state == State::Open {
            self.config.idle_timeout
        } else {
            None
        };
        self.timers.next(
            keepalive,
            self.config.pong_timeout,
            idle,
            self.config.close_timeout,
        )
    }

    // ---- commands -----------------------------------------------------------

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
        self.sent_close = Some(frame);
        self.state = State::CloseSent;
        self.timers.close_started = Some(now);
        Ok(())
    }

    fn check_open(&self) -> Result<(), UsageError> {
        if self.state == State::Open {
            Ok(())
        } else {
            Err(UsageError::AlreadyClosing)
        }
    }

    fn check_whole_message(&self) -> Result<(), UsageError> {
        self.check_open()?;
        if self.outbound_fragmented.is_some() {
            return Err(UsageError::FragmentState(
                "a fragmented message is open; finish it first",
            ));
        }
        Ok(())
    }

    fn check_control(&self, payload: &[u8]) -> Result<(), UsageError> {
        if self.state == State::Closed || self.sent_close.is_some() {
            return Err(UsageError::AlreadyClosing);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(UsageError::ControlPayloadTooLong(payload.len()));
        }
        Ok(())
    }

    // ---- transmit queue ---------------------------------------------------

    fn header(&self, fin: bool, opcode: OpCode, len: usize) -> FrameHeader {
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

    fn queue_data(&mut self, opcode: OpCode, fin: bool, payload: Bytes) {
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

    fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let header = self.header(true, opcode, payload.len());
        let before = self.out.len();
        encode_frame_into(&mut self.out, header, payload);
        self.pending += self.out.len() - before;
    }

    fn queue_chunk(&mut self, chunk: Bytes) {
        if !self.out.is_empty() {
            self.chunks.push_back(self.out.split().freeze());
        }
        self.pending += chunk.len();
        self.chunks.push_back(chunk);
    }

    // ---- receive path -----------------------------------------------------

    /// Reads at most one frame from `buf`; `Ok(false)` means more bytes are needed.
    fn read_frame(&mut self, buf: &mut BytesMut, now: Instant) -> Result<bool, ProtocolError> {
        let mut frame = match self.frame {
            Some(frame) => frame,
            None => {
                let Some((header, header_len)) = FrameHeader::parse(buf)? else {
                    return Ok(false);
                };
                self.check_header(&header)?;
                buf.advance(header_len);
                PartialFrame { header, done: 0 }
            }
        };
        let len = frame.header.payload_len as usize;
        let available = buf.len().min(len);
        if available > frame.done {
            self.unmask_and_validate(&mut buf[..available], &frame)?;
            frame.done = available;
        }
        if frame.done < len {
            self.frame = Some(frame);
            return Ok(false);
        }
        self.frame = None;
        let payload = buf.split_to(len).freeze();
        self.on_frame(frame.header, payload, now)?;
        Ok(true)
    }

    /// The checks that need the connection's state (RFC 6455 §5.1, §5.2, §5.4),
    /// made as soon as a header is complete so that a bad frame is refused
    /// before its payload is read. Data frames open or continue `inbound`.
    fn check_header(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // RSV1 marks a compressed message, only with permessage-deflate and
        // only on a message's first frame (RFC 7692 §6); RSV2/3 never.
        let rsv1_allowed =
            self.compression.is_some() && matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if (header.rsv1 && !rsv1_allowed) || header.rsv2 || header.rsv3 {
            return Err(ProtocolError::ReservedBits);
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size: header.payload_len,
                max: self.config.max_frame_size,
            });
        }
        let kind = match header.opcode {
            OpCode::Text => MessageKind::Text,
            OpCode::Binary => MessageKind::Binary,
            OpCode::Continuation => {
                let inbound = self
                    .inbound
                    .as_mut()
                    .ok_or(ProtocolError::UnexpectedContinuation)?;
                return grow_message(inbound, header.payload_len, &self.config);
            }
            _ => return Ok(()),
        };
        if self.inbound.is_some() {
            return Err(ProtocolError::ExpectedContinuation);
        }
        let mut inbound = Inbound {
            kind,
            buf: BytesMut::new(),
            size: 0,
            fragments: 0,
            streaming: self.streaming,
            validator: Utf8Validator::default(),
            compressed: header.rsv1,
            inflated: 0,
        };
        grow_message(&mut inbound, header.payload_len, &self.config)?;
        self.inbound = Some(inbound);
        Ok(())
    }

    /// Unmasks the newly arrived part of the payload in place and, for text,
    /// validates it, so that invalid UTF-8 fails the connection at once.
    fn unmask_and_validate(
        &mut self,
        payload: &mut [u8],
        frame: &PartialFrame,
    ) -> Result<(), ProtocolError> {
        let fresh = &mut payload[frame.done..];
        if let Some(key) = frame.header.mask {
            apply_mask(fresh, key, frame.done);
        }
        if frame.header.opcode.is_control() {
            return Ok(());
        }
        if let Some(inbound) = self.inbound.as_mut() {
            // Compressed text is validated once inflated.
            if inbound.kind == MessageKind::Text && !inbound.compressed {
                inbound
                    .validator
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        Ok(())
    }

    fn on_frame(
        &mut self,
        header: FrameHeader,
        payload: Bytes,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        match header.opcode {
            OpCode::Ping => {
                if self.sent_close.is_none() {
                    self.queue_control(OpCode::Pong, &payload);
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::Pong => self.events.push_back(Event::Pong(payload)),
            OpCode::Close => self.on_close_frame(&payload, now)?,
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                self.on_data_frame(header.fin, payload, now)?
            }
        }
        Ok(())
    }

    fn on_data_frame(
        &mut self,
        fin: bool,
        payload: Bytes,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let Some(inbound) = self.inbound.as_mut() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let payload = match self.compression.as_mut() {
            Some(compression) if inbound.compressed => inflate_frame(
                inbound,
                &mut compression.inflater,
                &payload,
                fin,
                &self.config,
            )?,
            _ => payload,
        };
        if fin && inbound.kind == MessageKind::Text {
            inbound
                .validator
                .finish()
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if inbound.streaming {
            let fragment = Fragment {
                kind: inbound.kind,
                payload,
                // Headers are checked one frame at a time, so while the first
                // frame completes it is the only one counted.
                first: inbound.fragments == 1,
                fin,
            };
            self.events.push_back(Event::Fragment(fragment));
        } else if !fin {
            inbound.buf.extend_from_slice(&payload);
            return Ok(());
        } else {
            let kind = inbound.kind;
            let whole = if inbound.buf.is_empty() {
                payload
            } else {
                inbound.buf.extend_from_slice(&payload);
                std::mem::take(&mut inbound.buf).freeze()
            };
            let message = match kind {
                MessageKind::Text => Message::Text(Utf8Bytes::from_validated(whole)),
                MessageKind::Binary => Message::Binary(whole),
            };
            self.events.push_back(Event::Message(message));
        }
        if fin {
            self.inbound = None;
            self.timers.last_data = now;
        }
        Ok(())
    }

    fn on_close_frame(&mut self, payload: &[u8], now: Instant) -> Result<(), ProtocolError> {
        let received = CloseFrame::parse(payload)?;
        if self.state == State::Open && !self.events.is_empty() {
            // Messages came before the close in the same input: they are
            // delivered first and the close is answered once they have been
            // polled, so the application's replies to them still go out, before
            // our close frame (RFC 6455 §5.5.1 lets an endpoint delay its close
            // until its current message is sent).
            self.pending_close = Some((received, now));
            return Ok(());
        }
        self.accept_close(received, now);
        Ok(())
    }

    /// Completes the closing handshake the peer's close frame started or ended.
    fn accept_close(&mut self, received: CloseFrame, now: Instant) {
        if self.state == State::Open {
            // RFC 6455 §5.5.1: answer with a close frame, echoing the code
            // (and the reason, so the peer sees its own words come back).
            let reply = received.clone();
            self.queue_control(OpCode::Close, &reply.encode());
            self.sent_close = Some(reply);
        }
        self.finish(Some(received), CloseCause::Handshake);
        self.close_transport_after_handshake(now);
    }

    /// RFC 6455 §7.1.1: the server closes the TCP connection first; a client
    /// waits for that, up to `close_timeout`.
    fn close_transport_after_handshake(&mut self, now: Instant) {
        match self.role {
            Role::Server => self.transport_done = true,
            Role::Client => self.timers.close_started = Some(now),
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): sends a close frame with the
    /// error's code unless one was sent already, and drops the transport.
    fn fail(&mut self, error: ProtocolError) {
        if self.sent_close.is_none() {
            let frame = CloseFrame::new(error.close_code(), error.to_string());
            self.queue_control(OpCode::Close, &frame.encode());
            self.sent_close = Some(frame);
        }
        self.finish(None, CloseCause::Protocol(error));
        self.transport_done = true;
    }

    fn finish(&mut self, received: Option<CloseFrame>, cause: CloseCause) {
        self.state = State::Closed;
        self.frame = None;
        self.inbound = None;
        // A failure still waiting behind unpolled events is moot now: the
        // connection ended another way first (EOF, a timer), and `Closed`
        // must be its last event.
        self.pending_failure = None;
        self.pending_close = None;
        self.events.push_back(Event::Closed(CloseInfo {
            received,
            sent: self.sent_close.clone(),
            cause,
        }));
    }
}

/// Inflates one frame of a compressed message, bounding the inflated size by
/// `max_message_size` (decompression bombs close with 1009) and validating
/// inflated text as it comes.
fn inflate_frame(
    inbound: &mut Inbound,
    inflater: &mut Inflater,
    payload: &[u8],
    fin: bool,
    config: &Config,
) -> Result<Bytes, ProtocolError> {
    let limit = config.max_message_size.saturating_sub(inbound.inflated);
    let mut out = Vec::new();
    inflater
        .inflate(payload, fin, &mut out, limit)
        .map_err(|error| match error {
            InflateError::TooLarge { .. } => ProtocolError::MessageTooLarge {
                size: (inbound.inflated + out.len()) as u64,
                max: config.max_message_size,
            },
            InflateError::Corrupt(why) => ProtocolError::InvalidCompressedData(why),
        })?;
    inbound.inflated += out.len();
    if inbound.kind == MessageKind::Text {
        inbound
            .validator
            .feed(&out)
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(Bytes::from(out))
}

/// Accounts for one more frame of `payload_len` bytes in `inbound`, enforcing
/// `max_message_size` and `max_fragments` before the payload is read.
fn grow_message(
    inbound: &mut Inbound,
    payload_len: u64,
    config: &Config,
) -> Result<(), ProtocolError> {
    inbound.size += payload_len;
    inbound.fragments += 1;
    if inbound.size > config.max_message_size as u64 {
        return Err(ProtocolError::MessageTooLarge {
            size: inbound.size,
            max: config.max_message_size,
        });
    }
    if inbound.fragments > config.max_fragments {
        return Err(ProtocolError::TooManyFragments {
            max: config.max_fragments,
        });
    }
    Ok(())
}
