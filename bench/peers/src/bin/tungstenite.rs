//! The reference server on `tokio-tungstenite`:
//! `peer-tungstenite echo|broadcast 127.0.0.1:PORT`.
//!
//! Echo is the crate's own example (the read half forwarded to the write
//! half, which flushes when no more input is ready); broadcast gives each
//! client a writer task that drains its queue and flushes once per batch.

use std::sync::Arc;

use futures_util::{future, SinkExt, StreamExt, TryStreamExt};
use peers::{Mode, Registry};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (mode, addr) = peers::args("peer-tungstenite");
    let listener = TcpListener::bind(&addr).await?;
    eprintln!(
        "peer-tungstenite {mode:?} on ws://{}",
        listener.local_addr()?
    );
    let registry = Registry::<Message>::new();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            match mode {
                Mode::Echo => echo(stream).await,
                Mode::Broadcast => broadcast(stream, &registry).await,
            }
        });
    }
}

async fn echo(stream: TcpStream) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|message| future::ready(message.is_text() || message.is_binary()))
        .forward(write)
        .await;
}

async fn broadcast(stream: TcpStream, registry: &Registry<Message>) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut write, mut read) = ws.split();
    let (id, own, mut queue) = registry.join();
    drop(own);
    let writer = tokio::spawn(async move {
        while let Some(message) = queue.recv().await {
            if write.feed(message).await.is_err() {
                return;
            }
            while let Ok(message) = queue.try_recv() {
                if write.feed(message).await.is_err() {
                    return;
                }
            }
            if write.flush().await.is_err() {
                return;
            }
        }
        let _ = write.close().await;
    });
    while let Some(Ok(message)) = read.next().await {
        if message.is_text() || message.is_binary() {
            registry.broadcast(id, &message);
        } else if message.is_close() {
            break;
        }
    }
    registry.leave(id);
    let _ = writer.await;
}
