//! Our client's interop battery against any echo server.
//!
//! ```text
//! cargo run --release --example interop_client -- ws://127.0.0.1:9001/
//! cargo run --release --example interop_client -- ws://127.0.0.1:9001/ --deflate
//! ```
//!
//! The same checks as `tests/interop/py_client.py` and `node_client.mjs`, made
//! by our client: each check opens its own connection, so one failure does not
//! hide the rest, and prints `ok - NAME` or `not ok - NAME: DETAIL`. Exits 1 if
//! any check failed or the battery ran out of time. The server must echo text
//! as text and binary as binary, and answer a close with the client's own code
//! and reason.
//!
//! With `--deflate` every connection offers permessage-deflate
//! ([`DeflateConfig::client`]) and fails its check unless the server accepted
//! it; three more checks send messages above and below the compression
//! threshold, alone and mixed on one connection.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use switchboard_net::{
    connect_with, CloseCode, Config, ConnectOptions, Event, Message, MessageKind, WebSocket,
};
use switchboard_proto::deflate::{DeflateConfig, EXTENSION};

/// How long one check may take, connection and close included.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the whole battery may take (`tests/interop/run.sh` allows 60 s).
const TOTAL_TIMEOUT: Duration = Duration::from_secs(50);
/// How long the polite close at the end of a check may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
const BIG: usize = 16 * 1024 * 1024;
const UNICODE: &str = "héllo wörld — ünïcödé: 日本語, Ελληνικά, emoji 🎉🚀";

type CheckResult = Result<(), String>;
type Check = fn(String) -> Pin<Box<dyn Future<Output = CheckResult> + Send>>;

const CHECKS: &[(&str, Check)] = &[
    ("text", |url| Box::pin(check_text(url))),
    ("binary", |url| Box::pin(check_binary(url))),
    ("empty text", |url| Box::pin(check_empty_text(url))),
    ("empty binary", |url| Box::pin(check_empty_binary(url))),
    ("16 MiB binary", |url| Box::pin(check_big_binary(url))),
    ("fragmented text (3 fragments)", |url| {
        Box::pin(check_fragmented(url))
    }),
    ("unicode text", |url| Box::pin(check_unicode(url))),
    ("ping with payload gets matching pong", |url| {
        Box::pin(check_ping_pong(url))
    }),
    ("close 4000 'bye' echoed", |url| {
        Box::pin(check_close_code(url))
    }),
];

/// The checks added by `--deflate`.
const DEFLATE_CHECKS: &[(&str, Check)] = &[
    ("permessage-deflate negotiated", |url| {
        Box::pin(check_negotiated(url))
    }),
    ("compressed text above the threshold", |url| {
        Box::pin(check_above_threshold(url))
    }),
    ("text below the threshold", |url| {
        Box::pin(check_below_threshold(url))
    }),
    (
        "40 messages above and below the threshold on one connection",
        |url| Box::pin(check_mixed(url)),
    ),
];

/// Whether `--deflate` was given: offer permessage-deflate, and insist on it.
static DEFLATE: OnceLock<bool> = OnceLock::new();

#[tokio::main]
async fn main() -> ExitCode {
    let (flags, urls): (Vec<String>, Vec<String>) = std::env::args()
        .skip(1)
        .partition(|arg| arg.starts_with('-'));
    let deflate = flags.iter().any(|flag| flag == "--deflate");
    let ([url], false) = (
        urls.as_slice(),
        flags.iter().any(|flag| flag != "--deflate"),
    ) else {
        eprintln!("usage: interop_client ws://127.0.0.1:PORT/ [--deflate]");
        return ExitCode::from(2);
    };
    let url = url.clone();
    DEFLATE.get_or_init(|| deflate);
    match tokio::time::timeout(TOTAL_TIMEOUT, run_all(&url)).await {
        Ok((passed, total)) => {
            println!("interop_client: {passed} of {total} checks passed against {url}");
            if passed == total {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(_) => {
            println!(
                "not ok - battery: did not finish within {}s",
                TOTAL_TIMEOUT.as_secs()
            );
            ExitCode::FAILURE
        }
    }
}

/// Runs every check in turn; returns how many passed, and how many ran.
async fn run_all(url: &str) -> (usize, usize) {
    let mut passed = 0;
    let extra = if deflating() { DEFLATE_CHECKS } else { &[] };
    let checks: Vec<_> = CHECKS.iter().chain(extra).collect();
    for (name, check) in &checks {
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check(url.to_owned())).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
        };
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("ok - {name}");
            }
            Err(detail) => println!("not ok - {name}: {detail}"),
        }
    }
    (passed, checks.len())
}

