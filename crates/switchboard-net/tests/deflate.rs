//! permessage-deflate (RFC 7692) over real TCP, where the bytes matter:
//! offers a server must decline, RSV1 where it is not allowed, corrupt data,
//! decompression bombs (and the memory they may cost), and server responses
//! a client must refuse.
//!
//! The peers here are hand-written: they send exactly the bytes a test gives
//! them, compressing with the core's own [`Deflater`] where a valid
//! compressed message is needed.

mod common;

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use common::{echo, read_head, serve, within, WAIT};
use switchboard_net::{connect_with, AcceptAll, Config, ConnectOptions, Event, Message};
use switchboard_proto::deflate::{DeflateConfig, Deflater, Inflater};
use switchboard_proto::handshake::accept_key;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// The response a default server gives to any acceptable offer.
const ACCEPTED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

fn deflate_server_config() -> Config {
    let mut config = Config::default();
    config.deflate(Some(DeflateConfig::default()));
    config
}

/// A chat-like text of about `len` bytes: compressible, and above the
/// default threshold of 128 bytes when `len` is.
fn chat_text(len: usize) -> String {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < len {
        text.push_str(&format!(
            "{{\"event\":\"chat\",\"room\":\"lobby\",\"data\":{{\"text\":\"message {i}\"}}}}"
        ));
        i += 1;
    }
    text.truncate(len);
    text
}

/// `len` pseudo-random lowercase letters.
fn letters(len: usize) -> String {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (b'a' + (state % 26) as u8) as char
        })
        .collect()
}

/// `data` compressed as one message without context takeover, tail removed.
fn compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Deflater::new(6, 15, true).compress(data, &mut out);
    out
}

/// A compressed message payload (tail removed) inflated back.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Inflater::new(15, true)
        .inflate(payload, true, &mut out, usize::MAX)
        .expect("valid compressed data");
    out
}

/// `mib` MiB of zeros compressed at level 9 as one message. Only two MiB are
/// compressed: once the window holds zeros, the deflate blocks of the second
/// MiB decode to another MiB of zeros wherever they are repeated.
fn bomb(mib: usize) -> Vec<u8> {
    // A sync flush in the middle of a message keeps its empty stored block;
    // only the message's last one loses it (RFC 7692 §7.2.1).
    const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
    let zeros = vec![0u8; 1 << 20];
    let mut deflater = Deflater::new(9, 15, false);
    let (mut first, mut next) = (Vec::new(), Vec::new());
    deflater.compress(&zeros, &mut first);
    deflater.compress(&zeros, &mut next);
    let mut out = first;
    for _ in 1..mib {
        out.extend_from_slice(&TAIL);
        out.extend_from_slice(&next);
    }
    out
}

