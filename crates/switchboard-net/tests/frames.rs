//! Malformed frames over a real TCP connection: the server fails the
//! connection with the close code RFC 6455 §7.4.1 assigns, then drops TCP,
//! and a connection failed this way does not disturb the others.

mod common;

use common::{echo, frame_header, masked_frame, serve, within, RawClient, WAIT};
use switchboard_net::{connect, AcceptAll, Accepted, CloseCause, Config, Event, Message};
use switchboard_proto::ProtocolError;
use tokio::sync::mpsc;

const MAX_FRAME: usize = 1024;
const MAX_MESSAGE: usize = 4096;

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

fn limited_config() -> Config {
    let mut config = Config::default();
    config
        .max_frame_size(MAX_FRAME)
        .max_message_size(MAX_MESSAGE);
    config
}

/// Five 1000-byte fragments: each frame is under `MAX_FRAME`, the message
/// is over `MAX_MESSAGE` once the fifth header arrives.
fn oversized_message() -> Vec<u8> {
    let chunk = vec![b'x'; 1000];
    let mut bytes = masked_frame(BINARY, &chunk);
    for _ in 0..3 {
        bytes.extend(masked_frame(CONTINUATION, &chunk));
    }
    bytes.extend(masked_frame(FIN | CONTINUATION, &chunk));
    bytes
}

#[tokio::test]
async fn malformed_frames_get_their_close_code_then_tcp_closes() {
    let addr = serve(limited_config(), AcceptAll, echo).await;
    let mut unmasked = frame_header(FIN | TEXT, false, 2);
    unmasked.extend_from_slice(b"hi");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked frame (§5.1)", unmasked, 1002),
        (
            "reserved opcode 0x3 (§5.2)",
            masked_frame(FIN | 0x3, b"x"),
            1002,
        ),
        (
            "reserved control opcode 0xB (§5.2)",
            masked_frame(FIN | 0xB, b""),
            1002,
        ),
        (
            "RSV1 without an extension (§5.2)",
            masked_frame(FIN | RSV1 | TEXT, b"hi"),
            1002,
        ),
        (
            "invalid UTF-8 (§8.1)",
            masked_frame(FIN | TEXT, b"ok \xC3\x28"),
            1007,
        ),
        (
            "frame over max_frame_size",
            // The header alone is refused: the payload is never read.
            [
                frame_header(FIN | BINARY, true, MAX_FRAME as u64 + 1),
                vec![0; 4],
            ]
            .concat(),
            1009,
        ),
        ("message over max_message_size", oversized_message(), 1009),
        (
            "ping over 125 bytes (§5.5)",
            masked_frame(FIN | PING, &[0; 126]),
            1002,
        ),
        ("fragmented ping (§5.5)", masked_frame(PING, b"x"), 1002),
        (
            "continuation without a message (§5.4)",
            masked_frame(FIN | CONTINUATION, b"x"),
            1002,
        ),
        (
            "new message inside a fragmented one (§5.4)",
            [masked_frame(TEXT, b"a"), masked_frame(FIN | TEXT, b"b")].concat(),
            1002,
        ),
        (
            "close with a 1-byte body (§5.5.1)",
            masked_frame(FIN | CLOSE, &[3]),
            1002,
        ),
        (
            "close with code 1005 (§7.4.1)",
            masked_frame(FIN | CLOSE, &1005u16.to_be_bytes()),
            1002,
        ),
        (
            "close reason not UTF-8 (§5.5.1)",
            masked_frame(FIN | CLOSE, &[0x03, 0xE8, 0xFF]),
            1007,
        ),
    ];
    for (name, bytes, code) in cases {
        let mut client = RawClient::handshake(addr, "/").await;
        client.send(&bytes).await;
        let close = client.read_close().await;
        assert_eq!(close.close_code(), Some(code), "{name}: {close:?}");
        client.expect_eof().await;
    }
}

#[tokio::test]
async fn valid_frames_at_the_limits_are_echoed() {
    let addr = serve(limited_config(), AcceptAll, echo).await;
    let mut client = RawClient::handshake(addr, "/").await;
    // A frame of exactly max_frame_size, and a message of exactly
    // max_message_size in four frames, with a ping in the middle.
    let big = vec![7u8; MAX_FRAME];
    client.send(&masked_frame(FIN | BINARY, &big)).await;
    let frame = client.read_frame().await.unwrap();
    assert_eq!((frame.opcode, frame.payload.len()), (BINARY, MAX_FRAME));
    let mut message = masked_frame(TEXT, &[b'a'; MAX_FRAME]);
    message.extend(masked_frame(CONTINUATION, &[b'b'; MAX_FRAME]));
    message.extend(masked_frame(FIN | PING, b"mid"));
    message.extend(masked_frame(CONTINUATION, &[b'c'; MAX_FRAME]));
    message.extend(masked_frame(FIN | CONTINUATION, &[b'd'; MAX_FRAME]));
    client.send(&message).await;
    let pong = client.read_frame().await.unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"mid"[..]));
    let echoed = client.read_frame().await.unwrap();
    assert_eq!((echoed.opcode, echoed.fin), (TEXT, true));
    assert_eq!(echoed.payload.len(), MAX_MESSAGE);
    // A UTF-8 sequence split across two frames is valid (§8.1 is per message).
    client.send(&masked_frame(TEXT, b"caf\xC3")).await;
    client
        .send(&masked_frame(FIN | CONTINUATION, b"\xA9"))
        .await;
    let echoed = client.read_frame().await.unwrap();
    assert_eq!(echoed.payload, "café".as_bytes());
}

