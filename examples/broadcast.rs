//! A raw broadcast server: every text or binary message a client sends goes
//! to every other client, unchanged.
//!
//! ```text
//! cargo run --release --example broadcast -- 127.0.0.1:9002
//! ```
//!
//! Each message is encoded into a frame once
//! ([`switchboard_proto::frame::encode_server_frame`]) and that one buffer is
//! queued on every recipient ([`Writer::feed_encoded`]). Each client has a
//! bounded queue of [`QUEUE_LEN`] frames and a task that writes it out,
//! flushing once per batch; a client whose queue is full misses the message.
//! This is the server `switchboard bench fanout --protocol raw` measures, and
//! what the reference servers of `bench/peers` do in their `broadcast` mode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use switchboard_net::{accept, AcceptAll, Config, MessageKind, Writer};
use switchboard_proto::frame::{encode_server_frame, OpCode};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Frames waiting for one client before the next broadcast to it is dropped.
const QUEUE_LEN: usize = 1024;

/// The connected clients, each with the sending end of its queue.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, mpsc::Sender<Bytes>>>,
}

impl Registry {
    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Bytes>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn join(&self) -> (u64, mpsc::Receiver<Bytes>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        self.clients().insert(id, tx);
        (id, rx)
    }

    fn leave(&self, id: u64) {
        self.clients().remove(&id);
    }

    /// Queues one encoded frame for every client but `from`.
    fn broadcast(&self, from: u64, frame: &Bytes) {
        for (id, tx) in self.clients().iter() {
            if *id != from {
                let _ = tx.try_send(frame.clone());
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
    let (mut reader, writer) = accepted.socket.split();
    let (id, queue) = registry.join();
    let writer_task = tokio::spawn(write_queue(writer, queue));
    while let Some(Ok(message)) = reader.recv().await {
        let opcode = match message.kind() {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let frame = encode_server_frame(opcode, false, message.payload());
        registry.broadcast(id, &frame);
    }
    // Dropping the queue's sender ends the writer task once it is drained.
    registry.leave(id);
    let _ = writer_task.await;
}

/// Writes a client's queue: every frame ready is queued, then one flush.
async fn write_queue(writer: Writer, mut queue: mpsc::Receiver<Bytes>) {
    while let Some(frame) = queue.recv().await {
        if writer.feed_encoded(frame).await.is_err() {
            return;
        }
        while let Ok(frame) = queue.try_recv() {
            if writer.feed_encoded(frame).await.is_err() {
                return;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}