/// A frame header; `mask` adds a fixed masking key after it.
fn header(first_byte: u8, len: usize, mask: bool) -> Vec<u8> {
    let bit = if mask { 0x80 } else { 0 };
    let mut out = vec![first_byte];
    match len {
        0..=125 => out.push(bit | len as u8),
        126..=0xFFFF => {
            out.push(bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out
}

/// A client frame: `first_byte` holds FIN, RSV and the opcode as on the wire.
fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x5A, 0x01, 0xC3, 0x7E];
    let mut frame = header(first_byte, payload.len(), true);
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// A server frame (unmasked).
fn server_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = header(first_byte, payload.len(), false);
    frame.extend_from_slice(payload);
    frame
}

/// A frame as read off the wire, unmasked.
#[derive(Debug)]
struct Frame {
    first: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn fin(&self) -> bool {
        self.first & FIN != 0
    }

    fn rsv1(&self) -> bool {
        self.first & RSV1 != 0
    }

    fn opcode(&self) -> u8 {
        self.first & 0x0F
    }

    fn close_code(&self) -> Option<u16> {
        (self.opcode() == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// One end of a connection whose handshake was done by hand.
struct Peer {
    stream: TcpStream,
    buf: BytesMut,
}

impl Peer {
    async fn send(&mut self, bytes: &[u8]) {
        within(WAIT, "raw send", self.stream.write_all(bytes))
            .await
            .expect("raw send");
    }

    /// The next frame (masked or not), or `None` once the peer closed TCP.
    async fn read_frame(&mut self) -> Option<Frame> {
        within(WAIT, "a frame", async {
            loop {
                if let Some(frame) = parse_frame(&mut self.buf) {
                    return Some(frame);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    /// Reads up to the close frame, and then to the end of TCP; returns the
    /// close code.
    async fn read_close_code(&mut self) -> u16 {
        loop {
            match self.read_frame().await {
                Some(frame) if frame.opcode() == CLOSE => {
                    let code = frame.close_code().expect("a close code");
                    if let Some(extra) = self.read_frame().await {
                        panic!("expected the connection to end after the close, got {extra:?}");
                    }
                    return code;
                }
                Some(_) => continue,
                None => panic!("the connection ended without a close frame"),
            }
        }
    }
}

fn parse_frame(buf: &mut BytesMut) -> Option<Frame> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        short => (short as usize, 2),
    };
    let key = if masked {
        if buf.len() < at + 4 {
            return None;
        }
        at += 4;
        Some([buf[at - 4], buf[at - 3], buf[at - 2], buf[at - 1]])
    } else {
        None
    };
    if buf.len() < at + len {
        return None;
    }
    let mut payload = buf[at..at + len].to_vec();
    if let Some(key) = key {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
    }
    let first = buf[0];
    buf.advance(at + len);
    Some(Frame { first, payload })
}

/// Every value of header `name` in an HTTP head, in order.
fn header_values(head: &str, name: &str) -> Vec<String> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// A raw client: sends an upgrade request with one `Sec-WebSocket-Extensions`
/// line per element of `extensions`, and expects a 101. Returns the peer and
/// the response's extension values.
async fn open(addr: SocketAddr, extensions: &[&str]) -> (Peer, Vec<String>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
        common::KEY
    );
    for value in extensions {
        request.push_str(&format!("Sec-WebSocket-Extensions: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let (head, buf) = read_head(&mut stream).await;
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{extensions:?}: {head}"
    );
    let accepted = header_values(&head, "sec-websocket-extensions");
    (Peer { stream, buf }, accepted)
}

/// Opens a connection with `offer` and checks that compression was agreed.
async fn open_compressed(addr: SocketAddr, offer: &str) -> Peer {
    let (peer, accepted) = open(addr, &[offer]).await;
    assert_eq!(accepted, [ACCEPTED], "{offer}");
    peer
}

#[tokio::test]
async fn malformed_offers_are_declined_and_the_connection_stays_uncompressed() {
    let addr = serve(deflate_server_config(), AcceptAll, echo).await;
    let text = chat_text(300);
    for offer in [
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; client_max_window_bits; x-custom",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover=true",
    ] {
        let (mut peer, accepted) = open(addr, &[offer]).await;
        assert!(accepted.is_empty(), "{offer}: accepted as {accepted:?}");
        // Uncompressed messages, above the threshold too, go through as they are.
        peer.send(&client_frame(FIN | TEXT, text.as_bytes())).await;
        let echoed = peer.read_frame().await.expect("the echo");
        assert_eq!(
            (echoed.first, &echoed.payload[..]),
            (FIN | TEXT, text.as_bytes()),
            "{offer}"
        );
        // And a compressed one is a protocol error here.
        peer.send(&client_frame(FIN | RSV1 | TEXT, &compress(text.as_bytes())))
            .await;
        assert_eq!(peer.read_close_code().await, 1002, "{offer}");
    }
}

#[tokio::test]
async fn a_valid_offer_after_a_malformed_one_is_accepted() {
    let addr = serve(deflate_server_config(), AcceptAll, echo).await;
    let offers: [&[&str]; 4] = [
        &["permessage-deflate; foo, permessage-deflate; client_max_window_bits"],
        &["permessage-deflate; server_max_window_bits=16, x-webkit-deflate-frame, permessage-deflate"],
        &["permessage-deflate; client_no_context_takeover=1", "permessage-deflate"],
        // A quoted value is the same as the token (RFC 7692 §7.1).
        &["permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits=\"15\""],
    ];
    let big = chat_text(2000);
    let small = "{\"event\":\"ping\"}";
    for offer in offers {
        let (mut peer, accepted) = open(addr, offer).await;
        assert_eq!(accepted, [ACCEPTED], "{offer:?}");
        // Above the threshold: compressed both ways.
        peer.send(&client_frame(FIN | RSV1 | TEXT, &compress(big.as_bytes())))
            .await;
        let echoed = peer.read_frame().await.expect("the echo");
        assert_eq!(echoed.first, FIN | RSV1 | TEXT, "{offer:?}");
        assert!(
            echoed.payload.len() < big.len() / 4,
            "{}",
            echoed.payload.len()
        );
        assert_eq!(inflate(&echoed.payload), big.as_bytes());
        // Below it: the server sends it as it is, whichever way it came.
        for frame in [
            client_frame(FIN | TEXT, small.as_bytes()),
            client_frame(FIN | RSV1 | TEXT, &compress(small.as_bytes())),
        ] {
            peer.send(&frame).await;
            let echoed = peer.read_frame().await.expect("the echo");
            assert_eq!(
                (echoed.first, &echoed.payload[..]),
                (FIN | TEXT, small.as_bytes())
            );
        }
        // A compressed message in fragments, RSV1 on the first only.
        let compressed = compress(big.as_bytes());
        let (a, rest) = compressed.split_at(10);
        let (b, c) = rest.split_at(rest.len() / 2);
        peer.send(&client_frame(RSV1 | BINARY, a)).await;
        peer.send(&client_frame(CONTINUATION, b)).await;
        peer.send(&client_frame(FIN | CONTINUATION, c)).await;
        let echoed = peer.read_frame().await.expect("the echo");
        assert_eq!(echoed.first, FIN | RSV1 | BINARY);
        assert_eq!(inflate(&echoed.payload), big.as_bytes());
    }
}

#[tokio::test]
async fn a_compressed_frame_in_the_same_write_as_the_request_is_inflated() {
    let addr = serve(deflate_server_config(), AcceptAll, echo).await;
    let big = chat_text(1000);
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut bytes = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        common::KEY
    )
    .into_bytes();
    bytes.extend(client_frame(FIN | RSV1 | TEXT, &compress(big.as_bytes())));
    stream.write_all(&bytes).await.expect("send");
    let (head, buf) = read_head(&mut stream).await;
    assert_eq!(header_values(&head, "sec-websocket-extensions"), [ACCEPTED]);
    let mut peer = Peer { stream, buf };
    let echoed = peer.read_frame().await.expect("the echo");
    assert_eq!(echoed.first, FIN | RSV1 | TEXT);
    assert_eq!(inflate(&echoed.payload), big.as_bytes());
}

#[tokio::test]
async fn with_context_takeover_an_empty_message_is_an_empty_stored_block() {
    let mut deflate = DeflateConfig::default();
    deflate.server_no_context_takeover(false).threshold(0);
    let mut config = Config::default();
    config.deflate(Some(deflate));
    let addr = serve(config, AcceptAll, echo).await;
    let (mut peer, accepted) = open(addr, &["permessage-deflate"]).await;
    assert_eq!(accepted, ["permessage-deflate; client_no_context_takeover"]);
    // The server keeps its context: so must the inflater reading it.
    let mut inflater = Inflater::new(15, false);
    let big = chat_text(500);
    for message in [big.as_str(), "", "", big.as_str(), "x"] {
        peer.send(&client_frame(FIN | TEXT, message.as_bytes()))
            .await;
        let echoed = peer.read_frame().await.expect("the echo");
        assert_eq!(echoed.first, FIN | RSV1 | TEXT, "{message:?}");
        if message.is_empty() {
            // RFC 7692 §7.2.3.6: zlib has nothing to flush; an empty payload
            // would leave our inflater inside the tail it appends.
            assert_eq!(echoed.payload, [0x00]);
        }
        let mut out = Vec::new();
        inflater
            .inflate(&echoed.payload, true, &mut out, usize::MAX)
            .expect("valid compressed data");
        assert_eq!(out, message.as_bytes());
    }
}

#[tokio::test]
async fn a_server_without_an_offer_refuses_compressed_frames_with_1002() {
    let addr = serve(deflate_server_config(), AcceptAll, echo).await;
    let (mut peer, accepted) = open(addr, &[]).await;
    assert!(accepted.is_empty());
    peer.send(&client_frame(
        FIN | RSV1 | BINARY,
        &compress(b"hello hello hello"),
    ))
    .await;
    assert_eq!(peer.read_close_code().await, 1002);
    // Nor does a server with compression off accept an offer.
    let addr = serve(Config::default(), AcceptAll, echo).await;
    let (mut peer, accepted) = open(addr, &["permessage-deflate"]).await;
    assert!(accepted.is_empty());
    peer.send(&client_frame(
        FIN | RSV1 | TEXT,
        &compress(b"hello hello hello"),
    ))
    .await;
    assert_eq!(peer.read_close_code().await, 1002);
}

#[tokio::test]
async fn rsv1_where_rfc_7692_forbids_it_closes_with_1002() {
    let addr = serve(deflate_server_config(), AcceptAll, echo).await;
    let compressed = compress(chat_text(500).as_bytes());
    let (head, tail) = compressed.split_at(compressed.len() / 2);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "RSV1 on a continuation of a compressed message (§6.1)",
            [
                client_frame(RSV1 | TEXT, head),
                client_frame(FIN | RSV1 | CONTINUATION, tail),
            ]
            .concat(),
        ),
        (
            "RSV1 on a continuation of an uncompressed message",
            [
                client_frame(TEXT, b"plain "),
                client_frame(FIN | RSV1 | CONTINUATION, &compress(b"text")),
            ]
            .concat(),
        ),
        ("RSV1 on a ping", client_frame(FIN | RSV1 | PING, b"p")),
        (
            "RSV1 on a close",
            client_frame(FIN | RSV1 | CLOSE, &1000u16.to_be_bytes()),
        ),
        (
            "RSV2 on a text frame",
            client_frame(FIN | RSV2 | TEXT, b"x"),
        ),
    ];
    for (name, bytes) in cases {
        let mut peer = open_compressed(addr, "permessage-deflate").await;
        peer.send(&bytes).await;
        assert_eq!(peer.read_close_code().await, 1002, "{name}");
    }
}

#[tokio::test]
async fn corrupt_compressed_data_closes_with_1007() {
    let addr = serve(deflate_server_config(), AcceptAll, echo).await;
    // A deflate stream whose first block has the reserved type 3.
    let mut bad_block = vec![0x07];
    bad_block.extend_from_slice(&[0x55; 40]);
    // Valid compressed data, but the text inside is not UTF-8 (§8.1 applies
    // to the inflated message).
    let mut not_utf8 = chat_text(200).into_bytes();
    not_utf8.extend_from_slice(b"\xC3\x28");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "bytes that are not deflate",
            client_frame(FIN | RSV1 | BINARY, &[0xff; 32]),
        ),
        (
            "a reserved block type",
            client_frame(FIN | RSV1 | BINARY, &bad_block),
        ),
        (
            "compressed text that is not UTF-8",
            client_frame(FIN | RSV1 | TEXT, &compress(&not_utf8)),
        ),
    ];
    for (name, bytes) in cases {
        let mut peer = open_compressed(addr, "permessage-deflate").await;
        peer.send(&bytes).await;
        assert_eq!(peer.read_close_code().await, 1007, "{name}");
    }
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak resident size `VmHWM` to the current one (Linux ≥ 4.0).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[tokio::test]
async fn an_inflation_bomb_closes_with_1009_and_memory_stays_bounded() {
    const MAX_MESSAGE: usize = 1 << 20;
    const ZEROS_MIB: usize = 64;
    const BOMBS: usize = 4;
    let mut config = deflate_server_config();
    config.max_message_size(MAX_MESSAGE);
    let addr = serve(config, AcceptAll, echo).await;
    assert_eq!(
        inflate(&bomb(3)),
        vec![0; 3 << 20],
        "the bomb is made right"
    );
    let bomb = bomb(ZEROS_MIB);
    assert!(bomb.len() < 128 * 1024, "{} bytes", bomb.len());
    let (head, tail) = bomb.split_at(bomb.len() / 2);
    let whole = client_frame(FIN | RSV1 | BINARY, &bomb);
    let fragmented = [
        client_frame(RSV1 | BINARY, head),
        client_frame(FIN | CONTINUATION, tail),
    ]
    .concat();
    // Warm up: one connection and one compressed message, so that the
    // baseline counts the runtime and the server's first allocations.
    let mut warm = open_compressed(addr, "permessage-deflate").await;
    let text = chat_text(1000);
    warm.send(&client_frame(FIN | RSV1 | TEXT, &compress(text.as_bytes())))
        .await;
    warm.read_frame().await.expect("the echo");

    let peak_resets = reset_peak();
    let before = status_kib("VmRSS:").expect("VmRSS in /proc/self/status");
    let mut peers = Vec::new();
    for i in 0..BOMBS {
        let mut peer = open_compressed(addr, "permessage-deflate").await;
        peer.send(if i % 2 == 0 { &whole } else { &fragmented })
            .await;
        peers.push(peer);
    }
    for mut peer in peers {
        assert_eq!(peer.read_close_code().await, 1009);
    }
    let after = if peak_resets {
        status_kib("VmHWM:")
    } else {
        status_kib("VmRSS:")
    }
    .expect("VmHWM in /proc/self/status");
    let growth_mib = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "{BOMBS} bombs of {} bytes ({} MiB of zeros each): {} KiB before, {} {after} KiB after (+{growth_mib:.1} MiB)",
        bomb.len(),
        ZEROS_MIB,
        before,
        if peak_resets { "peak" } else { "current" }
    );
    assert!(
        growth_mib < 32.0,
        "resident memory grew by {growth_mib:.1} MiB"
    );

    // The connection that behaved is still served.
    warm.send(&client_frame(FIN | TEXT, b"still here")).await;
    let echoed = warm.read_frame().await.expect("the echo");
    assert_eq!(echoed.payload, b"still here");
}

// ---- the client side --------------------------------------------------------

/// A server that answers one upgrade with `extensions` (one header line per
/// element), then hands the connection to `then`.
async fn fake_server<F, Fut>(extensions: &[&str], then: F) -> SocketAddr
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    fake_server_with(extensions, Vec::new(), then).await
}

/// Like [`fake_server`], sending `first` in the same write as the 101.
async fn fake_server_with<F, Fut>(extensions: &[&str], first: Vec<u8>, then: F) -> SocketAddr
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let mut response = String::from(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    for value in extensions {
        response.push_str(&format!("Sec-WebSocket-Extensions: {value}\r\n"));
    }
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let (head, buf) = read_head(&mut stream).await;
        let key = header_values(&head, "sec-websocket-key")
            .pop()
            .expect("a key");
        let response = format!(
            "{response}Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(&key)
        );
        let mut bytes = response.into_bytes();
        bytes.extend_from_slice(&first);
        if stream.write_all(&bytes).await.is_ok() {
            then(Peer { stream, buf }).await;
        }
    });
    addr
}

