//! Streams over real loopback connections: a client's 2 MiB stream in
//! 64 KiB fragments reaches two room members as fragments while it
//! arrives, with little held by the server, and a non-member gets nothing;
//! an ordinary message to a member during the stream arrives after it,
//! intact; the size limit closes with 1009 and cuts the stream for its
//! members; the stream counts' limits; and the library's `Hub::stream`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use switchboard_hub::{Hub, HubConfig, StreamInfo, Target};
use switchboard_net::{connect, Event, MemoryBudget, Message, MessageKind, WebSocket};

const WITHIN: Duration = Duration::from_secs(10);
const CHUNK: usize = 64 << 10;

/// What a streaming reader sees.
#[derive(Debug, PartialEq)]
enum Seen {
    /// A JSON message (one text frame).
    Json(Value),
    /// A binary fragment: its length and whether it ends the message.
    Fragment { len: usize, first: bool, fin: bool },
}

async fn open(url: &str) -> WebSocket {
    let (mut socket, _) = tokio::time::timeout(WITHIN, connect(url))
        .await
        .expect("connect in time")
        .expect("connect");
    socket.set_streaming(true);
    assert_eq!(json_of(next(&mut socket).await)["event"], "ready");
    socket
}

/// The next message or binary fragment, user lists skipped.
async fn next(socket: &mut WebSocket) -> Seen {
    loop {
        let event = tokio::time::timeout(WITHIN, socket.next_event())
            .await
            .expect("an event in time")
            .expect("no error");
        let fragment = match event {
            Event::Fragment(fragment) => fragment,
            Event::Message(message) => panic!("streaming, got {message:?}"),
            Event::Closed(info) => panic!("closed: {info:?}"),
            _ => continue,
        };
        if fragment.kind == MessageKind::Text {
            assert!(fragment.first && fragment.fin, "the hub sends JSON whole");
            let value: Value = serde_json::from_slice(&fragment.payload).unwrap();
            if value["event"] != "userlist" {
                return Seen::Json(value);
            }
            continue;
        }
        return Seen::Fragment {
            len: fragment.payload.len(),
            first: fragment.first,
            fin: fragment.fin,
        };
    }
}

fn json_of(seen: Seen) -> Value {
    match seen {
        Seen::Json(value) => value,
        other => panic!("expected JSON, got {other:?}"),
    }
}

