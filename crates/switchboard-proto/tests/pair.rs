//! A client and a server talking to each other through memory, with a fake
//! clock: messages, fragmentation, control frames, the closing handshake,
//! timers, limits and API misuse.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{decode_frames, sent_close_code, Chunking, Endpoint, Pair};
use switchboard_proto::frame::OpCode;
use switchboard_proto::{
    CloseCause, CloseCode, CloseFrame, Config, Event, Fragment, Message, MessageKind,
    ProtocolError, UsageError,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn modes() -> [Chunking; 3] {
    [
        Chunking::Whole,
        Chunking::ByteAtATime,
        Chunking::Cycle(vec![3, 1, 7]),
    ]
}

fn config(edit: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    edit(&mut config);
    config
}

fn binary(bytes: &[u8]) -> Message {
    Message::binary(Bytes::copy_from_slice(bytes))
}

/// The side's events, which must all be messages.
fn messages(side: &mut Endpoint) -> Vec<Message> {
    side.take_events()
        .into_iter()
        .map(|event| match event {
            Event::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        })
        .collect()
}

// ---- messages ---------------------------------------------------------------

#[test]
fn text_binary_and_empty_messages_both_ways() {
    for chunking in modes() {
        let mut pair = Pair::new().chunked(chunking.clone());
        pair.client.conn.send_text("hello κόσμε 𝄞").unwrap();
        pair.client.conn.send_binary(vec![0u8, 1, 2, 255]).unwrap();
        pair.client.conn.send_text("").unwrap();
        pair.client.conn.send_binary(Bytes::new()).unwrap();
        pair.server.conn.send_binary(vec![9u8; 300]).unwrap();
        pair.server.conn.send_text("").unwrap();
        pair.server.conn.send_text("from the server").unwrap();
        pair.server.conn.send_binary(Bytes::new()).unwrap();
        pair.pump();
        assert_eq!(
            messages(&mut pair.server),
            vec![
                Message::text("hello κόσμε 𝄞"),
                binary(&[0, 1, 2, 255]),
                Message::text(""),
                binary(&[]),
            ],
            "{chunking:?}"
        );
        assert_eq!(
            messages(&mut pair.client),
            vec![
                binary(&[9; 300]),
                Message::text(""),
                Message::text("from the server"),
                binary(&[]),
            ],
            "{chunking:?}"
        );
        assert!(pair.client.conn.is_open() && pair.server.conn.is_open());
    }
}

#[test]
fn client_frames_are_masked_and_server_frames_are_not() {
    let mut pair = Pair::new();
    pair.client.conn.send_text("abc").unwrap();
    pair.server.conn.send_text("abc").unwrap();
    let from_client = decode_frames(&pair.client.take_transmit());
    let from_server = decode_frames(&pair.server.take_transmit());
    assert!(from_client[0].header.mask.is_some());
    assert!(from_server[0].header.mask.is_none());
    assert_eq!(from_client[0].payload, b"abc");
    assert_eq!(from_server[0].payload, b"abc");
}

#[test]
fn one_mib_binary_each_way() {
    let payload = Bytes::from(common::pattern(1 << 20, 7));
    for chunking in [Chunking::Whole, Chunking::Cycle(vec![65_536, 1, 4093])] {
        let mut pair = Pair::new().chunked(chunking);
        pair.client.conn.send_binary(payload.clone()).unwrap();
        pair.server.conn.send_binary(payload.clone()).unwrap();
        pair.pump();
        let got = messages(&mut pair.server);
        assert_eq!(got.len(), 1);
        assert!(
            got[0] == Message::Binary(payload.clone()),
            "client -> server"
        );
        let got = messages(&mut pair.client);
        assert_eq!(got.len(), 1);
        assert!(
            got[0] == Message::Binary(payload.clone()),
            "server -> client"
        );
    }
}

#[test]
fn fragmented_send_is_reassembled() {
    // "héllo wörld", cut inside both two-byte characters.
    let pieces: [&[u8]; 3] = [b"h\xc3", b"\xa9llo w\xc3", b"\xb6rld"];
    for chunking in modes() {
        let mut pair = Pair::new().chunked(chunking);
        for (i, piece) in pieces.iter().enumerate() {
            let fin = i == pieces.len() - 1;
            let bytes = Bytes::from_static(piece);
            pair.client
                .conn
                .send_fragment(MessageKind::Text, bytes.clone(), fin)
                .unwrap();
            pair.server
                .conn
                .send_fragment(MessageKind::Binary, bytes, fin)
                .unwrap();
        }
        let wire = pair.client.take_transmit();
        let frames = decode_frames(&wire);
        let shape: Vec<_> = frames
            .iter()
            .map(|frame| (frame.opcode(), frame.header.fin))
            .collect();
        assert_eq!(
            shape,
            vec![
                (OpCode::Text, false),
                (OpCode::Continuation, false),
                (OpCode::Continuation, true),
            ]
        );
        pair.server.feed(&wire, &pair.chunking, pair.now);
        pair.pump();
        assert_eq!(
            messages(&mut pair.server),
            vec![Message::text("héllo wörld")]
        );
        assert_eq!(
            messages(&mut pair.client),
            vec![binary("héllo wörld".as_bytes())]
        );
    }
}

#[test]
fn control_frames_between_fragments() {
    for chunking in modes() {
        let mut pair = Pair::new().chunked(chunking);
        let client = &mut pair.client.conn;
        client
            .send_fragment(MessageKind::Binary, Bytes::from_static(b"one "), false)
            .unwrap();
        client.ping(b"p1").unwrap();
        client
            .send_fragment(MessageKind::Binary, Bytes::from_static(b"two "), false)
            .unwrap();
        client.pong(b"heartbeat").unwrap();
        client.ping(b"").unwrap();
        client
            .send_fragment(MessageKind::Binary, Bytes::from_static(b"three"), true)
            .unwrap();
        pair.pump();
        assert_eq!(
            pair.server.take_events(),
            vec![
                Event::Ping(Bytes::from_static(b"p1")),
                Event::Pong(Bytes::from_static(b"heartbeat")),
                Event::Ping(Bytes::new()),
                Event::Message(binary(b"one two three")),
            ]
        );
        assert_eq!(
            pair.client.take_events(),
            vec![
                Event::Pong(Bytes::from_static(b"p1")),
                Event::Pong(Bytes::new())
            ]
        );
    }
}

#[test]
fn streaming_yields_fragments_with_first_and_fin() {
    for chunking in modes() {
        let mut pair = Pair::new().chunked(chunking.clone());
        pair.server.conn.set_streaming(true);
        pair.client.conn.set_streaming(true);
        let parts: [&[u8]; 4] = [b"first part, ", b"", b"mid\xc3", b"\xa9 end"];
        for (i, part) in parts.iter().enumerate() {
            let fin = i == parts.len() - 1;
            let bytes = Bytes::from_static(part);
            pair.client
                .conn
                .send_fragment(MessageKind::Text, bytes.clone(), fin)
                .unwrap();
            pair.server
                .conn
                .send_fragment(MessageKind::Binary, bytes, fin)
                .unwrap();
        }
        pair.client.conn.send_binary(vec![1u8, 2, 3]).unwrap();
        pair.server.conn.send_text("single").unwrap();
        pair.pump();
        for (side, kind, single) in [
            (&mut pair.server, MessageKind::Text, MessageKind::Binary),
            (&mut pair.client, MessageKind::Binary, MessageKind::Text),
        ] {
            let fragments: Vec<Fragment> = side
                .take_events()
                .into_iter()
                .map(|event| match event {
                    Event::Fragment(fragment) => fragment,
                    other => panic!("expected a fragment, got {other:?}"),
                })
                .collect();
            assert_eq!(fragments.len(), 5, "{chunking:?}");
            let flags: Vec<_> = fragments.iter().map(|f| (f.kind, f.first, f.fin)).collect();
            assert_eq!(
                flags,
                vec![
                    (kind, true, false),
                    (kind, false, false),
                    (kind, false, false),
                    (kind, false, true),
                    (single, true, true),
                ]
            );
            let whole: Vec<u8> = fragments[..4]
                .iter()
                .flat_map(|f| f.payload.iter().copied())
                .collect();
            assert_eq!(whole, "first part, mid\u{e9} end".as_bytes());
            let last = &fragments[4].payload;
            assert!(last[..] == [1, 2, 3] || last[..] == *b"single");
        }
    }
}

#[test]
fn streaming_switched_off_assembles_again() {
    let mut pair = Pair::new();
    pair.server.conn.set_streaming(true);
    pair.client.conn.send_text("a").unwrap();
    pair.pump();
    assert!(matches!(
        pair.server.take_events()[..],
        [Event::Fragment(Fragment {
            first: true,
            fin: true,
            ..
        })]
    ));
    pair.server.conn.set_streaming(false);
    pair.client
        .conn
        .send_fragment(MessageKind::Text, Bytes::from_static(b"b"), false)
        .unwrap();
    pair.client
        .conn
        .send_fragment(MessageKind::Text, Bytes::from_static(b"c"), true)
        .unwrap();
    pair.pump();
    assert_eq!(messages(&mut pair.server), vec![Message::text("bc")]);
}

// ---- ping and pong ----------------------------------------------------------

#[test]
fn ping_is_answered_with_the_same_payload() {
    for chunking in modes() {
        let mut pair = Pair::new().chunked(chunking);
        let long = [0x5Au8; 125];
        pair.client.conn.ping(b"from client").unwrap();
        pair.server.conn.ping(&long).unwrap();
        pair.pump();
        assert_eq!(
            pair.server.take_events(),
            vec![
                Event::Ping(Bytes::from_static(b"from client")),
                Event::Pong(Bytes::copy_from_slice(&long)),
            ]
        );
        assert_eq!(
            pair.client.take_events(),
            vec![
                Event::Ping(Bytes::copy_from_slice(&long)),
                Event::Pong(Bytes::from_static(b"from client")),
            ]
        );
    }
}

#[test]
fn pong_frame_on_the_wire_echoes_the_ping() {
    let mut pair = Pair::new();
    pair.client.conn.ping(b"xyz").unwrap();
    pair.deliver_to_server();
    let frames = decode_frames(&pair.server.take_transmit());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].opcode(), OpCode::Pong);
    assert_eq!(frames[0].payload, b"xyz");
}

