//! Property tests: frame headers and payloads survive encoding and parsing,
//! the fast mask equals the scalar one, the incremental UTF-8 validator agrees
//! with the standard library, and messages cross a client/server pair intact
//! whatever the fragmentation and the read sizes.

mod common;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use common::{pattern, Chunking, Pair};
use proptest::prelude::*;
use switchboard_proto::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD};
use switchboard_proto::mask::{apply_mask, apply_mask_scalar};
use switchboard_proto::utf8::Utf8Validator;
use switchboard_proto::{Config, Connection, Event, Message, MessageKind, Role};

fn opcode() -> impl Strategy<Value = OpCode> {
    prop_oneof![
        Just(OpCode::Continuation),
        Just(OpCode::Text),
        Just(OpCode::Binary),
        Just(OpCode::Close),
        Just(OpCode::Ping),
        Just(OpCode::Pong),
    ]
}

/// Payload lengths, weighted towards the edges of the three length encodings.
fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=8,
        120usize..=130,
        65_530usize..=65_540,
        0usize..70_000,
    ]
}

/// A header obeying the control frame rules of RFC 6455 §5.5.
fn header() -> impl Strategy<Value = FrameHeader> {
    (
        opcode(),
        any::<[bool; 4]>(),
        proptest::option::of(any::<[u8; 4]>()),
        payload_len(),
    )
        .prop_map(|(opcode, [fin, rsv1, rsv2, rsv3], mask, len)| {
            let control = opcode.is_control();
            FrameHeader {
                fin: fin || control,
                rsv1,
                rsv2,
                rsv3,
                opcode,
                mask,
                payload_len: if control {
                    (len % (MAX_CONTROL_PAYLOAD + 1)) as u64
                } else {
                    len as u64
                },
            }
        })
}

fn encode(header: &FrameHeader, payload: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    header.encode(&mut buf);
    let start = buf.len();
    buf.extend_from_slice(payload);
    if let Some(key) = header.mask {
        apply_mask_scalar(&mut buf[start..], key, 0);
    }
    buf.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn header_and_payload_survive_encoding(header in header(), seed in any::<u64>()) {
        let payload = pattern(header.payload_len as usize, seed);
        let wire = encode(&header, &payload);
        let (parsed, header_len) = FrameHeader::parse(&wire).unwrap().unwrap();
        prop_assert_eq!(parsed, header);
        prop_assert_eq!(header_len, header.encoded_len());
        prop_assert_eq!(wire.len(), header_len + payload.len());
        let mut body = wire[header_len..].to_vec();
        if let Some(key) = parsed.mask {
            apply_mask(&mut body, key, 0);
        }
        prop_assert_eq!(body, payload);
    }

    #[test]
    fn every_header_prefix_is_incomplete(header in header()) {
        let mut buf = BytesMut::new();
        header.encode(&mut buf);
        for cut in 0..buf.len() {
            prop_assert_eq!(FrameHeader::parse(&buf[..cut]), Ok(None), "cut {}", cut);
        }
    }

    #[test]
    fn a_frame_prefix_gives_no_event(
        binary in any::<bool>(),
        len in payload_len(),
        key in any::<[u8; 4]>(),
        cut_at in any::<proptest::sample::Index>(),
    ) {
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        let payload = if binary {
            pattern(len, 11)
        } else {
            "é".repeat(len / 2).into_bytes()
        };
        let header = FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: Some(key),
            payload_len: payload.len() as u64,
        };
        let wire = encode(&header, &payload);
        let cut = cut_at.index(wire.len());
        let mut conn = Connection::new(Role::Server, Config::default(), Instant::now());
        let mut buf = BytesMut::from(&wire[..cut]);
        conn.handle_bytes(&mut buf, Instant::now());
        prop_assert_eq!(conn.poll_event(), None);
        prop_assert_eq!(conn.poll_transmit(), None);
        buf.extend_from_slice(&wire[cut..]);
        conn.handle_bytes(&mut buf, Instant::now());
        let got = match conn.poll_event() {
            Some(Event::Message(message)) => message.into_payload(),
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        prop_assert_eq!(&got[..], &payload[..]);
        prop_assert_eq!(conn.poll_event(), None);
    }

    #[test]
    fn fast_mask_equals_scalar(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        start in 0usize..8,
        key in any::<[u8; 4]>(),
        offset in any::<usize>(),
    ) {
        let start = start.min(data.len());
        let mut fast = data.clone();
        let mut slow = data;
        apply_mask(&mut fast[start..], key, offset);
        apply_mask_scalar(&mut slow[start..], key, offset);
        prop_assert_eq!(fast, slow);
    }
}

