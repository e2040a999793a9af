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
mod receive;
mod send;
mod state;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::deflate::{DeflateConfig, Deflater, Inflater, Negotiated};
use crate::error::ProtocolError;
use crate::frame::OpCode;
use crate::message::{Fragment, Message, MessageKind};
use crate::timer::{Timer, TimerTable};

use state::{Compression, Inbound, PartialFrame};

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

/// A WebSocket connection after its opening handshake, without I/O.
///
/// See the module documentation for the order in which a driver calls it.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    /// Shared by every connection made with the same configuration: a
    /// connection's size is its idle cost.
    config: Arc<Config>,
    state: State,
    transport_done: bool,
    streaming: bool,
    /// Binary messages are streamed, with this size limit.
    binary_stream_limit: Option<usize>,
    frame: Option<PartialFrame>,
    inbound: Option<Inbound>,
    /// The kind of the fragmented message being sent, if one is open.
    outbound_fragmented: Option<MessageKind>,
    events: VecDeque<Event>,
    /// Small frames, coalesced; always after everything in `chunks`.
    out: BytesMut,
    chunks: VecDeque<Bytes>,
    pending: usize,
    /// Boxed, as the two below: rare, and a connection's size is its idle cost.
    sent_close: Option<Box<CloseFrame>>,
    /// A protocol error found behind messages not yet polled; applied once
    /// they have been, so that replies to them go out before the close.
    pending_failure: Option<Box<ProtocolError>>,
    /// The peer's close frame, found behind messages not yet polled (and when
    /// it arrived); answered once they have been, like `pending_failure`.
    pending_close: Option<Box<(CloseFrame, Instant)>>,
    compression: Option<Box<Compression>>,
    timers: TimerTable,
    keepalive_counter: u32,
}

impl Connection {
    /// A connection in the open state, as it is right after the handshake.
    ///
    /// `config` should have passed [`Config::validate`]; the connection treats
    /// any value literally and never panics on one.
    ///
    /// Pass an `Arc<Config>` shared by many connections rather than a
    /// `Config` (which is wrapped for this connection alone) to save about
    /// a hundred bytes per connection.
    pub fn new(role: Role, config: impl Into<Arc<Config>>, now: Instant) -> Self {
        Connection {
            role,
            config: config.into(),
            state: State::Open,
            transport_done: false,
            streaming: false,
            binary_stream_limit: None,
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

    /// Delivers binary messages as [`Event::Fragment`]s as their frames
    /// arrive, with `max_size` as their size limit in place of
    /// `max_message_size` (close 1009 above it); text messages are still
    /// assembled. `None` turns it off. The choice is made per message, by
    /// its first frame's opcode, so it holds for a message that arrives
    /// together with the one before it. Takes effect from the next message on.
    pub fn set_binary_streaming(&mut self, max_size: Option<usize>) {
        self.binary_stream_limit = max_size;
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

    /// The payload length of the frame being received, once its header is
    /// in: a driver can size its read buffer for it instead of growing it a
    /// read at a time. 0 when no frame is under way.
    pub fn frame_in_progress(&self) -> usize {
        self.frame
            .map_or(0, |frame| frame.header.payload_len as usize)
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
                        self.pending_failure = Some(Box::new(error));
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
        if let Some((received, at)) = self.pending_close.take().map(|pending| *pending) {
            self.accept_close(received, at);
        }
        if self.state != State::Closed {
            self.finish(None, CloseCause::Eof);
        }
        self.transport_done = true;
    }

    /// A data message that did not pass through this connection (a frame
    /// encoded once for many connections, written by the driver) went out at
    /// `at`. The idle timer counts from the last data message in either
    /// direction, so a driver that writes such frames reports each one (or
    /// the latest of a batch) here, before it next asks for `poll_timeout`.
    /// Messages sent through `send_*` may be reported too, for precision.
    pub fn handle_data_sent(&mut self, at: Instant) {
        if at > self.timers.last_data {
            self.timers.last_data = at;
        }
        self.timers.data_sent = false;
    }

    /// Lets timers fire; call it when the instant from `poll_timeout` has come.
    ///
    /// Every timer whose deadline is at or before `now` fires, in deadline
    /// order (a keepalive ping and an idle close due together both happen).
    pub fn handle_timeout(&mut self, now: Instant) {
        // Each firing moves its timer's deadline past `now` or ends the
        // connection, so this runs at most once per timer kind.
        for _ in 0..4 {
            match self.next_timer() {
                Some((deadline, timer)) if deadline <= now => self.fire(timer, now),
                _ => return,
            }
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant) {
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
                    // Sent through `send_*` at an instant not reported with
                    // `handle_data_sent`: counted from now, at the latest.
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
        if let Some((received, at)) = self.pending_close.take().map(|pending| *pending) {
            self.accept_close(received, at);
            return self.events.pop_front();
        }
        let error = *self.pending_failure.take()?;
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

    /// Fails the connection (RFC 6455 §7.1.7): sends a close frame with the
    /// error's code unless one was sent already, and drops the transport.
    fn fail(&mut self, error: ProtocolError) {
        if self.sent_close.is_none() {
            let frame = CloseFrame::new(error.close_code(), error.to_string());
            self.queue_control(OpCode::Close, &frame.encode());
            self.sent_close = Some(Box::new(frame));
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
            sent: self.sent_close.as_deref().cloned(),
            cause,
        }));
    }
}