#[test]
fn ping_arriving_after_our_close_is_not_answered() {
    let mut pair = Pair::new();
    let now = pair.now;
    pair.server
        .conn
        .close(now, CloseFrame::new(CloseCode::NORMAL, ""))
        .unwrap();
    pair.client.conn.ping(b"late").unwrap();
    pair.deliver_to_server();
    assert_eq!(
        pair.server.take_events(),
        vec![Event::Ping(Bytes::from_static(b"late"))]
    );
    let frames = decode_frames(&pair.server.take_transmit());
    let opcodes: Vec<_> = frames.iter().map(|f| f.opcode()).collect();
    assert_eq!(opcodes, vec![OpCode::Close], "no pong after our close");
}

// ---- closing handshake ------------------------------------------------------

#[test]
fn client_initiated_close() {
    for chunking in modes() {
        let mut pair = Pair::new().chunked(chunking);
        pair.advance(secs(1));
        let now = pair.now;
        let bye = CloseFrame::new(CloseCode::NORMAL, "bye");
        pair.client.conn.close(now, bye.clone()).unwrap();
        assert!(!pair.client.conn.is_open());
        pair.deliver_to_server();

        let server = pair.server.closed().expect("server closed");
        assert!(server.is_clean());
        assert_eq!(server.received, Some(bye.clone()));
        let reply = server.sent.as_ref().expect("the server answered");
        assert_eq!(
            reply.code,
            Some(CloseCode::NORMAL),
            "the reply echoes the code"
        );
        assert_eq!(server.code(), CloseCode::NORMAL);
        assert!(
            pair.server.conn.is_finished(),
            "the server drops TCP at once"
        );

        pair.deliver_to_client();
        let client = pair.client.closed().expect("client closed");
        assert!(client.is_clean());
        assert_eq!(client.sent, Some(bye));
        assert_eq!(
            client.received.as_ref().and_then(|f| f.code),
            Some(CloseCode::NORMAL)
        );
        assert!(
            !pair.client.conn.is_finished(),
            "the client waits for the server to drop TCP"
        );
        pair.client.eof();
        assert!(pair.client.conn.is_finished());
        assert_eq!(pair.client.take_events().len(), 1, "no event after Closed");
        assert_eq!(pair.server.take_events().len(), 1, "no event after Closed");
    }
}

