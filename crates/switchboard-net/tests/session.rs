//! A [`Session`] driven by one task, with other tasks sending on its
//! [`Outbox`]: frames pushed from elsewhere arrive in order, count for the
//! idle timer, are bounded, and a peer that does not read cannot make the
//! session queue pongs without bound.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{masked_frame, within, RawClient, WAIT};
use switchboard_net::{connect, AcceptAll, CloseCode, Config, Event, Message, Outbox, PushError};
use switchboard_proto::frame::{encode_server_frame, OpCode};
use tokio::sync::oneshot;

/// Serves one connection as a session; hands its outbox out, then drives
/// it (discarding messages) until it ends.
async fn serve_session(
    config: Config,
    max_frames: usize,
    max_bytes: usize,
) -> (String, oneshot::Receiver<Outbox>) {
    let (tx, rx) = oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let addr = common::serve(config, AcceptAll, move |accepted| {
        let tx = tx.lock().unwrap().take();
        async move {
            let (mut session, _) = accepted.into_session(max_frames, max_bytes);
            if let Some(tx) = tx {
                let _ = tx.send(session.outbox().clone());
            }
            while session.next_event().await.is_ok() {}
        }
    })
    .await;
    (format!("ws://{addr}/"), rx)
}

fn text_frame(text: &str) -> Bytes {
    encode_server_frame(OpCode::Text, false, text.as_bytes())
}

#[tokio::test]
async fn pushed_frames_arrive_in_order_from_other_tasks() {
    let (url, outbox) = serve_session(Config::default(), 1024, 1 << 20).await;
    let (mut client, _) = within(WAIT, "connect", connect(&url)).await.unwrap();
    let outbox = within(WAIT, "outbox", outbox).await.unwrap();
    let pusher = tokio::spawn(async move {
        for i in 0..1000 {
            outbox
                .push(text_frame(&i.to_string()), Instant::now())
                .unwrap();
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        outbox
    });
    for i in 0..1000 {
        let message = within(WAIT, "message", client.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message, Message::text(i.to_string()));
    }
    let outbox = pusher.await.unwrap();
    outbox.close(CloseCode::NORMAL, "done");
    let closed = within(WAIT, "close", async {
        loop {
            if let Event::Closed(info) = client.next_event().await.unwrap() {
                return info;
            }
        }
    })
    .await;
    assert_eq!(
        closed.received.and_then(|f| f.code),
        Some(CloseCode::NORMAL)
    );
    assert_eq!(
        outbox.push(text_frame("late"), Instant::now()),
        Err(PushError::Closed)
    );
}

#[tokio::test]
async fn data_pushed_from_elsewhere_restarts_the_idle_timer_exactly() {
    let idle = Duration::from_millis(400);
    let mut config = Config::default();
    config.idle_timeout(Some(idle));
    let (url, outbox) = serve_session(config, 1024, 1 << 20).await;
    let opened = Instant::now();
    let (mut client, _) = within(WAIT, "connect", connect(&url)).await.unwrap();
    let outbox = within(WAIT, "outbox", outbox).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pushed = Instant::now();
    outbox.push(text_frame("keep me"), pushed).unwrap();
    let closed = within(WAIT, "idle close", async {
        loop {
            if let Event::Closed(info) = client.next_event().await.unwrap() {
                return info;
            }
        }
    })
    .await;
    let (since_push, since_open) = (pushed.elapsed(), opened.elapsed());
    assert_eq!(
        closed.received.and_then(|f| f.code),
        Some(CloseCode::GOING_AWAY)
    );
    // Closed idle_timeout after the last data message, within 10 %.
    assert!(
        since_push >= idle && since_push <= idle + idle / 10,
        "closed {since_push:?} after the push ({since_open:?} after opening)"
    );
}

#[tokio::test]
async fn a_peer_that_does_not_read_gets_no_unbounded_queue() {
    let (max_frames, max_bytes) = (64, 64 * 1024);
    let mut config = Config::default();
    config.close_timeout(Duration::from_millis(500));
    let (url, outbox) = serve_session(config, max_frames, max_bytes).await;
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let mut client = RawClient::handshake(addr, "/").await;
    let outbox = within(WAIT, "outbox", outbox).await.unwrap();
    // Fill the kernel's buffers and then the outbox: the client never reads.
    let chunk = encode_server_frame(OpCode::Binary, false, &[7u8; 16 * 1024]);
    let mut refused = None;
    for _ in 0..100_000 {
        if let Err(error) = outbox.push(chunk.clone(), Instant::now()) {
            refused = Some(error);
            break;
        }
    }
    assert!(
        matches!(refused, Some(PushError::Full { .. })),
        "a bound was hit: {refused:?}"
    );
    assert!(outbox.queued_bytes() <= max_bytes + chunk.len());
    // Now flood pings for a while: the session must not queue a pong for each.
    let ping = masked_frame(0x89, &[1u8; 125]);
    let flood = async {
        for _ in 0..200_000 {
            client.send(&ping).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), flood).await;
    // The session stops reading once half the bound waits; what one read
    // (64 KiB at most) brought in may still be answered.
    assert!(
        outbox.queued_bytes() <= max_bytes + chunk.len() + 64 * 1024,
        "{} bytes queued after the ping flood",
        outbox.queued_bytes()
    );
    // Aborting drops the queue but a chunk already partly written (it must
    // be finished for the close frame behind it to be read as one).
    outbox.abort(CloseCode::POLICY_VIOLATION, "slow consumer");
    within(WAIT, "abort", async {
        while outbox.queued_frames() > 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(!outbox.is_open());
}

#[tokio::test]
async fn corked_pushes_wait_for_the_flush_and_then_go_out_together() {
    let (url, outbox) = serve_session(Config::default(), 1024, 1 << 20).await;
    let (mut client, _) = within(WAIT, "connect", connect(&url)).await.unwrap();
    let outbox = within(WAIT, "outbox", outbox).await.unwrap();
    let mut cork = switchboard_net::Cork::default();
    for i in 0..10 {
        outbox
            .push_corked(text_frame(&i.to_string()), Instant::now(), &mut cork)
            .unwrap();
    }
    assert!(!cork.is_empty());
    assert_eq!(
        outbox.queued_frames(),
        10,
        "nothing written before the flush"
    );
    cork.flush();
    assert!(cork.is_empty());
    assert_eq!(
        outbox.queued_frames(),
        0,
        "a fresh socket takes them at once"
    );
    for i in 0..10 {
        let message = within(WAIT, "message", client.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message, Message::text(i.to_string()));
    }
}
