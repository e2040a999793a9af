//! `Hub::serve` and `Hub::shutdown` over a real loopback connection: the
//! client gets `end` and a 1001 close, and the connection's task ends
//! cleanly once the client answered the close.

use std::time::Duration;

use switchboard_hub::{Hub, HubConfig};
use switchboard_net::{accept, connect, Config, Event};
use tokio::net::TcpListener;

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn shutdown_sends_end_and_1001_and_the_session_task_ends_cleanly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let hub = Hub::new(HubConfig::default());
    let served = tokio::spawn({
        let hub = hub.clone();
        async move {
            let (stream, remote) = listener.accept().await.unwrap();
            let accepted = accept(stream, &Config::default(), &hub)
                .await
                .unwrap()
                .unwrap();
            hub.serve(accepted, Some(remote)).await;
        }
    });
    let (mut client, _) = tokio::time::timeout(WITHIN, connect(&url))
        .await
        .unwrap()
        .unwrap();
    let ready = client.recv().await.unwrap().unwrap();
    assert!(std::str::from_utf8(ready.payload())
        .unwrap()
        .contains(r#""event":"ready""#));

    // The hub waits for the client's close reply: the client reads meanwhile.
    let shutdown = tokio::spawn({
        let hub = hub.clone();
        async move { hub.shutdown(WITHIN).await }
    });
    let end = client.recv().await.unwrap().unwrap();
    assert_eq!(end.payload(), br#"{"event":"end"}"#);
    let closed = tokio::time::timeout(WITHIN, async {
        loop {
            if let Event::Closed(info) = client.next_event().await.unwrap() {
                return info;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        closed.received.and_then(|f| f.code).map(|c| c.0),
        Some(1001)
    );
    assert!(shutdown.await.unwrap(), "the connection left in time");
    let result = tokio::time::timeout(WITHIN, served).await.unwrap();
    assert!(result.is_ok(), "the session task panicked: {result:?}");
    assert_eq!(hub.connection_count(), 0);
}