#[test]
fn server_initiated_close_echoes_the_code() {
    let mut pair = Pair::new();
    pair.advance(secs(2));
    let now = pair.now;
    let frame = CloseFrame::new(CloseCode(4000), "custom reason");
    pair.server.conn.close(now, frame.clone()).unwrap();
    pair.deliver_to_client();
    let client = pair.client.closed().expect("client closed");
    assert!(client.is_clean());
    assert_eq!(client.received, Some(frame.clone()));
    assert_eq!(client.code(), CloseCode(4000));
    assert!(!pair.client.conn.is_finished());

    let reply = pair.client.take_transmit();
    assert_eq!(sent_close_code(&reply), Some(Some(4000)));
    pair.server.feed(&reply, &Chunking::Whole, pair.now);
    let server = pair.server.closed().expect("server closed");
    assert!(server.is_clean());
    assert_eq!(server.sent, Some(frame));
    assert!(pair.server.conn.is_finished());

    // The client gives the server `close_timeout` (5 s) to drop the transport.
    assert_eq!(pair.client.conn.poll_timeout(), Some(pair.at(secs(7))));
    pair.set_time(secs(7) - millis(1));
    pair.fire();
    assert!(!pair.client.conn.is_finished());
    pair.set_time(secs(7));
    pair.fire();
    assert!(pair.client.conn.is_finished());
    assert_eq!(pair.client.conn.poll_timeout(), None);
    assert_eq!(pair.client.take_events().len(), 1, "still one Closed event");
}

