//! Helpers shared by the integration tests: servers on 127.0.0.1 port 0, raw
//! TCP peers that speak the handshake and frames byte by byte, and timeouts.
//!
//! Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use switchboard_net::{accept, Accepted, Config, Handler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The bound on any single wait in these tests: generous, so that a loaded
/// machine does not fail them, yet finite, so that a hang is a failure.
pub const WAIT: Duration = Duration::from_secs(10);

/// A valid `Sec-WebSocket-Key` (the RFC 6455 §1.3 example).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Awaits `future` for at most `limit`, panicking with `what` if it takes longer.
pub async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Serves on a fresh 127.0.0.1 port: every connection goes through
/// [`accept`] with `handler`, and each upgraded one is handed to `on_socket`
/// in its own task. Connections refused or answered as HTTP end there.
pub async fn serve<H, F, Fut>(config: Config, handler: H, on_socket: F) -> SocketAddr
where
    H: Handler<Admission = ()> + 'static,
    F: Fn(Accepted) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    serve_on(listener, config, handler, on_socket)
}

/// Like [`serve`], on a listener the caller made.
pub fn serve_on<H, F, Fut>(
    listener: TcpListener,
    config: Config,
    handler: H,
    on_socket: F,
) -> SocketAddr
where
    H: Handler<Admission = ()> + 'static,
    F: Fn(Accepted) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr().expect("local addr");
    let config = Arc::new(config);
    let handler = Arc::new(handler);
    let on_socket = Arc::new(on_socket);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (config, handler, on_socket) = (config.clone(), handler.clone(), on_socket.clone());
            tokio::spawn(async move {
                if let Ok(Some(accepted)) = accept(stream, &config, &*handler).await {
                    on_socket(accepted).await;
                }
            });
        }
    });
    addr
}

/// Echoes every message back until the connection ends.
pub async fn echo(accepted: Accepted) {
    let mut socket = accepted.socket;
    while let Some(Ok(message)) = socket.recv().await {
        if socket.feed(message).await.is_err() {
            break;
        }
    }
}

/// A valid upgrade request for `path` on `addr`, as bytes.
pub fn upgrade_request(addr: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Sends `request` on a new connection and reads the whole answer, until the
/// server closes (a reset after the answer counts as a close: a server that
/// refuses a head it did not read in full may close with unread input).
pub async fn http_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may refuse before it has read everything; what it answers
    // is what matters.
    let _ = stream.write_all(request).await;
    read_to_close(&mut stream).await
}

/// Reads until the peer closes, within [`WAIT`], as text.
pub async fn read_to_close(stream: &mut TcpStream) -> String {
    String::from_utf8_lossy(&read_bytes_to_close(stream).await).into_owned()
}

/// Reads until the peer closes, within [`WAIT`].
pub async fn read_bytes_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    within(WAIT, "server closes after its answer", async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    answer
}

/// The first line of an HTTP response, without its line ending.
pub fn status_line(response: &str) -> &str {
    response.split("\r\n").next().unwrap_or_default()
}

/// Whether an HTTP response head has the header `name: value` (name
/// case-insensitive, value exact after trimming).
pub fn has_header(response: &str, name: &str, value: &str) -> bool {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n").skip(1).any(|line| {
        line.split_once(':')
            .is_some_and(|(n, v)| n.trim().eq_ignore_ascii_case(name) && v.trim() == value)
    })
}

/// A frame as a server sends it (unmasked), read off a raw connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame, if it has one.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// A client that speaks WebSocket by hand over raw TCP: it sends exactly the
/// bytes a test gives it and parses what the server sends.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    /// Connects and completes a valid opening handshake on `path`.
    pub async fn handshake(addr: SocketAddr, path: &str) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self::handshake_on(stream, addr, path).await
    }

    /// Completes a valid opening handshake on a connected stream.
    pub async fn handshake_on(mut stream: TcpStream, addr: SocketAddr, path: &str) -> RawClient {
        stream
            .write_all(upgrade_request(addr, path).as_bytes())
            .await
            .expect("send request");
        let (head, buf) = read_head(&mut stream).await;
        assert!(
            head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{head}"
        );
        RawClient { stream, buf }
    }

    /// Bytes read past the handshake, for [`switchboard_net::WebSocket::from_tcp`].
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.buf)
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        within(WAIT, "raw send", self.stream.write_all(bytes))
            .await
            .expect("raw send");
    }

    /// The next frame, or `None` when the server closed the connection.
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        within(WAIT, "a frame from the server", async {
            loop {
                if let Some(frame) = self.parse_frame() {
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

    /// Reads frames until a close frame, which it returns; panics if the
    /// connection ends first.
    pub async fn read_close(&mut self) -> RawFrame {
        loop {
            match self.read_frame().await {
                Some(frame) if frame.opcode == 0x8 => return frame,
                Some(_) => continue,
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Asserts that the server closes the TCP connection with nothing more to say.
    pub async fn expect_eof(&mut self) {
        if let Some(frame) = self.read_frame().await {
            panic!("expected the connection to close, got {frame:?}");
        }
    }

    fn parse_frame(&mut self) -> Option<RawFrame> {
        let buf = &self.buf[..];
        if buf.len() < 2 {
            return None;
        }
        assert_eq!(buf[1] & 0x80, 0, "server frames are never masked");
        let (len, header) = match buf[1] & 0x7F {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            short => (short as usize, 2),
        };
        if buf.len() < header + len {
            return None;
        }
        let frame = RawFrame {
            fin: buf[0] & 0x80 != 0,
            opcode: buf[0] & 0x0F,
            payload: buf[header..header + len].to_vec(),
        };
        self.buf.advance(header + len);
        Some(frame)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A client frame: `first_byte` holds FIN, RSV and the opcode as they go on the
/// wire; the payload is masked with a fixed key.
pub fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = frame_header(first_byte, true, payload.len() as u64);
    let key = [0x37, 0xFA, 0x21, 0x3D];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// A frame header with the given length, without mask key or payload.
pub fn frame_header(first_byte: u8, masked: bool, len: u64) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut header = vec![first_byte];
    match len {
        0..=125 => header.push(mask_bit | len as u8),
        126..=0xFFFF => {
            header.push(mask_bit | 126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(mask_bit | 127);
            header.extend_from_slice(&len.to_be_bytes());
        }
    }
    header
}

/// Reads an HTTP head; returns it and the bytes after it.
pub async fn read_head(stream: &mut TcpStream) -> (String, BytesMut) {
    let mut buf = BytesMut::with_capacity(4096);
    let len = within(WAIT, "an HTTP head", async {
        loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                return end + 4;
            }
            let n = stream.read_buf(&mut buf).await.expect("read head");
            assert!(n > 0, "closed before the end of the head: {buf:?}");
        }
    })
    .await;
    let head = String::from_utf8_lossy(&buf[..len]).into_owned();
    buf.advance(len);
    (head, buf)
}
