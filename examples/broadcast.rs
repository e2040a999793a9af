//! A raw broadcast server: every text or binary message a client sends goes
//! to every other client, unchanged.
//!
//! ```text
//! cargo run --release --example broadcast -- 127.0.0.1:9002
//! ```
//!
//! Each message is encoded into a frame once
//! ([`switchboard_proto::frame::encode_server_frame`]) and that one buffer is
//! pushed to every recipient's [`Outbox`] through a [`Cork`]: once the
//! messages at hand are pushed, the broadcasting task writes each socket
//! itself, all its new frames in one write, so a fan-out wakes no task for a
//! recipient that keeps up; what a socket cannot take waits in its
//! bounded outbox ([`QUEUE_LEN`] frames) for the client's own task, and a
//! client whose outbox is full misses the message. One task per client.
//! This is the server `switchboard bench fanout --protocol raw` measures, and
//! what the reference servers of `bench/peers` do in their `broadcast` mode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use bytes::Bytes;
use switchboard_net::{accept, AcceptAll, Config, Cork, Event, MessageKind, Outbox};
use switchboard_proto::frame::{encode_server_frame, OpCode};
use tokio::net::TcpStream;

/// Frames waiting for one client before the next broadcast to it is dropped.
const QUEUE_LEN: usize = 1024;
/// Bytes waiting for one client, likewise.
const QUEUE_BYTES: usize = 4 << 20;

/// The connected clients, each with its outbox.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, Outbox>>,
}

impl Registry {
    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Outbox>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn join(&self, outbox: Outbox) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.clients().insert(id, outbox);
        id
    }

    fn leave(&self, id: u64) {
        self.clients().remove(&id);
    }

    /// Pushes one encoded frame to every client but `from`, written when
    /// `cork` is flushed.
    fn broadcast(&self, from: u64, frame: &Bytes, cork: &mut Cork) {
        let now = Instant::now();
        for (id, outbox) in self.clients().iter() {
            if *id != from {
                let _ = outbox.push_corked(frame.clone(), now, cork);
            }
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "broadcast server listening on ws://{}",
        listener.local_addr()?
    );
    let config = Arc::new(Config::default());
    let registry = Arc::new(Registry::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let (config, registry) = (config.clone(), registry.clone());
        tokio::spawn(async move { serve(stream, &config, &registry).await });
    }
}

async fn serve(stream: TcpStream, config: &Config, registry: &Registry) {
    let Ok(Some(accepted)) = accept(stream, config, &AcceptAll).await else {
        return;
    };
    let (mut session, _) = accepted.into_session(QUEUE_LEN, QUEUE_BYTES);
    let id = registry.join(session.outbox().clone());
    // What the messages of a few reads fan out is written together: one
    // write per recipient per batch.
    let mut cork = Cork::default();
    loop {
        let event = session.next_event_corked(&mut cork).await;
        let Ok(event) = event else { break };
        let Event::Message(message) = event else {
            continue;
        };
        let opcode = match message.kind() {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let frame = encode_server_frame(opcode, false, message.payload());
        registry.broadcast(id, &frame, &mut cork);
    }
    registry.leave(id);
}