async fn send(socket: &mut WebSocket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

async fn request(socket: &mut WebSocket, mut message: Value) -> Value {
    message["ack"] = json!(1);
    send(socket, message).await;
    let ack = json_of(next(socket).await);
    assert_eq!(ack["event"], "ack", "{ack}");
    ack
}

/// Reads a whole stream: its fragments' count and bytes, then `stream:end`.
async fn read_stream(socket: &mut WebSocket) -> (usize, usize, Value) {
    let (mut fragments, mut bytes) = (0, 0);
    loop {
        match next(socket).await {
            Seen::Fragment { len, fin, .. } => {
                fragments += 1;
                bytes += len;
                if fin {
                    return (fragments, bytes, json_of(next(socket).await));
                }
            }
            Seen::Json(value) => panic!("a message inside the stream: {value}"),
        }
    }
}

async fn nothing_more(socket: &mut WebSocket) {
    let quiet = tokio::time::timeout(Duration::from_millis(200), next(socket)).await;
    assert!(quiet.is_err(), "got {:?}", quiet.unwrap());
}

fn budgeted() -> (switchboard_net::Config, MemoryBudget) {
    let budget = MemoryBudget::new(1 << 30);
    let mut config = switchboard_net::Config::default();
    config.protocol().message_budget(Some(budget.clone()));
    (config, budget)
}

#[tokio::test]
async fn a_stream_reaches_the_room_as_fragments_and_other_messages_wait_behind_it() {
    let hub = Hub::new(HubConfig::default());
    let seen = Arc::new(Mutex::new(Vec::<(&str, StreamInfo)>::new()));
    let log = seen.clone();
    hub.on_stream_start(move |_, _, info| log.lock().unwrap().push(("start", info.clone())));
    let log = seen.clone();
    hub.on_stream_end(move |_, _, info| log.lock().unwrap().push(("end", info.clone())));
    let (config, budget) = budgeted();
    let url = common::serve_with(hub.clone(), config).await;
    let (mut a, mut b, mut c, mut d, mut e) = (
        open(&url).await,
        open(&url).await,
        open(&url).await,
        open(&url).await,
        open(&url).await,
    );
    for member in [&mut b, &mut c] {
        request(member, json!({"event":"join","room":"r"})).await;
    }

    let ack = request(&mut a, json!({"event":"stream:start","room":"r"})).await;
    assert_eq!(ack["data"]["delivered"], 2);
    let id = ack["data"]["id"].as_str().unwrap().to_owned();
    for member in [&mut b, &mut c] {
        let start = json_of(next(member).await);
        assert_eq!(start["event"], "stream:start");
        assert_eq!(start["room"], "r");
        assert_eq!(start["data"], json!({"id": id, "kind": "binary"}));
    }

    // Half the stream; then an ordinary message for the room, which must
    // wait behind it; then the rest.
    let total = 2 << 20;
    let chunk = Bytes::from(vec![7u8; CHUNK]);
    let fragments = total / CHUNK;
    let writer = a.writer();
    for n in 0..fragments / 2 {
        writer
            .send_fragment(MessageKind::Binary, chunk.clone(), false)
            .await
            .unwrap();
        if n == 0 {
            // The first fragment is relayed while the rest is not sent.
            assert_eq!(
                next(&mut b).await,
                Seen::Fragment {
                    len: CHUNK,
                    first: true,
                    fin: false
                }
            );
        }
    }
    let ack = request(
        &mut e,
        json!({"event":"chat","room":"r","data":"after the stream"}),
    )
    .await;
    assert_eq!(ack["data"]["delivered"], 2);
    for n in fragments / 2..fragments {
        let fin = n == fragments - 1;
        writer
            .send_fragment(MessageKind::Binary, chunk.clone(), fin)
            .await
            .unwrap();
    }

    let (count, bytes, end) = read_stream(&mut b).await;
    assert_eq!((count + 1, bytes + CHUNK), (fragments, total));
    assert_eq!(end["event"], "stream:end");
    assert_eq!(
        end["data"],
        json!({"id": id, "bytes": total, "complete": true})
    );
    let (count, bytes, _) = read_stream(&mut c).await;
    assert_eq!((count, bytes), (fragments, total));
    for member in [&mut b, &mut c] {
        let chat = json_of(next(member).await);
        assert_eq!(chat["data"], "after the stream", "intact, after the stream");
    }
    let done = json_of(next(&mut a).await);
    assert_eq!(done["event"], "stream:end");
    assert_eq!(
        done["data"],
        json!({"id": id, "bytes": total, "delivered": 2})
    );
    nothing_more(&mut d).await;

    // The server never held much of it: well below 2 MiB per member.
    assert!(budget.peak() < 1 << 20, "peak {} bytes", budget.peak());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].0, seen[0].1.members), ("start", 2));
    assert_eq!(seen[1].0, "end");
    assert!(seen[1].1.complete && seen[1].1.bytes == total as u64);
}

