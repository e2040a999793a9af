//! A client and a server connection wired back to back over in-memory
//! buffers, with a clock that only moves when a test moves it.
//!
//! Each integration test file includes this module and uses what it needs.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchboard_proto::frame::{FrameHeader, OpCode};
use switchboard_proto::mask::apply_mask_scalar;
use switchboard_proto::{CloseInfo, Config, Connection, Event, Role};

/// How bytes are handed to `handle_bytes`.
#[derive(Debug, Clone)]
pub enum Chunking {
    /// Everything available, in one call.
    Whole,
    /// One byte per call.
    ByteAtATime,
    /// Calls of these sizes, in turn, cycling (zero counts as one).
    Cycle(Vec<usize>),
}

impl Chunking {
    fn pieces<'a>(&self, bytes: &'a [u8]) -> Vec<&'a [u8]> {
        match self {
            Chunking::Whole => vec![bytes],
            Chunking::ByteAtATime => bytes.chunks(1).collect(),
            Chunking::Cycle(sizes) if sizes.is_empty() => vec![bytes],
            Chunking::Cycle(sizes) => {
                let mut pieces = Vec::new();
                let mut rest = bytes;
                for size in sizes.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (piece, tail) = rest.split_at((*size).clamp(1, rest.len()));
                    pieces.push(piece);
                    rest = tail;
                }
                pieces
            }
        }
    }
}

/// One connection with its receive buffer and the events it produced.
#[derive(Debug)]
pub struct Endpoint {
    pub conn: Connection,
    pub inbox: BytesMut,
    pub events: VecDeque<Event>,
}

impl Endpoint {
    pub fn new(role: Role, config: Config, now: Instant) -> Self {
        Endpoint {
            conn: Connection::new(role, config, now),
            inbox: BytesMut::new(),
            events: VecDeque::new(),
        }
    }

    /// Hands `bytes` to the connection in pieces, as a transport would.
    pub fn feed(&mut self, bytes: &[u8], chunking: &Chunking, now: Instant) {
        for piece in chunking.pieces(bytes) {
            self.inbox.extend_from_slice(piece);
            self.conn.handle_bytes(&mut self.inbox, now);
            self.collect();
        }
    }

    /// Moves the connection's events into `events`.
    pub fn collect(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            self.events.push_back(event);
        }
    }

    /// Everything the connection wants to write, concatenated.
    pub fn take_transmit(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = self.conn.poll_transmit() {
            out.extend_from_slice(&chunk);
        }
        assert_eq!(self.conn.pending_send_bytes(), 0, "drained transmit");
        out
    }

    /// Fires timers if their instant has come, and collects the events.
    pub fn fire(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
        self.collect();
    }

    pub fn eof(&mut self) {
        self.conn.handle_eof();
        self.collect();
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        self.collect();
        self.events.drain(..).collect()
    }

    /// The single `Closed` event among the collected events, if any.
    pub fn closed(&mut self) -> Option<CloseInfo> {
        self.collect();
        let mut closed = self.events.iter().filter_map(|event| match event {
            Event::Closed(info) => Some(info.clone()),
            _ => None,
        });
        let first = closed.next();
        assert!(closed.next().is_none(), "more than one Closed event");
        first
    }
}

/// A client and a server connected by memory.
#[derive(Debug)]
pub struct Pair {
    pub client: Endpoint,
    pub server: Endpoint,
    pub start: Instant,
    pub now: Instant,
    pub chunking: Chunking,
}

impl Pair {
    pub fn new() -> Self {
        Pair::with_configs(Config::default(), Config::default())
    }

    pub fn with_configs(client: Config, server: Config) -> Self {
        let start = Instant::now();
        Pair {
            client: Endpoint::new(Role::Client, client, start),
            server: Endpoint::new(Role::Server, server, start),
            start,
            now: start,
            chunking: Chunking::Whole,
        }
    }

    pub fn chunked(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// The instant `start + offset`.
    pub fn at(&self, offset: Duration) -> Instant {
        self.start + offset
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Sets the clock to `start + offset`.
    pub fn set_time(&mut self, offset: Duration) {
        let target = self.start + offset;
        assert!(target >= self.now, "the clock only moves forward");
        self.now = target;
    }

    /// Delivers what the client has written to the server; returns the byte count.
    pub fn deliver_to_server(&mut self) -> usize {
        let bytes = self.client.take_transmit();
        self.server.feed(&bytes, &self.chunking, self.now);
        bytes.len()
    }

    /// Delivers what the server has written to the client; returns the byte count.
    pub fn deliver_to_client(&mut self) -> usize {
        let bytes = self.server.take_transmit();
        self.client.feed(&bytes, &self.chunking, self.now);
        bytes.len()
    }

    /// Moves bytes both ways until neither side has anything to write.
    pub fn pump(&mut self) {
        for _ in 0..100 {
            if self.deliver_to_server() + self.deliver_to_client() == 0 {
                self.client.collect();
                self.server.collect();
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    /// Lets both sides' timers fire at the current instant.
    pub fn fire(&mut self) {
        let now = self.now;
        self.client.fire(now);
        self.server.fire(now);
    }
}

impl Default for Pair {
    fn default() -> Self {
        Pair::new()
    }
}

/// A decoded frame from a byte stream, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    pub header: FrameHeader,
    pub payload: Vec<u8>,
}

impl WireFrame {
    pub fn opcode(&self) -> OpCode {
        self.header.opcode
    }

    /// The status code of a close frame's body (`None` for an empty body).
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode(), OpCode::Close);
        match self.payload.len() {
            0 => None,
            1 => panic!("close frame with a 1-byte body"),
            _ => Some(u16::from_be_bytes([self.payload[0], self.payload[1]])),
        }
    }

    pub fn close_reason(&self) -> &[u8] {
        assert_eq!(self.opcode(), OpCode::Close);
        self.payload.get(2..).unwrap_or_default()
    }
}

/// Splits a stream of whole frames into frames; panics on anything else.
pub fn decode_frames(mut bytes: &[u8]) -> Vec<WireFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, header_len) = FrameHeader::parse(bytes)
            .expect("valid frame header")
            .expect("complete frame header");
        let end = header_len + header.payload_len as usize;
        assert!(bytes.len() >= end, "truncated frame");
        let mut payload = bytes[header_len..end].to_vec();
        if let Some(key) = header.mask {
            apply_mask_scalar(&mut payload, key, 0);
        }
        frames.push(WireFrame { header, payload });
        bytes = &bytes[end..];
    }
    frames
}

/// The code of the last close frame in a stream of frames.
pub fn sent_close_code(bytes: &[u8]) -> Option<Option<u16>> {
    decode_frames(bytes)
        .iter()
        .rev()
        .find(|frame| frame.opcode() == OpCode::Close)
        .map(WireFrame::close_code)
}

/// Writes a frame by hand, independently of the crate's encoder: `b0` is the
/// first header byte (FIN, RSV, opcode), the length uses the shortest form, and
/// the payload is masked with `key` when there is one.
pub fn raw_frame(b0: u8, payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if key.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match key {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A close frame body: the code, big-endian, then the reason.
pub fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason);
    body
}

/// A deterministic pseudo-random payload.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
