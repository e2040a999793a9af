//! Backpressure on a real socket: when the peer stops reading, `feed` queues
//! up to `max_pending_send_bytes` and then waits, instead of buffering
//! without bound; meanwhile the reading half, in another task, goes on.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use common::{serve_on, within, RawClient, WAIT};
use switchboard_net::{AcceptAll, Accepted, Config, Event, Message, WebSocket, Writer};
use switchboard_proto::Role;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const MAX_PENDING: usize = 32 * 1024;
const MESSAGE: usize = 8 * 1024;
/// A message on the wire: payload and a 4-byte header (16-bit length).
const MESSAGE_FRAME: usize = MESSAGE + 4;
/// 64 MiB, far more than the socket buffers can absorb: reaching it means
/// `feed` never waited.
const MAX_MESSAGES: usize = 8192;
/// How long `feed` must make no progress to count as waiting.
const STALL: Duration = Duration::from_millis(300);

/// What the test shares with the server's connection.
struct Probe {
    /// Messages whose `feed` has returned.
    fed: AtomicUsize,
    /// `buffered_amount()` right after each `feed` returned, for the first ones.
    after_feed: std::sync::Mutex<Vec<usize>>,
    /// Set by the test: finish the current `feed`, then send "end".
    stop: AtomicBool,
    /// Messages the reading half received.
    heard: mpsc::UnboundedSender<String>,
}

/// Handed to the test once the server has split the connection.
type ServerSide = (Writer, JoinHandle<usize>);

fn numbered(seq: usize) -> Message {
    let mut payload = BytesMut::with_capacity(MESSAGE);
    payload.put_u64(seq as u64);
    payload.resize(MESSAGE, (seq % 256) as u8);
    Message::binary(payload.freeze())
}

/// Writes numbered messages with `feed` until told to stop, then "end".
async fn feed_until_stopped(writer: Writer, probe: Arc<Probe>) -> usize {
    let mut seq = 0;
    while seq < MAX_MESSAGES && !probe.stop.load(Ordering::Acquire) {
        if writer.feed(numbered(seq)).await.is_err() {
            return seq;
        }
        seq += 1;
        probe.fed.store(seq, Ordering::Release);
        let mut after_feed = probe.after_feed.lock().unwrap();
        if after_feed.len() < 16 {
            after_feed.push(writer.buffered_amount());
        }
    }
    writer.send(Message::text("end")).await.expect("send end");
    seq
}

/// A server whose accepted sockets have a small send buffer, so that a peer
/// that does not read blocks the writer soon.
async fn server(probe: Arc<Probe>) -> (SocketAddr, mpsc::UnboundedReceiver<ServerSide>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(16 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener: TcpListener = socket.listen(16).unwrap();
    let mut config = Config::default();
    config.max_pending_send_bytes(MAX_PENDING);
    let (server_side, server_side_rx) = mpsc::unbounded_channel();
    let addr = serve_on(listener, config, AcceptAll, move |accepted: Accepted| {
        let probe = probe.clone();
        let server_side = server_side.clone();
        async move {
            let (mut reader, writer) = accepted.socket.split();
            let feeding = tokio::spawn(feed_until_stopped(writer.clone(), probe.clone()));
            let _ = server_side.send((writer, feeding));
            // The reading half, in this task, while the writer is in another.
            while let Ok(event) = reader.next_event().await {
                if let Event::Message(Message::Text(text)) = event {
                    let _ = probe.heard.send(text.to_string());
                }
            }
        }
    });
    (addr, server_side_rx)
}

/// A client with a small receive buffer that does not read until told to.
async fn lazy_client(addr: SocketAddr) -> WebSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = within(WAIT, "connect", socket.connect(addr)).await.unwrap();
    let (stream, leftover) = RawClient::handshake_on(stream, addr, "/")
        .await
        .into_parts();
    WebSocket::from_tcp(stream, Role::Client, &Config::default(), leftover)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_waits_for_a_peer_that_does_not_read() {
    within(
        Duration::from_secs(60),
        "the whole test",
        backpressure_run(),
    )
    .await;
}

async fn backpressure_run() {
    let (heard, mut heard_rx) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        fed: AtomicUsize::new(0),
        after_feed: Default::default(),
        stop: AtomicBool::new(false),
        heard,
    });
    let (addr, mut server_side) = server(probe.clone()).await;
    let mut client = lazy_client(addr).await;
    let (writer, feeding) = within(WAIT, "server accepted", server_side.recv())
        .await
        .unwrap();
    let bound = MAX_PENDING + MESSAGE_FRAME;

    // The client reads nothing. Watch the writer until it stops making progress.
    let mut most_buffered = 0;
    let mut last_fed = usize::MAX;
    let mut last_progress = Instant::now();
    let started = Instant::now();
    loop {
        let buffered = writer.buffered_amount();
        most_buffered = most_buffered.max(buffered);
        assert!(
            buffered <= bound,
            "{buffered} bytes buffered, limit {bound}"
        );
        let fed = probe.fed.load(Ordering::Acquire);
        if fed != last_fed {
            last_fed = fed;
            last_progress = Instant::now();
        } else if fed > 0 && last_progress.elapsed() >= STALL {
            break;
        }
        assert!(!feeding.is_finished(), "feed never waited ({fed} messages)");
        assert!(started.elapsed() < WAIT, "no stall within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stalled_at = probe.fed.load(Ordering::Acquire);
    let buffered = writer.buffered_amount();
    assert!(
        buffered > 0 && buffered <= bound,
        "{buffered} bytes buffered while waiting"
    );
    let after_feed = probe.after_feed.lock().unwrap().clone();
    assert!(
        after_feed.windows(2).any(|pair| pair[1] > pair[0]),
        "feed below the limit queues without writing, so buffered_amount grows: {after_feed:?}"
    );
    assert!(after_feed.iter().all(|&b| b <= bound), "{after_feed:?}");

    // The reading half still works while the writing half waits: a ping
    // (whose automatic pong cannot go out yet) and a message get through.
    client.writer().ping(b"are you there").await.unwrap();
    client
        .send(Message::text("reading while writing waits"))
        .await
        .unwrap();
    let text = within(WAIT, "server reader hears the client", heard_rx.recv()).await;
    assert_eq!(text.as_deref(), Some("reading while writing waits"));
    assert_eq!(
        probe.fed.load(Ordering::Acquire),
        stalled_at,
        "still waiting"
    );

    // Once the client reads, everything arrives, in order, nothing lost.
    probe.stop.store(true, Ordering::Release);
    let mut next_seq = 0;
    let mut pong = false;
    loop {
        match within(WAIT, "client reads", client.next_event())
            .await
            .unwrap()
        {
            Event::Message(Message::Binary(data)) => {
                let seq = u64::from_be_bytes(data[..8].try_into().unwrap()) as usize;
                assert_eq!(seq, next_seq, "messages in order");
                assert_eq!(data.len(), MESSAGE);
                assert!(data[8..].iter().all(|&b| b == (seq % 256) as u8));
                next_seq += 1;
            }
            Event::Message(Message::Text(text)) if text.as_str() == "end" => break,
            Event::Pong(payload) => {
                assert_eq!(&payload[..], b"are you there");
                pong = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let total = within(WAIT, "writer task ends", feeding).await.unwrap();
    assert_eq!(next_seq, total, "every message fed arrived");
    assert!(
        total > stalled_at,
        "the waiting feed completed once the peer read"
    );
    assert!(pong, "the pong queued while the writer waited went out");
    assert!(most_buffered <= bound);
    assert_eq!(writer.buffered_amount(), 0);
}
