//! The seeds' `stream:start` / `stream:end` / `pipe`: a server reads a large
//! fragmented message in streaming mode and pipes each fragment, as it
//! arrives, to other clients, without ever holding the whole message.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{serve, within, WAIT};
use switchboard_net::{
    connect, AcceptAll, Accepted, CloseCode, Config, Message, MessageKind, Writer,
};
use tokio::sync::{mpsc, watch};

const RECEIVERS: usize = 3;
const FRAGMENT: usize = 64 * 1024;
const FRAGMENTS: usize = 64;
const TOTAL: usize = FRAGMENT * FRAGMENTS; // 4 MiB
/// For this many fragments, the sender waits until a receiver has seen
/// fragment N before it sends N + 1.
const LOCKSTEP: usize = 4;

/// What the relay saw of one fragment: its size and its start/end flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Relayed {
    len: usize,
    first: bool,
    fin: bool,
}

/// The receivers' writers, and how many have joined.
struct Room {
    writers: Mutex<Vec<Writer>>,
    joined: watch::Sender<usize>,
}

/// A relay: connections on `/recv` join the room; the connection on `/send`
/// is read in streaming mode, and each fragment is forwarded to every
/// member with `send_fragment` before the next one is read.
async fn relay_server() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Relayed>) {
    let room = Arc::new(Room {
        writers: Mutex::new(Vec::new()),
        joined: watch::channel(0).0,
    });
    let (relayed, relayed_rx) = mpsc::unbounded_channel();
    let addr = serve(Config::default(), AcceptAll, move |accepted: Accepted| {
        let room = room.clone();
        let relayed = relayed.clone();
        async move {
            let (mut reader, writer) = accepted.socket.split();
            if accepted.request.path() == "/recv" {
                room.writers.lock().unwrap().push(writer);
                room.joined.send_modify(|joined| *joined += 1);
                // Keep reading, so that pings and the close are answered.
                while reader.next_event().await.is_ok() {}
                return;
            }
            reader.set_streaming(true);
            let mut joined = room.joined.subscribe();
            if joined.wait_for(|n| *n >= RECEIVERS).await.is_err() {
                return;
            }
            let writers = room.writers.lock().unwrap().clone();
            while let Some(Ok(fragment)) = reader.next_fragment().await {
                let _ = relayed.send(Relayed {
                    len: fragment.payload.len(),
                    first: fragment.first,
                    fin: fragment.fin,
                });
                for writer in &writers {
                    let sent = writer
                        .send_fragment(fragment.kind, fragment.payload.clone(), fragment.fin)
                        .await;
                    if sent.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    (addr, relayed_rx)
}

fn message_bytes() -> Bytes {
    (0..TOTAL)
        .map(|i| (i % 251) as u8 ^ (i / FRAGMENT) as u8)
        .collect::<Vec<_>>()
        .into()
}

#[tokio::test]
async fn a_streamed_message_is_piped_fragment_by_fragment() {
    within(Duration::from_secs(30), "the whole relay", relay_run()).await;
}

async fn relay_run() {
    let (addr, mut relayed) = relay_server().await;
    let url = format!("ws://{addr}");
    let message = message_bytes();

    // Receiver 0 streams too and reports each fragment as it sees it; the
    // others take the message whole.
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let (socket, _) = within(WAIT, "connect", connect(&format!("{url}/recv")))
        .await
        .unwrap();
    let streaming_receiver = tokio::spawn(async move {
        let (mut reader, _writer) = socket.split();
        reader.set_streaming(true);
        let mut whole = BytesMut::new();
        let mut sizes = Vec::new();
        while let Some(fragment) = reader.next_fragment().await {
            let fragment = fragment.expect("a fragment");
            assert_eq!(fragment.kind, MessageKind::Binary);
            assert_eq!(fragment.first, sizes.is_empty(), "first flag");
            let _ = seen.send(sizes.len());
            sizes.push(fragment.payload.len());
            whole.extend_from_slice(&fragment.payload);
            if fragment.fin {
                break;
            }
        }
        (whole.freeze(), sizes)
    });
    let mut whole_receivers = Vec::new();
    for _ in 1..RECEIVERS {
        let (mut socket, _) = within(WAIT, "connect", connect(&format!("{url}/recv")))
            .await
            .unwrap();
        whole_receivers.push(tokio::spawn(async move {
            match socket.recv().await {
                Some(Ok(Message::Binary(data))) => data,
                other => panic!("expected the binary message, got {other:?}"),
            }
        }));
    }

    let (mut sender, _) = within(WAIT, "connect", connect(&format!("{url}/send")))
        .await
        .unwrap();
    for i in 0..FRAGMENTS {
        let chunk = message.slice(i * FRAGMENT..(i + 1) * FRAGMENT);
        sender
            .writer()
            .send_fragment(MessageKind::Binary, chunk, i == FRAGMENTS - 1)
            .await
            .unwrap();
        if i < LOCKSTEP {
            // Fragment i reaches a receiver while fragment i + 1 has not been
            // sent: the relay forwards as it reads.
            let got = within(WAIT, "receiver sees the fragment", seen_rx.recv()).await;
            assert_eq!(got, Some(i));
        }
    }

    let (streamed, sizes) = within(WAIT, "streaming receiver", streaming_receiver)
        .await
        .unwrap();
    assert_eq!(sizes, vec![FRAGMENT; FRAGMENTS], "fragment boundaries kept");
    assert!(
        streamed == message,
        "streaming receiver got the message intact"
    );
    for receiver in whole_receivers {
        let data = within(WAIT, "whole receiver", receiver).await.unwrap();
        assert_eq!(data.len(), TOTAL);
        assert!(data == message, "receiver got the message intact");
    }

    // The relay handled one fragment at a time, never the whole message.
    let mut seen_by_relay = Vec::new();
    while let Ok(fragment) = relayed.try_recv() {
        seen_by_relay.push(fragment);
    }
    assert_eq!(seen_by_relay.len(), FRAGMENTS);
    for (i, fragment) in seen_by_relay.iter().enumerate() {
        let expected = Relayed {
            len: FRAGMENT,
            first: i == 0,
            fin: i == FRAGMENTS - 1,
        };
        assert_eq!(*fragment, expected, "fragment {i}");
    }
    let info = within(
        WAIT,
        "sender close",
        sender.close(CloseCode::NORMAL, "done"),
    )
    .await
    .unwrap();
    assert!(info.is_clean(), "{info:?}");
}