#[tokio::test]
async fn an_oversized_message_closes_one_client_while_others_are_served() {
    let mut config = Config::default();
    config.max_message_size(MAX_MESSAGE);
    let (errors, mut errors_rx) = mpsc::unbounded_channel();
    let addr = serve(config, AcceptAll, move |accepted: Accepted| {
        let errors = errors.clone();
        async move {
            let mut socket = accepted.socket;
            while let Some(received) = socket.recv().await {
                match received {
                    Ok(message) => {
                        if socket.feed(message).await.is_err() {
                            break;
                        }
                    }
                    Err(error) => {
                        let _ = errors.send(error.protocol_error().cloned());
                        break;
                    }
                }
            }
        }
    })
    .await;
    let url = format!("ws://{addr}/");
    let (mut steady, _) = within(WAIT, "connect", connect(&url)).await.unwrap();
    let (mut greedy, _) = within(WAIT, "connect", connect(&url)).await.unwrap();

    steady.send(Message::text("before")).await.unwrap();
    let echoed = within(WAIT, "echo before", steady.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("before"));

    greedy
        .send(Message::binary(vec![0u8; 2 * MAX_MESSAGE]))
        .await
        .unwrap();
    let event = within(WAIT, "greedy client closed", greedy.next_event())
        .await
        .unwrap();
    let Event::Closed(info) = event else {
        panic!("expected the close, got {event:?}");
    };
    assert_eq!(info.code().0, 1009, "{info:?}");
    let server_error = within(WAIT, "server-side error", errors_rx.recv())
        .await
        .unwrap();
    assert!(
        matches!(
            server_error,
            Some(ProtocolError::MessageTooLarge {
                max: MAX_MESSAGE,
                ..
            })
        ),
        "{server_error:?}"
    );

    // The other connection, and new ones, are served as before.
    steady.send(Message::text("after")).await.unwrap();
    let echoed = within(WAIT, "echo after", steady.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("after"));
    let (mut newcomer, _) = within(WAIT, "connect", connect(&url)).await.unwrap();
    newcomer
        .send(Message::binary(vec![1u8; MAX_MESSAGE]))
        .await
        .unwrap();
    let echoed = within(WAIT, "newcomer echo", newcomer.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed.len(), MAX_MESSAGE);
    let info = within(WAIT, "steady close", steady.close(1000.into(), "done"))
        .await
        .unwrap();
    assert!(info.is_clean() && info.code().0 == 1000, "{info:?}");
    assert_eq!(info.cause, CloseCause::Handshake);
}

#[tokio::test]
async fn frames_arriving_a_byte_at_a_time_are_reassembled() {
    let addr = serve(limited_config(), AcceptAll, echo).await;
    let mut client = RawClient::handshake(addr, "/").await;
    client.stream.set_nodelay(true).unwrap();
    // A 16-bit length, a code point split between two frames, a ping between
    // them: every header and payload boundary falls between two reads.
    let text = "é".repeat(100);
    let (head, tail) = text.as_bytes().split_at(151);
    let mut bytes = masked_frame(TEXT, head);
    bytes.extend(masked_frame(FIN | PING, b"tick"));
    bytes.extend(masked_frame(FIN | CONTINUATION, tail));
    for byte in bytes {
        client.send(&[byte]).await;
        tokio::task::yield_now().await;
    }
    let pong = client.read_frame().await.unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"tick"[..]));
    let echoed = client.read_frame().await.unwrap();
    assert_eq!((echoed.opcode, echoed.fin), (TEXT, true));
    assert_eq!(echoed.payload, text.as_bytes());
}

#[tokio::test]
async fn a_frame_sent_with_the_handshake_is_not_lost() {
    let addr = serve(limited_config(), AcceptAll, echo).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut bytes = common::upgrade_request(addr, "/").into_bytes();
    bytes.extend(masked_frame(FIN | TEXT, b"eager"));
    bytes.extend(masked_frame(FIN | CLOSE, &1000u16.to_be_bytes()));
    tokio::io::AsyncWriteExt::write_all(&mut stream, &bytes)
        .await
        .unwrap();
    let response = common::read_bytes_to_close(&mut stream).await;
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, frames) = response.split_at(head_end);
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(head)
    );
    // The echo, then the close reply with the same code.
    assert_eq!(frames, b"\x81\x05eager\x88\x02\x03\xe8");
}

#[tokio::test]
async fn a_client_that_sends_and_closes_at_once_gets_the_echo_and_a_clean_close() {
    let addr = serve(limited_config(), AcceptAll, echo).await;
    let (mut socket, _) = within(WAIT, "connect", connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    // `feed` only queues, so the message and the close leave in one write and
    // the server reads them together.
    socket.feed(Message::text("last words")).await.unwrap();
    socket.writer().close(1000.into(), "bye").await.unwrap();
    let mut echoed = Vec::new();
    let info = within(WAIT, "close", async {
        loop {
            match socket.next_event().await.expect("events until the close") {
                Event::Message(message) => echoed.push(message),
                Event::Closed(info) => return info,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(echoed, vec![Message::text("last words")]);
    assert!(info.is_clean(), "{info:?}");
    assert_eq!(info.code().0, 1000, "{info:?}");
}