fn deflating() -> bool {
    DEFLATE.get().copied().unwrap_or(false)
}

async fn check_text(url: String) -> CheckResult {
    echo_roundtrip(&url, Message::text("hello, switchboard")).await
}

async fn check_binary(url: String) -> CheckResult {
    echo_roundtrip(&url, Message::binary((0..=255u8).collect::<Vec<_>>())).await
}

async fn check_empty_text(url: String) -> CheckResult {
    echo_roundtrip(&url, Message::text("")).await
}

async fn check_empty_binary(url: String) -> CheckResult {
    echo_roundtrip(&url, Message::binary(Bytes::new())).await
}

async fn check_big_binary(url: String) -> CheckResult {
    // A pattern that no off-by-one copy or reordering leaves unchanged.
    let data: Vec<u8> = (0..BIG as u32)
        .map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8)
        .collect();
    echo_roundtrip(&url, Message::binary(data)).await
}

async fn check_unicode(url: String) -> CheckResult {
    echo_roundtrip(&url, Message::text(UNICODE)).await
}

/// Three fragments, the last code point split between the second and third,
/// so the peer has to validate UTF-8 across fragment boundaries.
async fn check_fragmented(url: String) -> CheckResult {
    let whole = "fragmented — 日本";
    let bytes = Bytes::from_static(whole.as_bytes());
    let split_char = whole.len() - 2; // inside the 3-byte "本"
    let fragments = [
        bytes.slice(..4),
        bytes.slice(4..split_char),
        bytes.slice(split_char..),
    ];
    let mut socket = open(&url).await?;
    let last = fragments.len() - 1;
    for (i, fragment) in fragments.into_iter().enumerate() {
        socket
            .writer()
            .send_fragment(MessageKind::Text, fragment, i == last)
            .await
            .map_err(|error| format!("sending fragment {i}: {error}"))?;
    }
    let reply = next_message(&mut socket).await?;
    same_message(&Message::text(whole), &reply)?;
    close_politely(socket).await;
    Ok(())
}

