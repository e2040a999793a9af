//! `Client::connect` as a new user meets it: handlers registered right
//! after it returns miss nothing, and a connection that cannot work fails
//! at once or within the connect timeout, saying why.

#[path = "../../switchboard-hub/tests/common/mod.rs"]
mod hub;

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_client::{Client, ClientError, ClientOptions, Status};
use switchboard_hub::{Hub, HubConfig, Meta};
use switchboard_net::{accept, AcceptAll, Config, Event};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const WITHIN: Duration = Duration::from_secs(5);

/// A hub that greets every connection with `initialData` right after `ready`.
async fn greeting_hub() -> String {
    let hub = Hub::new(HubConfig::default());
    hub.on_connect(|_, socket| {
        let _ = socket.emit("initialData", &json!({ "id": socket.id().as_str() }));
    });
    hub::serve(hub).await
}

#[tokio::test]
async fn handlers_registered_after_connect_get_what_came_right_after_ready() {
    let url = greeting_hub().await;
    for run in 0..100 {
        let client = Client::connect(&url, ClientOptions::default())
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        client.on("initialData", move |event| {
            let _ = tx.send(event.data.clone());
        });
        let data = tokio::time::timeout(WITHIN, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("run {run}: initialData lost"))
            .unwrap();
        assert_eq!(data["id"].as_str(), client.id().as_deref(), "run {run}");
        client.close().await;
    }
}

#[tokio::test]
async fn a_server_that_is_not_a_hub_fails_within_the_connect_timeout() {
    // A plain WebSocket echo server: it accepts, but never says `ready`.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(Some(accepted)) = accept(stream, &Config::default(), &AcceptAll).await
                else {
                    return;
                };
                let (mut session, _) = accepted.into_session(64, 1 << 20);
                while let Ok(event) = session.next_event().await {
                    if let Event::Message(message) = event {
                        let _ = session.send(message);
                    }
                }
            });
        }
    });
    let mut options = ClientOptions::default();
    options.connect_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let error = Client::connect(&url, options).await.unwrap_err();
    assert!(matches!(error, ClientError::NotAHub { .. }), "{error:?}");
    assert!(
        error.to_string().contains("is this a Switchboard hub"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_closed_port_fails_at_once_with_its_cause() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let error = Client::connect(&url, ClientOptions::default())
        .await
        .unwrap_err();
    let ClientError::Unreachable { cause } = &error else {
        panic!("{error:?}");
    };
    assert!(cause.to_lowercase().contains("refused"), "{cause}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refusal_fails_at_once_and_is_never_retried() {
    let hub = Hub::new(HubConfig::default());
    hub.set_authorizer(|_| Err::<Meta, _>((401, "a token is required".into())));
    let url = hub::serve(hub).await;

    let started = Instant::now();
    let error = Client::connect(&url, ClientOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Refused { status: 401, .. }),
        "{error:?}"
    );
    // The server's own words, from the body of its refusal.
    assert_eq!(
        error.to_string(),
        "the server refused the connection: 401 a token is required"
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    // Not retried by the reconnection policy either.
    let mut options = ClientOptions::default();
    options.reconnect.attempts = 5;
    let client = Client::start(&url, options);
    let mut events = client.events();
    let failed = tokio::time::timeout(WITHIN, async {
        loop {
            let event = events.recv().await.unwrap();
            if event.event == "reconnection_failed" || event.event == "reconnecting" {
                return event;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(failed.event, "reconnection_failed", "{failed:?}");
    assert_eq!(client.status(), Status::Gone);
    assert!(matches!(
        client.failure(),
        Some(ClientError::Refused { status: 401, .. })
    ));
}
