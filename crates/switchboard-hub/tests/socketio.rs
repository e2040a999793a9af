//! Socket.IO connections in the hub, over real sockets: the CONNECT answer
//! before `ready`, events and acks mapped to the hub's, a native client in
//! the same room, binary attachments to a handler and back, the Engine.IO
//! heartbeat, and malformed packets. (The Engine.IO `open` and the first
//! CONNECT are the server's; here the handler admits at once.)

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_hub::socketio::SocketIoOptions;
use switchboard_hub::Hub;
use switchboard_net::{
    accept, connect, Config, Decision, Event, Handler, Message, Request, WebSocket,
};
use tokio::net::TcpListener;

use common::{recv, send, WITHIN};

/// Admits `/sio` as Socket.IO (namespace `/`) and anything else as the hub's own.
struct SocketIoHandler {
    hub: Hub,
    options: SocketIoOptions,
}

impl Handler for SocketIoHandler {
    type Admission = switchboard_hub::Admission;

    async fn upgrade(&self, request: &Request, _: Option<&str>) -> Decision<Self::Admission> {
        match self.hub.admit(request) {
            Ok(mut admission) => {
                if request.path() == "/sio" {
                    admission.socket_io(self.options.clone(), "/");
                }
                Decision::accept(None, admission)
            }
            Err(error) => Decision::Reject(error),
        }
    }
}

/// Serves `hub` with Socket.IO on `/sio`; returns `ws://host:port`.
async fn serve(hub: Hub, options: SocketIoOptions) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    let handler = Arc::new(SocketIoHandler { hub, options });
    tokio::spawn(async move {
        let config = Arc::new(Config::default());
        while let Ok((stream, remote)) = listener.accept().await {
            let (handler, config) = (handler.clone(), config.clone());
            tokio::spawn(async move {
                if let Ok(Some(accepted)) = accept(stream, &config, &*handler).await {
                    handler.hub.serve(accepted, Some(remote)).await;
                }
            });
        }
    });
    base
}

/// The next text message.
async fn text(socket: &mut WebSocket) -> String {
    let message = tokio::time::timeout(WITHIN, socket.recv())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("no error");
    match message {
        Message::Text(text) => text.as_str().to_owned(),
        Message::Binary(bytes) => panic!("binary {bytes:?}"),
    }
}

/// Reads until the server's close: its code and reason.
async fn closed(socket: &mut WebSocket) -> (u16, String) {
    loop {
        let event = tokio::time::timeout(WITHIN, socket.next_event())
            .await
            .expect("the close in time")
            .expect("no error");
        if let Event::Closed(info) = event {
            let frame = info.received.expect("a close frame");
            return (frame.code.map_or(1005, |code| code.0), frame.reason);
        }
    }
}

async fn send_text(socket: &mut WebSocket, text: &str) {
    socket.send(Message::text(text.to_owned())).await.unwrap();
}

/// A Socket.IO connection: its CONNECT answer, then `ready`. Returns its id.
async fn open_sio(base: &str) -> (WebSocket, String) {
    let (mut socket, _) = connect(&format!("{base}/sio")).await.unwrap();
    let connected = text(&mut socket).await;
    let sid: Value = serde_json::from_str(connected.strip_prefix("40").unwrap()).unwrap();
    let id = sid["sid"].as_str().unwrap().to_owned();
    let ready = text(&mut socket).await;
    assert!(ready.starts_with("42[\"ready\","), "{ready}");
    assert!(ready.contains(&id));
    (socket, id)
}