#[test]
fn close_without_a_code_is_answered_without_one() {
    let mut pair = Pair::new();
    let now = pair.now;
    pair.client.conn.close(now, CloseFrame::default()).unwrap();
    pair.pump();
    let server = pair.server.closed().unwrap();
    assert_eq!(server.received, Some(CloseFrame::default()));
    assert_eq!(server.code(), CloseCode::NO_STATUS);
    let client = pair.client.closed().unwrap();
    assert!(client.is_clean());
    assert_eq!(client.received, Some(CloseFrame::default()));
}

#[test]
fn data_sent_before_the_close_is_delivered() {
    let mut pair = Pair::new();
    let now = pair.now;
    pair.client.conn.send_text("last words").unwrap();
    pair.client
        .conn
        .close(now, CloseFrame::new(CloseCode::GOING_AWAY, ""))
        .unwrap();
    pair.server.conn.send_text("crossing").unwrap();
    pair.pump();
    let events = pair.server.take_events();
    assert_eq!(events[0], Event::Message(Message::text("last words")));
    assert!(matches!(&events[1], Event::Closed(info) if info.is_clean()));
    let events = pair.client.take_events();
    assert_eq!(events[0], Event::Message(Message::text("crossing")));
    assert!(matches!(&events[1], Event::Closed(info) if info.is_clean()));
}

#[test]
fn eof_before_the_handshake_is_abnormal() {
    let mut pair = Pair::new();
    pair.server.eof();
    let info = pair.server.closed().unwrap();
    assert_eq!(info.cause, CloseCause::Eof);
    assert_eq!(info.code(), CloseCode::ABNORMAL);
    assert!(!info.is_clean());
    assert!(pair.server.conn.is_finished());
}

// ---- keepalive --------------------------------------------------------------

fn keepalive() -> Config {
    config(|c| {
        c.ping_interval(Some(secs(10))).pong_timeout(secs(5));
    })
}