/// Byte strings that are valid UTF-8, nearly valid, or arbitrary.
fn utf8ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        (
            any::<String>(),
            any::<proptest::sample::Index>(),
            any::<u8>()
        )
            .prop_map(|(text, at, byte)| {
                let mut bytes = text.into_bytes();
                if bytes.is_empty() {
                    bytes.push(byte);
                } else {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                bytes
            }),
        (any::<String>(), any::<proptest::sample::Index>()).prop_map(|(text, at)| {
            let mut bytes = text.into_bytes();
            let cut = at.index(bytes.len() + 1);
            bytes.truncate(cut);
            bytes
        }),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(prop_oneof![0x80u8..=0xBF, 0xC0u8..=0xFF, Just(b'a')], 0..12),
    ]
}

/// Splits `bytes` at the given cut points.
fn split<'a>(bytes: &'a [u8], cuts: &[proptest::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for point in points {
        pieces.push(&bytes[from..point]);
        from = point;
    }
    pieces.push(&bytes[from..]);
    pieces
}

/// Whether `bytes` can still be extended into valid UTF-8.
fn viable_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn utf8_validator_agrees_with_std(
        bytes in utf8ish(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6),
    ) {
        let pieces = split(&bytes, &cuts);
        let mut validator = Utf8Validator::default();
        let mut fed = 0;
        let mut failed = false;
        for piece in pieces {
            fed += piece.len();
            let result = validator.feed(piece);
            // Fail fast: an error exactly when the text so far is hopeless.
            prop_assert_eq!(
                result.is_err(),
                !viable_prefix(&bytes[..fed]),
                "after {} bytes of {:?}",
                fed,
                bytes
            );
            if result.is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            prop_assert_eq!(
                validator.finish().is_ok(),
                std::str::from_utf8(&bytes).is_ok(),
                "{:?}",
                bytes
            );
        }
    }
}

/// One message to send: its kind, content and how to cut it into fragments.
#[derive(Debug, Clone)]
struct Plan {
    kind: MessageKind,
    payload: Vec<u8>,
    /// Where to cut the payload into fragments (empty: one frame).
    cuts: Vec<proptest::sample::Index>,
    /// Send a ping after the first fragment.
    ping_between: bool,
    from_client: bool,
}

fn plan() -> impl Strategy<Value = Plan> {
    let payload = prop_oneof![
        4 => (any::<bool>(), 0usize..3000),
        1 => (any::<bool>(), 60_000usize..70_000),
    ];
    (
        payload,
        any::<u64>(),
        proptest::collection::vec(any::<proptest::sample::Index>(), 0..5),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|((text, len), seed, cuts, ping_between, from_client)| {
            let (kind, payload) = if text {
                // Multi-byte characters, so that cuts land inside them.
                let chars = ['a', 'é', '€', '𝄞'];
                let text: String = pattern(len / 2, seed)
                    .into_iter()
                    .map(|b| chars[usize::from(b) % chars.len()])
                    .collect();
                (MessageKind::Text, text.into_bytes())
            } else {
                (MessageKind::Binary, pattern(len, seed))
            };
            Plan {
                kind,
                payload,
                cuts,
                ping_between,
                from_client,
            }
        })
}

fn expected(plan: &Plan) -> Message {
    let bytes = Bytes::from(plan.payload.clone());
    match plan.kind {
        MessageKind::Text => Message::text(String::from_utf8(plan.payload.clone()).unwrap()),
        MessageKind::Binary => Message::Binary(bytes),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn messages_cross_the_pair_intact(
        plans in proptest::collection::vec(plan(), 1..6),
        reads in proptest::collection::vec(1usize..700, 1..6),
    ) {
        let mut pair = Pair::new().chunked(Chunking::Cycle(reads));
        for plan in &plans {
            let side = if plan.from_client {
                &mut pair.client.conn
            } else {
                &mut pair.server.conn
            };
            let pieces = split(&plan.payload, &plan.cuts);
            let last = pieces.len() - 1;
            for (i, piece) in pieces.into_iter().enumerate() {
                side.send_fragment(plan.kind, Bytes::copy_from_slice(piece), i == last)
                    .unwrap();
                if i == 0 && plan.ping_between {
                    side.ping(b"between").unwrap();
                }
            }
        }
        pair.pump();
        for (from_client, side) in [(true, &mut pair.server), (false, &mut pair.client)] {
            let wanted: Vec<Message> = plans
                .iter()
                .filter(|plan| plan.from_client == from_client)
                .map(expected)
                .collect();
            let got: Vec<Message> = side
                .take_events()
                .into_iter()
                .filter_map(|event| match event {
                    Event::Message(message) => Some(message),
                    Event::Ping(_) | Event::Pong(_) => None,
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            prop_assert_eq!(got.len(), wanted.len());
            for (got, wanted) in got.iter().zip(&wanted) {
                prop_assert!(got == wanted, "a message of {} bytes differs", wanted.len());
            }
        }
        prop_assert!(pair.client.conn.is_open() && pair.server.conn.is_open());
    }
}