#[tokio::test]
async fn events_acks_and_a_native_client_in_the_same_room() {
    let hub = Hub::new(Default::default());
    hub.on("sum", |cx| {
        let sum: f64 = cx
            .data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .sum();
        Ok(json!(sum))
    });
    let base = serve(hub.clone(), SocketIoOptions::default()).await;
    let (mut sio, id) = open_sio(&base).await;
    assert!(hub.socket(&id).is_some(), "the Socket.IO id is the hub id");

    send_text(&mut sio, "421[\"sum\",1,2,3.5]").await;
    assert_eq!(text(&mut sio).await, "431[6.5]");
    send_text(&mut sio, "422[\"join\",\"lobby\"]").await;
    let joined = text(&mut sio).await;
    assert!(joined.starts_with("432[{"), "{joined}");
    send_text(&mut sio, "423[\"nothing\"]").await;
    assert!(text(&mut sio)
        .await
        .starts_with("433[{\"error\":{\"code\":\"unknown_event\""));

    let mut native = common::open(&format!("{base}/ws")).await;
    send(&mut native, json!({"event":"join","room":"lobby","ack":1})).await;
    assert_eq!(recv(&mut native).await["event"], "ack");
    // The room's user list, to both, each in its own format.
    assert!(text(&mut sio).await.starts_with("42[\"userlist\",["));
    send(
        &mut native,
        json!({"event":"chat","room":"lobby","data":{"t":"hi"}}),
    )
    .await;
    assert_eq!(text(&mut sio).await, "42[\"chat\",{\"t\":\"hi\"}]");

    assert_eq!(hub.to("lobby").emit("news", &json!([1, 2])), 2);
    assert_eq!(text(&mut sio).await, "42[\"news\",[1,2]]");
    loop {
        let message = recv(&mut native).await;
        if message["event"] == "news" {
            assert_eq!(message["data"], json!([1, 2]));
            break;
        }
    }
}

#[tokio::test]
async fn binary_attachments_reach_a_handler_and_come_back() {
    let hub = Hub::new(Default::default());
    let seen = Arc::new(Mutex::new(Value::Null));
    let seen_in = seen.clone();
    hub.on("file", move |cx| {
        *seen_in.lock().unwrap() = cx.data.clone();
        Ok(json!({ "back": cx.data }))
    });
    let base = serve(hub, SocketIoOptions::default()).await;
    let (mut sio, _) = open_sio(&base).await;
    send_text(
        &mut sio,
        "451-7[\"file\",{\"_placeholder\":true,\"num\":0}]",
    )
    .await;
    sio.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(
        text(&mut sio).await,
        "461-7[{\"back\":{\"_placeholder\":true,\"num\":0}}]"
    );
    let attachment = tokio::time::timeout(WITHIN, sio.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(attachment, Message::Binary(vec![1u8, 2, 3].into()));
    assert_eq!(*seen.lock().unwrap(), json!({"$binary": "AQID"}));
}

#[tokio::test]
async fn the_heartbeat_pings_and_closes_a_silent_client() {
    let hub = Hub::new(Default::default());
    let closes = Arc::new(Mutex::new(Vec::new()));
    let closes_in = closes.clone();
    hub.on_close(move |_, _, code, reason| {
        closes_in.lock().unwrap().push((code, reason.to_owned()))
    });
    let mut options = SocketIoOptions::default();
    options.ping_interval = Duration::from_millis(100);
    options.ping_timeout = Duration::from_millis(200);
    let base = serve(hub, options).await;

    let (mut answering, _) = open_sio(&base).await;
    for _ in 0..4 {
        assert_eq!(text(&mut answering).await, "2");
        send_text(&mut answering, "3").await;
    }
    let (mut silent, _) = open_sio(&base).await;
    assert_eq!(text(&mut silent).await, "2");
    assert_eq!(closed(&mut silent).await, (1000, "ping timeout".to_owned()));
    let deadline = tokio::time::Instant::now() + WITHIN;
    while closes.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(closes.lock().unwrap()[0], (1000, "ping timeout".to_owned()));
}

#[tokio::test]
async fn a_malformed_packet_closes_with_1008_and_is_reported() {
    let hub = Hub::new(Default::default());
    let errors = Arc::new(Mutex::new(Vec::new()));
    let errors_in = errors.clone();
    hub.on_error(move |_, _, error| errors_in.lock().unwrap().push(error.code.clone()));
    let base = serve(hub, SocketIoOptions::default()).await;
    let (mut sio, _) = open_sio(&base).await;
    send_text(&mut sio, "42[\"unterminated\"").await;
    let (code, reason) = closed(&mut sio).await;
    assert_eq!(code, 1008);
    assert!(reason.starts_with("bad JSON payload"), "{reason}");
    assert_eq!(errors.lock().unwrap().as_slice(), ["protocol_error"]);
}