#[test]
fn keepalive_ping_answered_keeps_the_connection() {
    let mut pair = Pair::with_configs(keepalive(), Config::default());
    assert_eq!(pair.client.conn.poll_timeout(), Some(pair.at(secs(10))));
    assert_eq!(pair.server.conn.poll_timeout(), None);

    pair.set_time(secs(10) - millis(1));
    pair.fire();
    assert!(
        pair.client.take_transmit().is_empty(),
        "too early for a ping"
    );

    pair.set_time(secs(10));
    pair.fire();
    assert_eq!(pair.client.conn.poll_timeout(), Some(pair.at(secs(15))));
    let ping = pair.client.take_transmit();
    let frames = decode_frames(&ping);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].opcode(), OpCode::Ping);
    pair.server.feed(&ping, &Chunking::Whole, pair.now);
    assert!(matches!(pair.server.take_events()[..], [Event::Ping(_)]));

    pair.set_time(secs(12));
    pair.deliver_to_client();
    assert!(matches!(pair.client.take_events()[..], [Event::Pong(_)]));
    assert_eq!(pair.client.conn.poll_timeout(), Some(pair.at(secs(22))));

    pair.set_time(secs(15));
    pair.fire();
    assert!(pair.client.conn.is_open());
    assert!(pair.client.take_events().is_empty());

    pair.set_time(secs(22));
    pair.fire();
    let frames = decode_frames(&pair.client.take_transmit());
    assert_eq!(frames[0].opcode(), OpCode::Ping, "the next keepalive ping");
}

#[test]
fn keepalive_is_postponed_by_incoming_bytes() {
    let mut pair = Pair::with_configs(keepalive(), Config::default());
    pair.set_time(secs(6));
    pair.server.conn.send_text("hi").unwrap();
    pair.deliver_to_client();
    assert_eq!(pair.client.conn.poll_timeout(), Some(pair.at(secs(16))));
    pair.set_time(secs(10));
    pair.fire();
    assert!(pair.client.take_transmit().is_empty());
}

#[test]
fn keepalive_unanswered_times_out() {
    for server_pings in [false, true] {
        let (client, server) = if server_pings {
            (Config::default(), keepalive())
        } else {
            (keepalive(), Config::default())
        };
        let mut pair = Pair::with_configs(client, server);
        pair.set_time(secs(10));
        pair.fire();
        let pinger = if server_pings {
            &mut pair.server
        } else {
            &mut pair.client
        };
        let frames = decode_frames(&pinger.take_transmit());
        assert_eq!(frames[0].opcode(), OpCode::Ping);
        assert_eq!(pinger.conn.poll_timeout(), Some(pair.start + secs(15)));

        pinger.fire(pair.start + secs(15) - millis(1));
        assert!(pinger.take_events().is_empty());
        assert!(!pinger.conn.is_finished());

        pinger.fire(pair.start + secs(15));
        let info = pinger.closed().expect("closed on pong timeout");
        assert_eq!(info.cause, CloseCause::PongTimeout);
        assert_eq!(info.received, None);
        assert!(!info.is_clean());
        assert_eq!(info.code(), CloseCode::ABNORMAL);
        assert!(pinger.conn.is_finished());
        assert_eq!(pinger.conn.poll_timeout(), None);
    }
}

// ---- idle timeout -----------------------------------------------------------

fn idle() -> Config {
    config(|c| {
        c.idle_timeout(Some(secs(30)));
    })
}

#[test]
fn idle_timeout_closes_with_1001() {
    let mut pair = Pair::with_configs(Config::default(), idle());
    assert_eq!(pair.server.conn.poll_timeout(), Some(pair.at(secs(30))));
    pair.set_time(secs(30) - millis(1));
    pair.fire();
    assert!(pair.server.conn.is_open());
    pair.set_time(secs(30));
    pair.fire();
    assert!(!pair.server.conn.is_open());
    pair.pump();
    let client = pair.client.closed().expect("client closed");
    let idle = CloseFrame::new(CloseCode::GOING_AWAY, "idle timeout");
    assert_eq!(client.received, Some(idle.clone()));
    let server = pair.server.closed().expect("server closed");
    assert!(server.is_clean());
    assert_eq!(server.sent, Some(idle));
    assert!(pair.server.conn.is_finished());
}