fn client_options(deflate: Option<DeflateConfig>) -> ConnectOptions {
    let mut config = Config::default();
    config.deflate(deflate);
    ConnectOptions::default().config(config)
}

#[tokio::test]
async fn the_client_refuses_a_bad_permessage_deflate_response() {
    let mut narrow = DeflateConfig::default();
    narrow.server_max_window_bits(10);
    let cases: Vec<(&str, Option<DeflateConfig>, &[&str])> = vec![
        (
            "unknown parameter",
            Some(DeflateConfig::client()),
            &["permessage-deflate; bogus"],
        ),
        (
            "unknown parameter with a value",
            Some(DeflateConfig::client()),
            &["permessage-deflate; server_no_context_takeover; x=1"],
        ),
        (
            "client_max_window_bits without a value (§7.1.2.2)",
            Some(DeflateConfig::client()),
            &["permessage-deflate; client_max_window_bits"],
        ),
        (
            "repeated parameter",
            Some(DeflateConfig::client()),
            &["permessage-deflate; client_no_context_takeover; client_no_context_takeover"],
        ),
        (
            "server_max_window_bits=16",
            Some(DeflateConfig::client()),
            &["permessage-deflate; server_max_window_bits=16"],
        ),
        (
            "server_max_window_bits=7",
            Some(DeflateConfig::client()),
            &["permessage-deflate; server_max_window_bits=7"],
        ),
        (
            "server_max_window_bits=010",
            Some(DeflateConfig::client()),
            &["permessage-deflate; server_max_window_bits=010"],
        ),
        (
            "client_max_window_bits=16",
            Some(DeflateConfig::client()),
            &["permessage-deflate; client_max_window_bits=16"],
        ),
        (
            "a value on server_no_context_takeover",
            Some(DeflateConfig::client()),
            &["permessage-deflate; server_no_context_takeover=1"],
        ),
        (
            "accepted twice",
            Some(DeflateConfig::client()),
            &["permessage-deflate", "permessage-deflate"],
        ),
        (
            "an extension that was not offered",
            Some(DeflateConfig::client()),
            &["x-webkit-deflate-frame"],
        ),
        (
            "permessage-deflate when compression is off",
            None,
            &["permessage-deflate"],
        ),
        (
            "a larger server window than offered",
            Some(narrow.clone()),
            &["permessage-deflate; server_no_context_takeover; server_max_window_bits=12"],
        ),
        (
            "server_no_context_takeover asked for and not granted",
            Some(narrow),
            &["permessage-deflate; server_max_window_bits=10"],
        ),
        (
            "not a valid extension list",
            Some(DeflateConfig::client()),
            &["permessage-deflate; =1"],
        ),
    ];
    for (name, deflate, response) in cases {
        let addr = fake_server(response, |_| async {}).await;
        let result = within(
            WAIT,
            "connect",
            connect_with(&format!("ws://{addr}/"), client_options(deflate)),
        )
        .await;
        match result {
            Ok((_, response)) => panic!("{name}: connected with {:?}", response.extensions),
            Err(error) => assert!(error.is_handshake(), "{name}: {error}"),
        }
    }
}

