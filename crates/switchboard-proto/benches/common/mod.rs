//! Wire bytes for the benchmarks, made by a client-side connection (masked,
//! as a server receives them).

#![allow(dead_code)]

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use switchboard_proto::{Config, Connection, MessageKind, Role};

/// Everything a client connection queued, in one buffer.
fn drain(client: &mut Connection) -> BytesMut {
    let mut wire = BytesMut::new();
    while let Some(chunk) = client.poll_transmit() {
        wire.extend_from_slice(&chunk);
    }
    wire
}

/// `count` whole text messages of `size` bytes each, masked.
pub fn text_messages(count: usize, size: usize) -> BytesMut {
    let mut client = Connection::new(Role::Client, Config::default(), Instant::now());
    let text = "x".repeat(size);
    for _ in 0..count {
        client.send_text(text.as_str()).expect("client can send");
    }
    drain(&mut client)
}

/// One text message of `fragments` frames of `size` bytes each, masked.
pub fn fragmented_text(fragments: usize, size: usize) -> BytesMut {
    let mut client = Connection::new(Role::Client, Config::default(), Instant::now());
    let piece = Bytes::from("é".repeat(size / 2));
    for i in 0..fragments {
        client
            .send_fragment(MessageKind::Text, piece.clone(), i + 1 == fragments)
            .expect("client can send fragments");
    }
    drain(&mut client)
}

/// A server-side connection to feed those bytes to.
pub fn server() -> Connection {
    Connection::new(Role::Server, Config::default(), Instant::now())
}