#[test]
fn idle_timeout_postponed_by_received_data() {
    let mut pair = Pair::with_configs(Config::default(), idle());
    pair.set_time(secs(20));
    pair.client.conn.send_text("still here").unwrap();
    pair.pump();
    assert_eq!(pair.server.conn.poll_timeout(), Some(pair.at(secs(50))));
    pair.set_time(secs(30));
    pair.fire();
    assert!(pair.server.conn.is_open());
    pair.set_time(secs(50));
    pair.fire();
    assert!(!pair.server.conn.is_open());
    let frames = decode_frames(&pair.server.take_transmit());
    assert_eq!(frames.last().unwrap().close_code(), Some(1001));
}

#[test]
fn idle_timeout_postponed_by_sent_data() {
    let mut pair = Pair::with_configs(Config::default(), idle());
    pair.set_time(secs(20));
    pair.server.conn.send_text("ping from app").unwrap();
    pair.pump();
    pair.set_time(secs(30));
    pair.fire();
    assert!(pair.server.conn.is_open(), "data was sent 10 s ago");
    let deadline = pair.server.conn.poll_timeout().unwrap();
    assert!(deadline >= pair.at(secs(50)) && deadline <= pair.at(secs(60)));
    pair.set_time(deadline - pair.start - millis(1));
    pair.fire();
    assert!(pair.server.conn.is_open());
    pair.set_time(deadline - pair.start);
    pair.fire();
    assert!(!pair.server.conn.is_open());
}

#[test]
fn idle_timeout_ignores_control_frames() {
    let mut pair = Pair::with_configs(Config::default(), idle());
    pair.set_time(secs(20));
    pair.client.conn.ping(b"").unwrap();
    pair.pump();
    assert_eq!(pair.server.conn.poll_timeout(), Some(pair.at(secs(30))));
    pair.set_time(secs(30));
    pair.fire();
    assert!(!pair.server.conn.is_open());
}

// ---- close timeout ----------------------------------------------------------

#[test]
fn close_timeout_when_the_peer_never_answers() {
    for client_closes in [true, false] {
        let short = config(|c| {
            c.close_timeout(secs(3));
        });
        let mut pair = Pair::with_configs(short.clone(), short);
        pair.set_time(secs(1));
        let now = pair.now;
        let side = if client_closes {
            &mut pair.client
        } else {
            &mut pair.server
        };
        let frame = CloseFrame::new(CloseCode::NORMAL, "bye");
        side.conn.close(now, frame.clone()).unwrap();
        assert_eq!(sent_close_code(&side.take_transmit()), Some(Some(1000)));
        assert_eq!(side.conn.poll_timeout(), Some(pair.start + secs(4)));

        side.fire(pair.start + secs(4) - millis(1));
        assert!(side.take_events().is_empty());
        assert!(!side.conn.is_finished());

        side.fire(pair.start + secs(4));
        let info = side.closed().expect("closed on close timeout");
        assert_eq!(info.cause, CloseCause::CloseTimeout);
        assert_eq!(info.sent, Some(frame));
        assert_eq!(info.received, None);
        assert!(!info.is_clean());
        assert!(side.conn.is_finished());
    }
}

// ---- limits -----------------------------------------------------------------

fn assert_failed_with(side: &mut Endpoint, error: ProtocolError, code: u16) {
    let info = side.closed().expect("connection failed");
    assert_eq!(info.cause, CloseCause::Protocol(error));
    assert_eq!(info.code(), CloseCode(code));
    assert_eq!(sent_close_code(&side.take_transmit()), Some(Some(code)));
    assert!(side.conn.is_finished());
}

