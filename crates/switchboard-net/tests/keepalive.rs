//! Timers on real sockets: keepalive pings and the pong deadline, the idle
//! timeout and the close timeout, with short durations and generous bounds.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{serve, within, RawClient, WAIT};
use switchboard_net::{
    connect, connect_with, AcceptAll, Accepted, CloseCause, CloseCode, CloseInfo, Config,
    ConnectOptions, Event, Message,
};
use switchboard_proto::handshake::accept_key;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How late a timer may fire on a loaded machine before the test fails.
const SLACK: Duration = Duration::from_secs(2);

/// How a server-side connection ended, and when.
type Ended = (CloseInfo, Instant);

/// Serves with `config`, echoing; reports how each connection ended.
async fn watched_echo(config: Config) -> (SocketAddr, mpsc::UnboundedReceiver<Ended>) {
    let (ended, ended_rx) = mpsc::unbounded_channel();
    let addr = serve(config, AcceptAll, move |accepted: Accepted| {
        let ended = ended.clone();
        async move {
            let mut socket = accepted.socket;
            loop {
                match socket.next_event().await {
                    Ok(Event::Message(message)) => {
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    }
                    Ok(Event::Closed(info)) => {
                        let _ = ended.send((info, Instant::now()));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    })
    .await;
    (addr, ended_rx)
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_dropped() {
    let ping_interval = Duration::from_millis(200);
    let pong_timeout = Duration::from_millis(300);
    let mut config = Config::default();
    config
        .ping_interval(Some(ping_interval))
        .pong_timeout(pong_timeout);
    let (addr, mut ended) = watched_echo(config).await;
    let mut client = RawClient::handshake(addr, "/").await;
    let started = Instant::now();
    // Read everything, answer nothing.
    let mut pings = 0;
    while let Some(frame) = client.read_frame().await {
        match frame.opcode {
            0x9 => pings += 1,
            0x8 => {}
            other => panic!("unexpected frame with opcode {other:#x}"),
        }
    }
    let elapsed = started.elapsed();
    assert!(pings >= 1, "a keepalive ping came before the drop");
    assert!(
        elapsed >= ping_interval + pong_timeout - Duration::from_millis(100),
        "dropped too early: {elapsed:?}"
    );
    assert!(
        elapsed <= ping_interval + pong_timeout + SLACK,
        "dropped too late: {elapsed:?}"
    );
    let (info, _) = within(WAIT, "server-side end", ended.recv()).await.unwrap();
    assert_eq!(info.cause, CloseCause::PongTimeout, "{info:?}");
}

#[tokio::test]
async fn a_responsive_peer_stays_connected() {
    let mut config = Config::default();
    config
        .ping_interval(Some(Duration::from_millis(100)))
        .pong_timeout(Duration::from_millis(200));
    let (addr, mut ended) = watched_echo(config).await;
    let (mut socket, _) = within(WAIT, "connect", connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    // Our client answers pings while it reads; read for ten ping intervals.
    let mut pings = 0;
    let listen = async {
        loop {
            match socket.next_event().await {
                Ok(Event::Ping(_)) => pings += 1,
                other => panic!("expected only pings, got {other:?}"),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1000), listen).await;
    assert!(pings >= 3, "only {pings} keepalive pings in 1 s");
    assert!(ended.try_recv().is_err(), "the server dropped a live peer");
    socket.send(Message::text("still here")).await.unwrap();
    let echoed = within(WAIT, "echo", socket.recv()).await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("still here"));
}

#[tokio::test]
async fn idle_timeout_closes_with_1001_after_the_last_message() {
    let idle = Duration::from_millis(300);
    let mut config = Config::default();
    config.idle_timeout(Some(idle));
    let (addr, mut ended) = watched_echo(config).await;
    let (mut socket, _) = within(WAIT, "connect", connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    // Messages every 100 ms keep the connection open well past the timeout.
    for i in 0..9 {
        let text = format!("busy {i}");
        socket.send(Message::text(text.as_str())).await.unwrap();
        let echoed = within(WAIT, "echo", socket.recv()).await;
        assert_eq!(echoed.unwrap().unwrap(), Message::text(text));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let quiet_since = Instant::now();
    let info = within(WAIT, "idle close", async {
        loop {
            if let Event::Closed(info) = socket.next_event().await.unwrap() {
                return info;
            }
        }
    })
    .await;
    let elapsed = quiet_since.elapsed();
    let received = info
        .received
        .clone()
        .expect("the server sent a close frame");
    assert_eq!(received.code, Some(CloseCode::GOING_AWAY), "{info:?}");
    assert!(info.is_clean(), "{info:?}");
    assert!(
        elapsed + Duration::from_millis(150) >= idle,
        "closed too early: {elapsed:?}"
    );
    assert!(elapsed <= idle + SLACK, "closed too late: {elapsed:?}");
    let (server_info, _) = within(WAIT, "server-side end", ended.recv()).await.unwrap();
    assert_eq!(server_info.cause, CloseCause::Handshake, "{server_info:?}");
}

#[tokio::test]
async fn close_timeout_bounds_a_server_close_the_peer_never_answers() {
    let close_timeout = Duration::from_millis(300);
    let mut config = Config::default();
    config.close_timeout(close_timeout);
    let (closed, mut closed_rx) = mpsc::unbounded_channel();
    let addr = serve(config, AcceptAll, move |accepted: Accepted| {
        let closed = closed.clone();
        async move {
            let mut socket = accepted.socket;
            let started = Instant::now();
            let info = socket.close(CloseCode::NORMAL, "bye").await;
            let _ = closed.send((info, started.elapsed()));
        }
    })
    .await;
    let mut client = RawClient::handshake(addr, "/").await;
    let close = client.read_close().await;
    assert_eq!(close.close_code(), Some(1000));
    // Never answer; the server gives up after close_timeout and drops TCP.
    client.expect_eof().await;
    let (info, elapsed) = within(WAIT, "server close", closed_rx.recv())
        .await
        .unwrap();
    let info = info.expect("close returns how the connection ended");
    assert_eq!(info.cause, CloseCause::CloseTimeout, "{info:?}");
    assert!(
        elapsed >= close_timeout - Duration::from_millis(50),
        "{elapsed:?}"
    );
    assert!(elapsed <= close_timeout + SLACK, "{elapsed:?}");
}

/// A server that completes the opening handshake, then reads everything and
/// never writes again: a peer that went silent.
async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let key = head
                    .lines()
                    .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
                    .unwrap_or_default();
                let response = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    accept_key(key.trim())
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn close_timeout_bounds_a_client_close_the_server_never_answers() {
    let addr = silent_server().await;
    let close_timeout = Duration::from_millis(300);
    let mut config = Config::default();
    config.close_timeout(close_timeout);
    let options = ConnectOptions::default().config(config);
    let (mut socket, _) = within(
        WAIT,
        "connect",
        connect_with(&format!("ws://{addr}/"), options),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let info = within(WAIT, "client close", socket.close(CloseCode::NORMAL, "bye"))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(info.cause, CloseCause::CloseTimeout, "{info:?}");
    assert!(
        elapsed >= close_timeout - Duration::from_millis(50),
        "{elapsed:?}"
    );
    assert!(elapsed <= close_timeout + SLACK, "{elapsed:?}");
}

#[tokio::test]
async fn a_client_drops_a_server_that_never_answers_pings() {
    let addr = silent_server().await;
    let ping_interval = Duration::from_millis(200);
    let pong_timeout = Duration::from_millis(200);
    let mut config = Config::default();
    config
        .ping_interval(Some(ping_interval))
        .pong_timeout(pong_timeout);
    let options = ConnectOptions::default().config(config);
    let (mut socket, _) = within(
        WAIT,
        "connect",
        connect_with(&format!("ws://{addr}/"), options),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let event = within(WAIT, "client gives up", socket.next_event())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let Event::Closed(info) = event else {
        panic!("expected the close, got {event:?}");
    };
    assert_eq!(info.cause, CloseCause::PongTimeout, "{info:?}");
    assert_eq!(info.code(), CloseCode::ABNORMAL);
    assert!(
        elapsed >= ping_interval + pong_timeout - Duration::from_millis(100),
        "{elapsed:?}"
    );
    assert!(
        elapsed <= ping_interval + pong_timeout + SLACK,
        "{elapsed:?}"
    );
}
