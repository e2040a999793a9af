//! Byte-level fixtures: frames written by hand, the events they must produce
//! and the frames the connection must send back (most importantly the close
//! code). Each fixture is replayed in one piece and one byte at a time, and
//! both replays must agree.

mod common;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use common::{close_body, decode_frames, raw_frame, Chunking, WireFrame};
use switchboard_proto::frame::OpCode;
use switchboard_proto::{Config, Connection, Event, Message, ProtocolError, Role};

/// The masking key of the RFC 6455 §5.7 examples.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked frame, as a client sends it.
fn m(b0: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(b0, payload, Some(KEY))
}

/// An unmasked frame, as a server sends it.
fn u(b0: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(b0, payload, None)
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// An event the fixture expects.
#[derive(Debug, Clone)]
enum Want {
    Msg(Message),
    Ping(&'static [u8]),
    Pong(&'static [u8]),
    /// A closing handshake completed; the peer's close frame had this code.
    Clean(Option<u16>),
    /// The connection failed with this error.
    Failed(ProtocolError),
}

/// A frame the fixture expects the connection to send.
#[derive(Debug, Clone)]
enum Wire {
    Pong(&'static [u8]),
    /// A close frame with this code (the reason is not compared).
    Close(Option<u16>),
}

struct Fixture {
    name: String,
    role: Role,
    input: Vec<u8>,
    events: Vec<Want>,
    wire: Vec<Wire>,
    /// When set, the connection must have failed (or closed) right after
    /// this many bytes when fed one byte at a time: not earlier, not later.
    decided_at: Option<usize>,
}

fn server(name: impl Into<String>, input: Vec<u8>, events: Vec<Want>, wire: Vec<Wire>) -> Fixture {
    Fixture {
        name: name.into(),
        role: Role::Server,
        input,
        events,
        wire,
        decided_at: None,
    }
}

/// A server fixture where the connection fails with `error` and sends `code`.
fn fails(name: impl Into<String>, input: Vec<u8>, error: ProtocolError, code: u16) -> Fixture {
    server(
        name,
        input,
        vec![Want::Failed(error)],
        vec![Wire::Close(Some(code))],
    )
}

impl Fixture {
    fn decided_at(mut self, index: usize) -> Self {
        self.decided_at = Some(index);
        self
    }

    fn client(mut self) -> Self {
        self.role = Role::Client;
        self
    }
}

/// What a replay produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    /// Transmitted frames, unmasked, with the (random) client key erased.
    frames: Vec<WireFrame>,
    /// The raw transmitted bytes (meaningful for a server, which does not mask).
    raw: Vec<u8>,
    finished: bool,
    /// In a byte-at-a-time replay: how many bytes had been fed when the
    /// first `Closed` event appeared.
    closed_after: Option<usize>,
}

fn replay(fixture: &Fixture, chunking: &Chunking) -> Outcome {
    let mut conn = Connection::new(fixture.role, Config::default(), Instant::now());
    let pieces: Vec<&[u8]> = match chunking {
        Chunking::ByteAtATime => fixture.input.chunks(1).collect(),
        _ => vec![&fixture.input[..]],
    };
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut raw = Vec::new();
    let mut fed = 0;
    let mut closed_after = None;
    for piece in pieces {
        buf.extend_from_slice(piece);
        fed += piece.len();
        conn.handle_bytes(&mut buf, Instant::now());
        while let Some(event) = conn.poll_event() {
            if matches!(event, Event::Closed(_)) && closed_after.is_none() {
                closed_after = Some(fed);
            }
            events.push(event);
        }
        while let Some(chunk) = conn.poll_transmit() {
            raw.extend_from_slice(&chunk);
        }
    }
    let mut frames = decode_frames(&raw);
    for frame in &mut frames {
        frame.header.mask = None;
    }
    if fixture.role == Role::Client {
        raw.clear();
    }
    Outcome {
        events,
        frames,
        raw,
        finished: conn.is_finished(),
        closed_after,
    }
}

fn matches_want(event: &Event, want: &Want) -> bool {
    match (event, want) {
        (Event::Message(got), Want::Msg(expected)) => got == expected,
        (Event::Ping(got), Want::Ping(expected)) => got == expected,
        (Event::Pong(got), Want::Pong(expected)) => got == expected,
        (Event::Closed(info), Want::Clean(code)) => {
            info.is_clean() && info.received.as_ref().map(|f| f.code.map(|c| c.0)) == Some(*code)
        }
        (Event::Closed(info), Want::Failed(error)) => {
            info.cause == switchboard_proto::CloseCause::Protocol(error.clone())
                && info.received.is_none()
                && info.code() == error.close_code()
        }
        _ => false,
    }
}

fn matches_wire(frame: &WireFrame, wire: &Wire) -> bool {
    match wire {
        Wire::Pong(payload) => frame.opcode() == OpCode::Pong && frame.payload == *payload,
        Wire::Close(code) => {
            frame.opcode() == OpCode::Close
                && frame.close_code() == *code
                && std::str::from_utf8(frame.close_reason()).is_ok()
        }
    }
}

fn check(fixture: &Fixture) {
    let whole = replay(fixture, &Chunking::Whole);
    let bytewise = replay(fixture, &Chunking::ByteAtATime);
    let name = &fixture.name;
    assert_eq!(whole.events, bytewise.events, "{name}: events differ");
    assert_eq!(whole.frames, bytewise.frames, "{name}: frames differ");
    assert_eq!(whole.raw, bytewise.raw, "{name}: bytes differ");
    assert_eq!(
        whole.finished, bytewise.finished,
        "{name}: finished differs"
    );

    let events_ok = whole.events.len() == fixture.events.len()
        && whole
            .events
            .iter()
            .zip(&fixture.events)
            .all(|(event, want)| matches_want(event, want));
    assert!(
        events_ok,
        "{name}: events\n  got    {:?}\n  wanted {:?}",
        whole.events, fixture.events
    );
    let wire_ok = whole.frames.len() == fixture.wire.len()
        && whole
            .frames
            .iter()
            .zip(&fixture.wire)
            .all(|(frame, wire)| matches_wire(frame, wire));
    assert!(
        wire_ok,
        "{name}: sent frames\n  got    {:?}\n  wanted {:?}",
        whole.frames, fixture.wire
    );
    let closes = fixture
        .events
        .iter()
        .any(|want| matches!(want, Want::Clean(_) | Want::Failed(_)));
    // A server drops the transport after any close; a client only after a
    // failure (after a clean close it waits for the server to hang up).
    let finished = match fixture.role {
        Role::Server => closes,
        Role::Client => fixture
            .events
            .iter()
            .any(|want| matches!(want, Want::Failed(_))),
    };
    assert_eq!(whole.finished, finished, "{name}: is_finished");
    if let Some(index) = fixture.decided_at {
        assert_eq!(bytewise.closed_after, Some(index), "{name}: decided after");
    }
}

fn check_all(fixtures: Vec<Fixture>) {
    assert!(!fixtures.is_empty());
    for fixture in &fixtures {
        check(fixture);
    }
}

fn text(s: &str) -> Want {
    Want::Msg(Message::text(s))
}

// ---- RFC 6455 §5.7 ----------------------------------------------------------

#[test]
fn rfc_examples() {
    let hello = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
    let mut single = vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d];
    single.extend_from_slice(&hello);
    let fragmented = vec![
        0x01, 0x83, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, // "Hel"
        0x80, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x5b, 0x95, // "lo"
    ];
    let mut ping = vec![0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d];
    ping.extend_from_slice(&hello);
    let big: Vec<u8> = (0..=255u8).collect();
    let huge = common::pattern(65_536, 3);
    check_all(vec![
        server("masked Hello", single, vec![text("Hello")], vec![]),
        server("fragmented Hel lo", fragmented, vec![text("Hello")], vec![]),
        server(
            "ping Hello",
            ping.clone(),
            vec![Want::Ping(b"Hello")],
            vec![Wire::Pong(b"Hello")],
        ),
        server(
            "256 bytes, 16-bit length",
            m(0x82, &big),
            vec![Want::Msg(Message::binary(big.clone()))],
            vec![],
        ),
        server(
            "64 KiB, 64-bit length",
            m(0x82, &huge),
            vec![Want::Msg(Message::binary(huge.clone()))],
            vec![],
        ),
        server(
            "unsolicited pong",
            m(0x8A, b"Hello"),
            vec![Want::Pong(b"Hello")],
            vec![],
        ),
        server("empty text", m(0x81, b""), vec![text("")], vec![]),
        server(
            "4-byte character split across fragments",
            cat(&[m(0x01, b"\xf0\x9f"), m(0x80, b"\x98\x80")]),
            vec![text("\u{1F600}")],
            vec![],
        ),
        server(
            "ping between fragments",
            cat(&[m(0x01, b"Hel"), m(0x89, b"p"), m(0x80, b"lo")]),
            vec![Want::Ping(b"p"), text("Hello")],
            vec![Wire::Pong(b"p")],
        ),
    ]);
    // The pong of §5.7, byte for byte: unmasked, "Hello".
    let fixture = server("pong bytes", ping, vec![], vec![]);
    let outcome = replay(&fixture, &Chunking::Whole);
    assert_eq!(
        outcome.raw,
        [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
        "RFC 6455 §5.7 unmasked pong"
    );
}

#[test]
fn client_side_frames() {
    check_all(vec![
        server(
            "unmasked server text",
            u(0x81, b"Hello"),
            vec![text("Hello")],
            vec![],
        )
        .client(),
        fails(
            "masked server frame",
            m(0x81, b"Hello"),
            ProtocolError::MaskedFrame,
            1002,
        )
        .client(),
        server(
            "server close",
            u(0x88, &close_body(1001, b"restart")),
            vec![Want::Clean(Some(1001))],
            vec![Wire::Close(Some(1001))],
        )
        .client(),
    ]);
}

// ---- header-level violations: 1002 ------------------------------------------

#[test]
fn reserved_opcodes_fail_with_1002() {
    let fixtures = (0x3..=0x7)
        .chain(0xB..=0xF)
        .map(|op| {
            fails(
                format!("opcode {op:#x}"),
                m(0x80 | op, b""),
                ProtocolError::ReservedOpCode(op),
                1002,
            )
            .decided_at(2)
        })
        .collect();
    check_all(fixtures);
}

#[test]
fn reserved_bits_fail_with_1002() {
    let fixtures = [0xC1u8, 0xA1, 0x91, 0xF2, 0xC9]
        .into_iter()
        .map(|b0| {
            fails(
                format!("first byte {b0:#x}"),
                m(b0, b"x"),
                ProtocolError::ReservedBits,
                1002,
            )
            .decided_at(6)
        })
        .collect();
    check_all(fixtures);
}

#[test]
fn masking_rules_fail_with_1002() {
    check_all(vec![
        fails(
            "unmasked client frame",
            u(0x81, b"Hello"),
            ProtocolError::UnmaskedFrame,
            1002,
        )
        .decided_at(2),
        fails(
            "unmasked client ping",
            u(0x89, b""),
            ProtocolError::UnmaskedFrame,
            1002,
        ),
        fails(
            "masked server frame",
            m(0x82, b"x"),
            ProtocolError::MaskedFrame,
            1002,
        )
        .client()
        .decided_at(6),
    ]);
}

#[test]
fn control_frame_rules_fail_with_1002() {
    let mut fixtures: Vec<Fixture> = [0x08u8, 0x09, 0x0A]
        .into_iter()
        .map(|b0| {
            fails(
                format!("control {b0:#x} without FIN"),
                m(b0, b""),
                ProtocolError::FragmentedControlFrame,
                1002,
            )
            .decided_at(2)
        })
        .collect();
    for b0 in [0x88u8, 0x89, 0x8A] {
        fixtures.push(
            fails(
                format!("control {b0:#x} with 126 bytes"),
                m(b0, &[b'a'; 126]),
                ProtocolError::ControlFrameTooLong,
                1002,
            )
            .decided_at(4),
        );
    }
    check_all(fixtures);
}

#[test]
fn length_with_most_significant_bit_fails_with_1002() {
    let mut input = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5];
    input.extend_from_slice(&KEY);
    input.extend_from_slice(b"hello");
    check_all(vec![fails(
        "64-bit length with MSB set",
        input,
        ProtocolError::InvalidLength,
        1002,
    )
    .decided_at(10)]);
}

// ---- fragmentation rules: 1002 ----------------------------------------------

#[test]
fn fragmentation_rules_fail_with_1002() {
    check_all(vec![
        fails(
            "continuation without a start",
            m(0x80, b"x"),
            ProtocolError::UnexpectedContinuation,
            1002,
        )
        .decided_at(6),
        fails(
            "non-final continuation without a start",
            m(0x00, b"x"),
            ProtocolError::UnexpectedContinuation,
            1002,
        ),
        fails(
            "new text frame while fragmented",
            cat(&[m(0x01, b"a"), m(0x81, b"b")]),
            ProtocolError::ExpectedContinuation,
            1002,
        )
        .decided_at(13),
        fails(
            "new binary frame while fragmented",
            cat(&[m(0x02, b"a"), m(0x02, b"b")]),
            ProtocolError::ExpectedContinuation,
            1002,
        ),
        server(
            "message, then a continuation without a start",
            cat(&[m(0x81, b"ok"), m(0x80, b"x")]),
            vec![
                text("ok"),
                Want::Failed(ProtocolError::UnexpectedContinuation),
            ],
            vec![Wire::Close(Some(1002))],
        ),
        server(
            "ping answered before the failure",
            cat(&[m(0x89, b"p"), m(0x83, b"")]),
            vec![
                Want::Ping(b"p"),
                Want::Failed(ProtocolError::ReservedOpCode(3)),
            ],
            vec![Wire::Pong(b"p"), Wire::Close(Some(1002))],
        ),
    ]);
}

// ---- UTF-8: 1007 ------------------------------------------------------------

#[test]
fn invalid_utf8_fails_with_1007() {
    let bad = ProtocolError::InvalidUtf8;
    let mut fixtures = vec![];
    for (name, payload) in [
        ("bad byte 0xFF", &b"\xce\xba\xff"[..]),
        ("surrogate", b"\xed\xa0\x80"),
        ("overlong", b"\xc0\xaf"),
        ("above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("truncated code point at the end", b"ab\xe2\x82"),
    ] {
        fixtures.push(fails(name, m(0x81, payload), bad.clone(), 1007));
    }
    fixtures.push(fails(
        "truncated code point at the end of the last fragment",
        cat(&[m(0x01, b"ok"), m(0x80, b"\xe2\x82")]),
        bad.clone(),
        1007,
    ));
    // Fail fast: the second fragment is already hopeless; no third is fed.
    let first = m(0x01, "κόσμε".as_bytes());
    let second = m(0x00, b"ok\xf4\x90");
    let decided = first.len() + second.len();
    fixtures.push(
        fails(
            "invalid UTF-8 in the second of three fragments",
            cat(&[first, second]),
            bad.clone(),
            1007,
        )
        .decided_at(decided),
    );
    // Fail fast inside a frame: only half of its payload has arrived.
    let frame = m(0x81, b"abc\xffdefghijklmnopqrstuvwxyz");
    fixtures.push(
        fails(
            "invalid UTF-8 in a partly received frame",
            frame[..6 + 6].to_vec(),
            bad.clone(),
            1007,
        )
        .decided_at(6 + 4),
    );
    fixtures.push(fails(
        "close reason that is not UTF-8",
        m(0x88, &close_body(1000, b"\xff")),
        bad,
        1007,
    ));
    check_all(fixtures);
}

#[test]
fn fail_fast_needs_no_more_input() {
    let mut conn = Connection::new(Role::Server, Config::default(), Instant::now());
    let mut buf = BytesMut::from(&cat(&[m(0x01, b"a"), m(0x00, b"\xc0")])[..]);
    conn.handle_bytes(&mut buf, Instant::now());
    assert!(matches!(conn.poll_event(), Some(Event::Closed(_))));
    assert!(conn.is_finished());
    // The third fragment (which would end the message) changes nothing.
    buf.extend_from_slice(&m(0x80, b"b"));
    conn.handle_bytes(&mut buf, Instant::now());
    assert_eq!(conn.poll_event(), None);
}

// ---- close frames -----------------------------------------------------------

#[test]
fn close_frame_with_one_byte_body_fails_with_1002() {
    check_all(vec![fails(
        "1-byte close body",
        m(0x88, &[0x03]),
        ProtocolError::CloseFrameOneByte,
        1002,
    )]);
}

#[test]
fn invalid_close_codes_fail_with_1002() {
    let fixtures = [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000]
        .into_iter()
        .map(|code| {
            fails(
                format!("close code {code}"),
                m(0x88, &close_body(code, b"")),
                ProtocolError::InvalidCloseCode(code),
                1002,
            )
        })
        .collect();
    check_all(fixtures);
}

#[test]
fn valid_close_codes_are_echoed() {
    let codes = (1000..=1003).chain(1007..=1014).chain([3000, 4999]);
    let mut fixtures: Vec<Fixture> = codes
        .map(|code| {
            server(
                format!("close code {code}"),
                m(0x88, &close_body(code, "raison d’être".as_bytes())),
                vec![Want::Clean(Some(code))],
                vec![Wire::Close(Some(code))],
            )
        })
        .collect();
    fixtures.push(server(
        "close without a body",
        m(0x88, b""),
        vec![Want::Clean(None)],
        vec![Wire::Close(None)],
    ));
    check_all(fixtures);
}

#[test]
fn data_after_close_is_ignored() {
    check_all(vec![
        server(
            "text after close",
            cat(&[
                m(0x88, &close_body(1000, b"bye")),
                m(0x81, b"ignored"),
                vec![0xFF, 0xFF, 0xFF],
            ]),
            vec![Want::Clean(Some(1000))],
            vec![Wire::Close(Some(1000))],
        )
        .decided_at(11),
        server(
            "message and close in one read",
            cat(&[m(0x81, b"hi"), m(0x88, &close_body(1000, b""))]),
            vec![text("hi"), Want::Clean(Some(1000))],
            vec![Wire::Close(Some(1000))],
        ),
        server(
            "ping after close is not answered",
            cat(&[m(0x88, b""), m(0x89, b"late")]),
            vec![Want::Clean(None)],
            vec![Wire::Close(None)],
        ),
    ]);
}

#[test]
fn replay_agrees_for_every_split_point() {
    // Beyond one piece and single bytes: every two-piece split of a mixed stream.
    let input = cat(&[
        m(0x01, "κό".as_bytes()),
        m(0x89, b"ping"),
        m(0x80, "σμε".as_bytes()),
        m(0x82, &[0u8; 130]),
        m(0x88, &close_body(1000, b"")),
    ]);
    let fixture = server("mixed", input.clone(), vec![], vec![]);
    let reference = replay(&fixture, &Chunking::Whole);
    assert_eq!(reference.events.len(), 4);
    for cut in 0..=input.len() {
        let mut conn = Connection::new(Role::Server, Config::default(), Instant::now());
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for piece in [&input[..cut], &input[cut..]] {
            buf.extend_from_slice(piece);
            conn.handle_bytes(&mut buf, Instant::now());
            events.extend(std::iter::from_fn(|| conn.poll_event()));
        }
        assert_eq!(events, reference.events, "cut at {cut}");
    }
    assert_eq!(
        reference.events[1],
        Event::Message(Message::text("κόσμε")),
        "{:?}",
        reference.events
    );
    assert_eq!(
        reference.events[2],
        Event::Message(Message::binary(Bytes::from(vec![0u8; 130])))
    );
}

#[test]
fn a_failure_behind_unpolled_messages_ends_in_one_closed_event() {
    let start = Instant::now();
    let input = cat(&[m(0x81, b"ok"), m(0x83, b"")]);
    for end in ["eof", "close timeout"] {
        let mut conn = Connection::new(Role::Server, Config::default(), start);
        if end == "close timeout" {
            conn.close(start, switchboard_proto::CloseFrame::default())
                .unwrap();
        }
        let mut buf = BytesMut::from(&input[..]);
        conn.handle_bytes(&mut buf, start);
        // The transport ends (or a timer fires) before the driver polls.
        match end {
            "eof" => conn.handle_eof(),
            _ => conn.handle_timeout(start + std::time::Duration::from_secs(3600)),
        }
        let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
        assert_eq!(events[0], Event::Message(Message::text("ok")), "{end}");
        let closed = events
            .iter()
            .filter(|event| matches!(event, Event::Closed(_)))
            .count();
        assert_eq!(closed, 1, "{end}: {events:?}");
        assert!(matches!(events.last(), Some(Event::Closed(_))), "{end}");
        assert!(conn.is_finished());
    }
}

#[test]
fn eof_behind_a_ping_and_a_failure_ends_in_one_closed_event() {
    // Found by the frame_parser fuzz target: a client reads an unmasked ping
    // and a frame with reserved opcode 0x3, then EOF, before polling.
    let input = [0x89, 0x01, b'x', 0x03, 0xe9];
    let mut conn = Connection::new(Role::Client, Config::default(), Instant::now());
    let mut buf = BytesMut::from(&input[..]);
    conn.handle_bytes(&mut buf, Instant::now());
    conn.handle_eof();
    let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    assert_eq!(events[0], Event::Ping(Bytes::from_static(b"x")));
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[1], Event::Closed(_)));
    assert!(conn.is_finished());
}