#[test]
fn frame_over_max_frame_size_fails_at_the_header() {
    for chunking in modes() {
        let limit = config(|c| {
            c.max_frame_size(1000);
        });
        let mut pair = Pair::with_configs(limit.clone(), limit).chunked(chunking);
        // Exactly at the limit is fine.
        pair.client.conn.send_binary(vec![1u8; 1000]).unwrap();
        pair.server.conn.send_binary(vec![1u8; 1000]).unwrap();
        pair.pump();
        assert_eq!(messages(&mut pair.server), vec![binary(&[1; 1000])]);
        assert_eq!(messages(&mut pair.client), vec![binary(&[1; 1000])]);

        pair.client.conn.send_binary(vec![2u8; 1001]).unwrap();
        pair.server.conn.send_binary(vec![2u8; 1001]).unwrap();
        let to_server = pair.client.take_transmit();
        let to_client = pair.server.take_transmit();
        // Headers only: 2 + 2 length bytes, + 4 mask bytes from the client.
        pair.server.feed(&to_server[..8], &pair.chunking, pair.now);
        pair.client.feed(&to_client[..4], &pair.chunking, pair.now);
        let error = ProtocolError::FrameTooLarge {
            size: 1001,
            max: 1000,
        };
        assert_failed_with(&mut pair.server, error.clone(), 1009);
        assert_failed_with(&mut pair.client, error, 1009);
    }
}

#[test]
fn message_over_max_message_size_fails_at_the_header() {
    for streaming in [false, true] {
        let limit = config(|c| {
            c.max_message_size(1000);
        });
        let mut pair = Pair::with_configs(Config::default(), limit);
        pair.server.conn.set_streaming(streaming);
        let client = &mut pair.client.conn;
        client
            .send_fragment(MessageKind::Binary, vec![0u8; 600].into(), false)
            .unwrap();
        client
            .send_fragment(MessageKind::Binary, vec![0u8; 600].into(), true)
            .unwrap();
        let wire = pair.client.take_transmit();
        let first = 8 + 600;
        pair.server
            .feed(&wire[..first], &Chunking::ByteAtATime, pair.now);
        assert!(pair.server.conn.is_open());
        let before = pair.server.take_events();
        assert_eq!(before.len(), usize::from(streaming));
        pair.server
            .feed(&wire[first..first + 8], &Chunking::ByteAtATime, pair.now);
        let error = ProtocolError::MessageTooLarge {
            size: 1200,
            max: 1000,
        };
        assert_failed_with(&mut pair.server, error, 1009);
    }
}

#[test]
fn more_fragments_than_max_fragments_fails() {
    let limit = config(|c| {
        c.max_fragments(3);
    });
    let mut pair = Pair::with_configs(Config::default(), limit);
    let send = |pair: &mut Pair, count: usize| {
        for i in 0..count {
            pair.client
                .conn
                .send_fragment(MessageKind::Text, Bytes::from_static(b"x"), i == count - 1)
                .unwrap();
        }
        pair.client.take_transmit()
    };
    // Three fragments are fine.
    let wire = send(&mut pair, 3);
    pair.server.feed(&wire, &Chunking::Whole, pair.now);
    assert_eq!(messages(&mut pair.server), vec![Message::text("xxx")]);
    // A fourth fails at its header, before its payload byte arrives.
    let wire = send(&mut pair, 4);
    pair.server
        .feed(&wire[..wire.len() - 1], &Chunking::ByteAtATime, pair.now);
    assert_failed_with(
        &mut pair.server,
        ProtocolError::TooManyFragments { max: 3 },
        1009,
    );
}

// ---- usage errors -----------------------------------------------------------