/// A JSON chat message of exactly `len` bytes, compressible like real traffic.
fn chat_json(seed: usize, len: usize) -> String {
    const WORDS: &[&str] = &[
        "hello",
        "lobby",
        "deploy",
        "coffee",
        "switchboard",
        "message",
        "latency",
        "room",
        "tonight",
        "build",
        "green",
        "review",
    ];
    let mut text = String::new();
    let mut i = seed;
    while text.len() < len {
        text.push_str(WORDS[i * 7 % WORDS.len()]);
        text.push(' ');
        i += 1;
    }
    let head = format!(r#"{{"event":"chat","room":"lobby","from":"u{seed}","data":{{"text":""#);
    let mut json = format!("{head}{text}");
    json.truncate(len.saturating_sub(3).max(head.len()));
    json.push_str(r#""}}"#);
    json
}

async fn check_negotiated(url: String) -> CheckResult {
    let (socket, extensions) = open_with_extensions(&url).await?;
    println!("# Sec-WebSocket-Extensions: {}", extensions.join(", "));
    close_politely(socket).await;
    Ok(())
}

async fn check_above_threshold(url: String) -> CheckResult {
    let message = chat_json(1, 4096);
    if message.len() <= DeflateConfig::client().get_threshold() {
        return Err("the message is not above the threshold".into());
    }
    echo_roundtrip(&url, Message::text(message)).await
}

async fn check_below_threshold(url: String) -> CheckResult {
    let message = chat_json(2, 60);
    if message.len() >= DeflateConfig::client().get_threshold() {
        return Err("the message is not below the threshold".into());
    }
    echo_roundtrip(&url, Message::text(message)).await
}

/// Messages alternating above and below the threshold, text and binary,
/// some empty, on one connection: compressed and plain messages interleave,
/// and a peer keeping its compression context between messages is exercised.
async fn check_mixed(url: String) -> CheckResult {
    let mut socket = open(&url).await?;
    for i in 0..40 {
        let len = if i % 2 == 0 { 300 + 97 * i } else { 20 + i };
        let text = if i % 10 == 5 {
            String::new()
        } else {
            chat_json(i, len)
        };
        let message = if i % 4 == 3 {
            Message::binary(text.into_bytes())
        } else {
            Message::text(text)
        };
        socket
            .send(message.clone())
            .await
            .map_err(|error| format!("sending message {i}: {error}"))?;
        let reply = next_message(&mut socket).await?;
        same_message(&message, &reply).map_err(|error| format!("message {i}: {error}"))?;
    }
    close_politely(socket).await;
    Ok(())
}

async fn check_ping_pong(url: String) -> CheckResult {
    let payload: &[u8] = b"ping-payload-\x00\xff";
    let mut socket = open(&url).await?;
    socket
        .writer()
        .ping(payload)
        .await
        .map_err(|error| format!("sending ping: {error}"))?;
    loop {
        match socket.next_event().await {
            Ok(Event::Pong(data)) if data == payload => break,
            Ok(Event::Pong(data)) => return Err(format!("pong carried {data:?}, not {payload:?}")),
            Ok(Event::Ping(_)) => continue,
            Ok(Event::Closed(info)) => {
                return Err(format!("closed ({}) before a pong", info.code()))
            }
            Ok(other) => return Err(format!("expected a pong, got {other:?}")),
            Err(error) => return Err(format!("waiting for a pong: {error}")),
        }
    }
    close_politely(socket).await;
    Ok(())
}

async fn check_close_code(url: String) -> CheckResult {
    let mut socket = open(&url).await?;
    let info = socket
        .close(CloseCode(4000), "bye")
        .await
        .map_err(|error| format!("closing: {error}"))?;
    let Some(received) = &info.received else {
        return Err(format!("no close frame came back ({:?})", info.cause));
    };
    if received.code != Some(CloseCode(4000)) {
        return Err(format!("peer closed with code {:?}", received.code));
    }
    if received.reason != "bye" {
        return Err(format!("peer closed with reason {:?}", received.reason));
    }
    if !info.is_clean() {
        return Err(format!(
            "closing handshake did not complete: {:?}",
            info.cause
        ));
    }
    Ok(())
}

/// Connects, offering permessage-deflate with `--deflate`; then the
/// connection must have it.
async fn open(url: &str) -> Result<WebSocket, String> {
    open_with_extensions(url).await.map(|(socket, _)| socket)
}

/// Connects like [`open`]; also returns the accepted extensions, as the
/// server's `Sec-WebSocket-Extensions` values.
async fn open_with_extensions(url: &str) -> Result<(WebSocket, Vec<String>), String> {
    let mut config = Config::default();
    if deflating() {
        config.deflate(Some(DeflateConfig::client()));
    }
    let options = ConnectOptions::default().config(config);
    let (socket, response) = connect_with(url, options)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let extensions: Vec<String> = response.extensions.iter().map(|e| e.to_string()).collect();
    let compressed = response
        .extensions
        .iter()
        .any(|e| e.name.eq_ignore_ascii_case(EXTENSION));
    if compressed != deflating() {
        return Err(format!(
            "permessage-deflate offered: {}, accepted: {extensions:?}",
            deflating()
        ));
    }
    Ok((socket, extensions))
}

/// Sends `message` on a fresh connection and checks that it comes back unchanged.
async fn echo_roundtrip(url: &str, message: Message) -> CheckResult {
    let mut socket = open(url).await?;
    socket
        .send(message.clone())
        .await
        .map_err(|error| format!("sending {}: {error}", describe(&message)))?;
    let reply = next_message(&mut socket).await?;
    same_message(&message, &reply)?;
    close_politely(socket).await;
    Ok(())
}

async fn next_message(socket: &mut WebSocket) -> Result<Message, String> {
    match socket.recv().await {
        Some(Ok(message)) => Ok(message),
        Some(Err(error)) => Err(format!("receiving: {error}")),
        None => Err("connection closed before the echo".into()),
    }
}

fn same_message(sent: &Message, got: &Message) -> CheckResult {
    if sent.kind() != got.kind() {
        return Err(format!("sent {}, got {}", describe(sent), describe(got)));
    }
    if sent.payload() != got.payload() {
        let at = sent
            .payload()
            .iter()
            .zip(got.payload())
            .position(|(a, b)| a != b)
            .unwrap_or(sent.len().min(got.len()));
        return Err(format!(
            "sent {}, got {} differing from byte {at}",
            describe(sent),
            describe(got)
        ));
    }
    Ok(())
}

fn describe(message: &Message) -> String {
    let kind = match message.kind() {
        MessageKind::Text => "text",
        MessageKind::Binary => "binary",
    };
    format!("{kind} of {} bytes", message.len())
}

/// Ends a check's connection with 1000; a peer that does not answer in time
/// is the close check's business, not this one's.
async fn close_politely(mut socket: WebSocket) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(CloseCode::NORMAL, "done")).await;
}
