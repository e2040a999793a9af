//! The reference server on `fastwebsockets` (hyper 1 upgrade):
//! `peer-fastwebsockets echo|broadcast 127.0.0.1:PORT`.
//!
//! Echo is the crate's own example (a `FragmentCollector` that writes each
//! message back as it reads it); broadcast splits the socket and gives each
//! client a writer task that writes its queue, frame by frame.

use std::sync::Arc;

use bytes::Bytes;
use fastwebsockets::{upgrade, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use peers::{Mode, Registry};
use tokio::net::TcpListener;

/// A message queued for one client: its opcode and payload.
type Out = (OpCode, Bytes);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (mode, addr) = peers::args("peer-fastwebsockets");
    let listener = TcpListener::bind(&addr).await?;
    eprintln!(
        "peer-fastwebsockets {mode:?} on ws://{}",
        listener.local_addr()?
    );
    let registry = Registry::<Out>::new();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = service_fn(move |request| {
                let registry = Arc::clone(&registry);
                async move { serve_upgrade(request, mode, registry) }
            });
            let _ = http1::Builder::new()
                .serve_connection(io, service)
                .with_upgrades()
                .await;
        });
    }
}

fn serve_upgrade(
    mut request: Request<Incoming>,
    mode: Mode,
    registry: Arc<Registry<Out>>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgraded) = upgrade::upgrade(&mut request)?;
    tokio::spawn(async move {
        let _ = match mode {
            Mode::Echo => echo(upgraded).await,
            Mode::Broadcast => broadcast(upgraded, &registry).await,
        };
    });
    Ok(response)
}

async fn echo(upgraded: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fastwebsockets::FragmentCollector::new(upgraded.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn broadcast(
    upgraded: upgrade::UpgradeFut,
    registry: &Registry<Out>,
) -> Result<(), WebSocketError> {
    let ws = upgraded.await?;
    let (read, mut write) = ws.split(tokio::io::split);
    let mut read = FragmentCollectorRead::new(read);
    let (id, own, mut queue) = registry.join();
    let writer = tokio::spawn(async move {
        while let Some((opcode, payload)) = queue.recv().await {
            let frame = Frame::new(true, opcode, None, Payload::Borrowed(&payload));
            if write.write_frame(frame).await.is_err() {
                return;
            }
        }
    });
    // Pongs and the close reply go through the client's own queue.
    let mut obligated = |frame: Frame<'_>| {
        let out = (frame.opcode, Bytes::copy_from_slice(&frame.payload));
        let own = own.clone();
        async move { own.send(out).await }
    };
    loop {
        let Ok(frame) = read.read_frame(&mut obligated).await else {
            break;
        };
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => {
                let out = (frame.opcode, into_bytes(frame.payload));
                registry.broadcast(id, &out);
            }
            _ => {}
        }
    }
    registry.leave(id);
    drop(own);
    let _ = writer.await;
    Ok(())
}

/// The payload as shared bytes, without a copy when it was read into a buffer.
fn into_bytes(payload: Payload<'_>) -> Bytes {
    match payload {
        Payload::Bytes(bytes) => bytes.freeze(),
        Payload::Owned(vec) => Bytes::from(vec),
        other => Bytes::copy_from_slice(&other),
    }
}