#[tokio::test]
async fn the_client_compresses_above_its_threshold_and_inflates_with_context_takeover() {
    let big = chat_text(1500);
    let small = "{\"event\":\"ping\"}";
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    // The server keeps its context between messages and narrows the
    // client's window to 2^10 bytes. Its first messages go out in the same
    // write as the 101.
    let mut deflater = Deflater::new(6, 15, false);
    let mut compressed = Vec::new();
    for _ in 0..2 {
        let mut out = Vec::new();
        deflater.compress(big.as_bytes(), &mut out);
        compressed.push(out);
    }
    // With context takeover the second copy is mostly references.
    assert!(compressed[1].len() < compressed[0].len() / 4);
    let mut first = Vec::new();
    for payload in &compressed {
        first.extend(server_frame(FIN | RSV1 | TEXT, payload));
    }
    first.extend(server_frame(FIN | TEXT, small.as_bytes()));
    let addr = fake_server_with(
        &["permessage-deflate; client_max_window_bits=10"],
        first,
        |mut peer| async move {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let frame = peer.read_frame().await.expect("a client frame");
                let mut out = Vec::new();
                if frame.rsv1() {
                    Inflater::new(10, false)
                        .inflate(&frame.payload, frame.fin(), &mut out, usize::MAX)
                        .expect("valid compressed data");
                } else {
                    out = frame.payload.clone();
                }
                seen.push((frame.rsv1(), frame.payload.len(), out));
            }
            let _ = done_tx.send(seen);
            let _ = peer.read_frame().await;
        },
    )
    .await;
    let (mut socket, response) = within(
        WAIT,
        "connect",
        connect_with(
            &format!("ws://{addr}/"),
            client_options(Some(DeflateConfig::client())),
        ),
    )
    .await
    .expect("connect");
    assert_eq!(response.extensions.len(), 1);
    for expected in [&big, &big, &small.to_owned()] {
        let message = within(WAIT, "a message", socket.recv())
            .await
            .expect("a message")
            .expect("no error");
        assert_eq!(message, Message::text(expected.as_str()));
    }
    // 2000 random letters twice: with a 2^15 window the second copy is one
    // back reference; within 2^10 bytes it cannot be, and costs as much as
    // the first.
    let wide = letters(2000).repeat(2);
    let mut unbounded = Vec::new();
    Deflater::new(6, 15, true).compress(wide.as_bytes(), &mut unbounded);
    assert!(unbounded.len() < 1500, "{}", unbounded.len());
    socket.send(Message::text(wide.as_str())).await.unwrap();
    socket.send(Message::text(small)).await.unwrap();
    let seen = within(WAIT, "the server's view", done_rx).await.unwrap();
    let (compressed, size, ref data) = seen[0];
    assert!(compressed, "above the threshold: compressed");
    assert_eq!(data, wide.as_bytes());
    assert!(size > 2000, "{size} bytes: a window over 2^10 was used");
    assert_eq!(
        seen[1],
        (false, small.len(), small.as_bytes().to_vec()),
        "below: as it is"
    );
}

