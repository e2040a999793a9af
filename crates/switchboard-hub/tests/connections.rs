//! The hub's connection model over real loopback connections: one task per
//! connection, one decision per upgrade (authorizer, limit and shutdown in
//! one place), and the limit exact under concurrent upgrades.

mod common;

use std::time::Duration;

use switchboard_hub::{Hub, HubConfig};
use switchboard_net::{connect, Event, Message};
use tokio::task::JoinSet;

use common::{open as join, WITHIN};

/// Waits until the hub holds `count` connections.
async fn until_connections(hub: &Hub, count: usize) {
    tokio::time::timeout(WITHIN, async {
        while hub.connection_count() != count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("hub reached {count} connections"));
}

#[test]
fn a_hub_connection_is_one_task() {
    // The server on a runtime of its own, so that its task count is only its own.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hub = Hub::new(HubConfig::default());
    let url = server.block_on(common::serve(hub.clone()));
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tasks = || server.metrics().num_alive_tasks();

    const N: usize = 50;
    let before = tasks();
    let sockets = clients.block_on(async {
        let mut sockets = Vec::new();
        for _ in 0..N {
            sockets.push(join(&url).await);
        }
        // Every connection joins a room and talks, so each one's task has
        // read, dispatched and written.
        for socket in &mut sockets {
            socket
                .send(Message::text(r#"{"event":"join","room":"r","ack":1}"#))
                .await
                .unwrap();
            socket
                .send(Message::text(r#"{"event":"chat","room":"r","data":1}"#))
                .await
                .unwrap();
        }
        sockets
    });
    server.block_on(until_connections(&hub, N));
    // Let presence and delivery settle.
    std::thread::sleep(Duration::from_millis(200));
    let during = tasks();
    let per_connection = (during - before) as f64 / N as f64;
    // At most one helper task for the whole hub (the presence coalescer).
    assert!(
        during - before <= N + 1,
        "{} tasks for {N} connections ({per_connection:.2} each)",
        during - before
    );
    drop(sockets);
    server.block_on(until_connections(&hub, 0));
}

/// What a connection's task keeps for its whole life is its idle cost
/// (docs/BENCHMARKS.md, idle connections): the future of `Hub::serve`, with
/// the session in it, stays within a kilobyte.
#[tokio::test]
async fn a_connection_future_stays_within_a_kilobyte() {
    let hub = Hub::new(HubConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let client = tokio::spawn(async move { join(&url).await });
    let (stream, remote) = listener.accept().await.unwrap();
    let config = switchboard_net::Config::default();
    let accepted = switchboard_net::accept(stream, &config, &hub)
        .await
        .unwrap()
        .expect("admitted");
    let serving = hub.serve(accepted, Some(remote));
    let size = std::mem::size_of_val(&serving);
    assert!(size <= 1024, "the connection's future is {size} bytes");
    let closing = async {
        let socket = client.await.unwrap();
        drop(socket);
    };
    tokio::time::timeout(WITHIN, async { tokio::join!(serving, closing) })
        .await
        .expect("the connection served and closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upgrades_admit_exactly_max_connections() {
    let mut config = HubConfig::default();
    config.max_connections(50);
    let hub = Hub::new(config);
    let url = common::serve(hub.clone()).await;
    for run in 0..3 {
        let mut attempts = JoinSet::new();
        for _ in 0..200 {
            let url = url.clone();
            attempts.spawn(async move { connect(&url).await });
        }
        let (mut admitted, mut refused) = (Vec::new(), 0);
        while let Some(result) = attempts.join_next().await {
            match result.unwrap() {
                Ok((socket, _)) => admitted.push(socket),
                Err(error) => {
                    let status = error.handshake_error().map(|e| e.status());
                    assert_eq!(status, Some(503), "run {run}: {error}");
                    refused += 1;
                }
            }
        }
        assert_eq!((admitted.len(), refused), (50, 150), "run {run}");
        assert!(hub.admitted() <= 50);
        drop(admitted);
        until_connections(&hub, 0).await;
        tokio::time::timeout(WITHIN, async {
            while hub.admitted() != 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("every place given back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorizer_that_refuses_after_a_delay_never_lets_a_101_out() {
    let hub = Hub::new(HubConfig::default());
    hub.set_authorizer(|request| {
        std::thread::sleep(Duration::from_millis(100));
        match request.query_param("token").as_deref() {
            Some("good") => Ok(Default::default()),
            Some(_) => Err((403, "bad token".into())),
            None => Err((401, "token required".into())),
        }
    });
    let url = common::serve(hub.clone()).await;
    for (query, status) in [("", 401), ("?token=bad", 403)] {
        let error = connect(&format!("{url}{query}")).await.unwrap_err();
        assert_eq!(
            error.handshake_error().map(|e| e.status()),
            Some(status),
            "{error}"
        );
    }
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.admitted(), 0, "a refusal takes no place");
    join(&format!("{url}?token=good")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_the_hub_itself_refuses_upgrades() {
    let hub = Hub::new(HubConfig::default());
    let url = common::serve(hub.clone()).await;
    let mut client = join(&url).await;
    let shutdown = tokio::spawn({
        let hub = hub.clone();
        async move { hub.shutdown(WITHIN).await }
    });
    let end = client.recv().await.unwrap().unwrap();
    assert_eq!(end.payload(), br#"{"event":"end"}"#);
    let error = connect(&url).await.unwrap_err();
    assert_eq!(error.handshake_error().map(|e| e.status()), Some(503));
    loop {
        if let Event::Closed(info) = client.next_event().await.unwrap() {
            assert_eq!(info.received.and_then(|f| f.code).map(|c| c.0), Some(1001));
            break;
        }
    }
    assert!(shutdown.await.unwrap());
}