#[test]
fn sending_after_close_is_refused() {
    let mut pair = Pair::new();
    let now = pair.now;
    pair.client.conn.close(now, CloseFrame::default()).unwrap();
    pair.client.take_transmit();
    let conn = &mut pair.client.conn;
    assert_eq!(conn.send_text("x"), Err(UsageError::AlreadyClosing));
    assert_eq!(conn.send_binary(vec![1u8]), Err(UsageError::AlreadyClosing));
    assert_eq!(
        conn.send_message(Message::text("x")),
        Err(UsageError::AlreadyClosing)
    );
    assert_eq!(
        conn.send_fragment(MessageKind::Binary, Bytes::new(), true),
        Err(UsageError::AlreadyClosing)
    );
    assert_eq!(conn.ping(b""), Err(UsageError::AlreadyClosing));
    assert_eq!(conn.pong(b""), Err(UsageError::AlreadyClosing));
    assert_eq!(
        conn.close(now, CloseFrame::default()),
        Err(UsageError::AlreadyClosing)
    );
    assert_eq!(conn.pending_send_bytes(), 0, "nothing was queued");

    // After the peer's close, too.
    pair.server
        .conn
        .close(now, CloseFrame::new(CloseCode::NORMAL, ""))
        .unwrap();
    pair.deliver_to_server();
    pair.deliver_to_client();
    assert_eq!(
        pair.server.conn.send_text("x"),
        Err(UsageError::AlreadyClosing)
    );
    let fresh = &mut Pair::new();
    fresh.server.conn.close(now, CloseFrame::default()).unwrap();
    fresh.deliver_to_client();
    assert!(fresh.client.closed().is_some());
    assert_eq!(
        fresh.client.conn.send_text("x"),
        Err(UsageError::AlreadyClosing)
    );
    assert_eq!(
        fresh.client.conn.ping(b"x"),
        Err(UsageError::AlreadyClosing)
    );
}

#[test]
fn control_payload_over_125_is_refused() {
    let mut pair = Pair::new();
    let conn = &mut pair.client.conn;
    assert_eq!(
        conn.ping(&[0; 126]),
        Err(UsageError::ControlPayloadTooLong(126))
    );
    assert_eq!(
        conn.pong(&[0; 200]),
        Err(UsageError::ControlPayloadTooLong(200))
    );
    assert_eq!(conn.pending_send_bytes(), 0);
    conn.ping(&[0; 125]).unwrap();
    conn.pong(&[0; 125]).unwrap();
    pair.pump();
    assert_eq!(pair.server.take_events().len(), 2);
}

#[test]
fn close_with_a_code_not_for_the_wire_is_refused() {
    let mut pair = Pair::new();
    let now = pair.now;
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000] {
        assert_eq!(
            pair.client
                .conn
                .close(now, CloseFrame::new(CloseCode(code), "")),
            Err(UsageError::InvalidCloseCode(code))
        );
        assert!(pair.client.conn.is_open(), "{code}");
    }
    assert_eq!(pair.client.conn.pending_send_bytes(), 0);
    pair.client.conn.send_text("still open").unwrap();
    pair.pump();
    assert_eq!(
        messages(&mut pair.server),
        vec![Message::text("still open")]
    );
}

#[test]
fn whole_message_while_a_fragmented_one_is_open_is_refused() {
    let mut pair = Pair::new();
    let conn = &mut pair.client.conn;
    conn.send_fragment(MessageKind::Text, Bytes::from_static(b"a"), false)
        .unwrap();
    assert!(matches!(
        conn.send_text("no"),
        Err(UsageError::FragmentState(_))
    ));
    assert!(matches!(
        conn.send_binary(vec![0u8]),
        Err(UsageError::FragmentState(_))
    ));
    assert!(matches!(
        conn.send_fragment(MessageKind::Binary, Bytes::from_static(b"no"), true),
        Err(UsageError::FragmentState(_))
    ));
    conn.send_fragment(MessageKind::Text, Bytes::from_static(b"b"), true)
        .unwrap();
    conn.send_text("next").unwrap();
    pair.pump();
    assert_eq!(
        messages(&mut pair.server),
        vec![Message::text("ab"), Message::text("next")]
    );
    assert!(pair.server.conn.is_open());
}

#[test]
fn pre_encoded_frames_are_for_servers_only() {
    let mut pair = Pair::new();
    let frame = switchboard_proto::frame::encode_server_frame(OpCode::Text, false, b"shared");
    assert!(pair.client.conn.send_encoded(frame.clone()).is_err());
    pair.server.conn.send_encoded(frame).unwrap();
    pair.pump();
    assert_eq!(messages(&mut pair.client), vec![Message::text("shared")]);
}