#[tokio::test]
async fn the_client_closes_with_1009_on_a_bomb_and_1002_on_unexpected_rsv1() {
    // A bomb against a client limited to 1 MiB messages.
    let bomb = bomb(64);
    let (code_tx, code_rx) = tokio::sync::oneshot::channel();
    let addr = fake_server(&[ACCEPTED], |mut peer| async move {
        peer.send(&server_frame(FIN | RSV1 | BINARY, &bomb)).await;
        let _ = code_tx.send(peer.read_close_code().await);
    })
    .await;
    let mut options = client_options(Some(DeflateConfig::client()));
    options.config.max_message_size(1 << 20);
    let (mut socket, _) = within(
        WAIT,
        "connect",
        connect_with(&format!("ws://{addr}/"), options),
    )
    .await
    .expect("connect");
    let closed = closed_code(within(WAIT, "the close", socket.next_event()).await);
    assert_eq!(closed, 1009);
    assert_eq!(
        within(WAIT, "the server's view", code_rx).await.unwrap(),
        1009
    );

    // RSV1 from a server that did not agree to compression.
    let (code_tx, code_rx) = tokio::sync::oneshot::channel();
    let addr = fake_server(&[], |mut peer| async move {
        peer.send(&server_frame(FIN | RSV1 | TEXT, &compress(b"hello hello")))
            .await;
        let _ = code_tx.send(peer.read_close_code().await);
    })
    .await;
    let (mut socket, _) = within(
        WAIT,
        "connect",
        connect_with(
            &format!("ws://{addr}/"),
            client_options(Some(DeflateConfig::client())),
        ),
    )
    .await
    .expect("connect");
    let closed = closed_code(within(WAIT, "the close", socket.next_event()).await);
    assert_eq!(closed, 1002);
    assert_eq!(
        within(WAIT, "the server's view", code_rx).await.unwrap(),
        1002
    );
}

/// The close code a failed connection reports.
fn closed_code(event: Result<Event, switchboard_net::Error>) -> u16 {
    match event {
        Ok(Event::Closed(info)) => info.code().0,
        Err(error) => error
            .protocol_error()
            .map(|e| e.close_code().0)
            .unwrap_or_else(|| panic!("not a protocol error: {error}")),
        Ok(other) => panic!("expected the close, got {other:?}"),
    }
}