#[tokio::test]
async fn a_stream_past_its_limit_is_closed_with_1009_and_cut_for_its_members() {
    let mut hub_config = HubConfig::default();
    hub_config.max_stream_size(1 << 20);
    let hub = Hub::new(hub_config);
    let url = common::serve(hub).await;
    let (mut a, mut b) = (open(&url).await, open(&url).await);
    request(&mut b, json!({"event":"join","room":"r"})).await;
    request(&mut a, json!({"event":"stream:start","room":"r"})).await;
    assert_eq!(json_of(next(&mut b).await)["event"], "stream:start");
    let chunk = Bytes::from(vec![1u8; CHUNK]);
    let writer = a.writer();
    for _ in 0..32 {
        if writer
            .send_fragment(MessageKind::Binary, chunk.clone(), false)
            .await
            .is_err()
        {
            break;
        }
    }
    let code = tokio::time::timeout(WITHIN, async {
        loop {
            match a.next_event().await {
                Ok(Event::Closed(info)) => return info.code().0,
                Ok(_) => {}
                Err(_) => return 0,
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(code, 1009);
    // The member got what was relayed, the end of the message, and the notice.
    let (_, bytes, end) = read_stream(&mut b).await;
    assert_eq!(bytes, 1 << 20);
    assert_eq!(end["event"], "stream:end");
    assert_eq!(end["data"]["complete"], false);
    // And it goes on as before.
    let mut c = open(&url).await;
    request(&mut c, json!({"event":"chat","room":"r","data":"hi"})).await;
    assert_eq!(json_of(next(&mut b).await)["data"], "hi");
}

#[tokio::test]
async fn one_stream_per_connection_and_max_streams_in_all() {
    let mut config = HubConfig::default();
    config.max_streams(1);
    let hub = Hub::new(config);
    let url = common::serve(hub).await;
    let (mut a, mut b, mut c) = (open(&url).await, open(&url).await, open(&url).await);
    request(&mut b, json!({"event":"join","room":"r"})).await;
    let start = json!({"event":"stream:start","room":"r"});
    assert!(request(&mut a, start.clone()).await["data"]["id"].is_string());
    assert_eq!(json_of(next(&mut b).await)["event"], "stream:start");
    let busy = request(&mut a, start.clone()).await;
    assert_eq!(busy["error"]["code"], "stream_busy");
    let full = request(&mut c, start.clone()).await;
    assert_eq!(full["error"]["code"], "too_many_streams");
    // A binary message without a stream:start is refused, as before; the
    // answer waits behind the stream b is receiving.
    b.writer()
        .send_fragment(MessageKind::Binary, Bytes::from_static(b"x"), true)
        .await
        .unwrap();
    nothing_more(&mut b).await;
    // When a's stream ends (a leaves before sending it), b gets the notice,
    // then what waited, and may start a stream itself.
    drop(a);
    let end = json_of(next(&mut b).await);
    assert_eq!(end["event"], "stream:end");
    assert_eq!(end["data"]["complete"], false);
    assert_eq!(
        json_of(next(&mut b).await)["data"]["code"],
        "binary_not_supported"
    );
    assert!(request(&mut c, start).await["data"]["id"].is_string());
}

#[tokio::test]
async fn the_library_streams_to_a_room_like_node_websockets_write() {
    let hub = Hub::new(HubConfig::default());
    let url = common::serve(hub.clone()).await;
    let (mut b, mut d) = (open(&url).await, open(&url).await);
    request(&mut b, json!({"event":"join","room":"r"})).await;

    let mut stream = hub.stream(&Target::Room("r".into()), MessageKind::Binary);
    assert_eq!(json_of(next(&mut b).await)["event"], "stream:start");
    assert_eq!(stream.write(&[1, 2, 3]), 1);
    assert_eq!(
        next(&mut b).await,
        Seen::Fragment {
            len: 3,
            first: true,
            fin: false
        }
    );
    // An event for b meanwhile waits behind the stream.
    hub.to("r").emit("chat", &json!("later"));
    stream.write(&[4, 5, 6]);
    assert_eq!(stream.finish(), 1);
    let (count, bytes, end) = read_stream(&mut b).await;
    assert_eq!((count, bytes), (2, 3));
    assert_eq!(end["data"]["complete"], true);
    assert_eq!(json_of(next(&mut b).await)["data"], "later");
    nothing_more(&mut d).await;
}
