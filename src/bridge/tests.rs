use std::sync::atomic::Ordering;
use std::time::Duration;

use rosc::{OscBundle, OscColor, OscMessage, OscMidiMessage, OscPacket, OscTime, OscType};
use serde_json::{json, Value};
use switchboard_hub::{Hub, HubConfig};

use super::endpoint::{key, parse_endpoint, Mode};
use super::osc_codec::{decode, encode, to_json, to_osc};
use super::zmq::parse_message;
use super::*;

fn packet(addr: &str, args: Vec<OscType>) -> Vec<u8> {
    let message = OscMessage {
        addr: addr.into(),
        args,
    };
    rosc::encoder::encode(&OscPacket::Message(message)).unwrap()
}

fn bundle(content: Vec<OscPacket>) -> OscPacket {
    OscPacket::Bundle(OscBundle {
        timetag: OscTime {
            seconds: 0,
            fractional: 1,
        },
        content,
    })
}

// ---- OSC values ------------------------------------------------------------

#[test]
fn osc_arguments_become_typed_json() {
    let cases = [
        (OscType::Int(-7), json!(-7)),
        (OscType::Long(1 << 40), json!(1_u64 << 40)),
        (OscType::Float(0.1), json!(0.1)),
        (OscType::Float(2.0), json!(2.0)),
        (OscType::Float(f32::NAN), Value::Null),
        (OscType::Double(0.1), json!(0.1)),
        (OscType::String("hi".into()), json!("hi")),
        (OscType::Char('x'), json!("x")),
        (OscType::Blob(vec![0, 255, 7]), json!([0, 255, 7])),
        (OscType::Bool(true), json!(true)),
        (OscType::Bool(false), json!(false)),
        (OscType::Nil, Value::Null),
        (OscType::Inf, Value::Null),
        (
            OscType::Time(OscTime {
                seconds: 3,
                fractional: 1 << 31,
            }),
            json!(3.5),
        ),
        (
            OscType::Color(OscColor {
                red: 1,
                green: 2,
                blue: 3,
                alpha: 4,
            }),
            json!([1, 2, 3, 4]),
        ),
        (
            OscType::Midi(OscMidiMessage {
                port: 0,
                status: 144,
                data1: 60,
                data2: 100,
            }),
            json!([0, 144, 60, 100]),
        ),
        (
            OscType::Array(rosc::OscArray {
                content: vec![OscType::Int(1), OscType::String("a".into())],
            }),
            json!([1, "a"]),
        ),
    ];
    for (arg, expected) in cases {
        let got = to_json(&arg);
        assert_eq!(got, expected, "{arg:?}");
        // Integers stay integers and floats stay floats.
        assert_eq!(
            got.is_i64() || got.is_u64(),
            expected.is_i64() || expected.is_u64()
        );
    }
    assert!(to_json(&OscType::Float(2.0)).is_f64());
}

#[test]
fn json_values_become_osc_arguments() {
    let cases = [
        (json!(5), OscType::Int(5)),
        (json!(-5), OscType::Int(-5)),
        (json!(1_i64 << 40), OscType::Long(1 << 40)),
        (json!(u64::MAX), OscType::Double(u64::MAX as f64)),
        (json!(0.5), OscType::Float(0.5)),
        (json!(2.0), OscType::Float(2.0)),
        (json!("s"), OscType::String("s".into())),
        (json!(true), OscType::Bool(true)),
        (json!(false), OscType::Bool(false)),
        (Value::Null, OscType::Nil),
        (
            json!([1, [0.5]]),
            OscType::Array(rosc::OscArray {
                content: vec![
                    OscType::Int(1),
                    OscType::Array(rosc::OscArray {
                        content: vec![OscType::Float(0.5)],
                    }),
                ],
            }),
        ),
        (json!({"a": 1}), OscType::String("{\"a\":1}".into())),
    ];
    for (value, expected) in cases {
        assert_eq!(to_osc(&value), expected, "{value}");
    }
}

#[test]
fn encoded_messages_decode_to_the_same_values() {
    let values = vec![
        json!(1),
        json!(0.25),
        json!("x"),
        json!(true),
        Value::Null,
        json!([2, 3]),
    ];
    let bytes = encode("/a/b", &values).unwrap();
    let OscPacket::Message(message) = decode(&bytes).unwrap() else {
        panic!("not a message");
    };
    assert_eq!(message.addr, "/a/b");
    let back: Vec<Value> = message.args.iter().map(to_json).collect();
    assert_eq!(back, values);
    let huge = vec![json!("x".repeat(70_000))];
    assert!(encode("/a", &huge).unwrap_err().contains("UDP"));
}

// ---- bad OSC input ------------------------------------------------------------

#[test]
fn deep_nesting_is_refused_before_decoding() {
    let mut nested = bundle(vec![OscPacket::Message(OscMessage {
        addr: "/x".into(),
        args: vec![],
    })]);
    for _ in 0..3 {
        nested = bundle(vec![nested]);
    }
    assert!(decode(&rosc::encoder::encode(&nested).unwrap()).is_ok());
    for _ in 0..10 {
        nested = bundle(vec![nested]);
    }
    let error = decode(&rosc::encoder::encode(&nested).unwrap()).unwrap_err();
    assert!(error.contains("bundles nested"), "{error}");

    // 3000 nested bundles, each only a header: would recurse deeply.
    let mut deep = Vec::new();
    for level in 0..3000u32 {
        deep.extend_from_slice(b"#bundle\0\0\0\0\0\0\0\0\0");
        deep.extend_from_slice(&((3000 - level - 1) * 20).to_be_bytes());
    }
    assert!(decode(&deep).is_err());

    let mut tags = String::from(",");
    tags.push_str(&"[".repeat(5000));
    tags.push_str(&"]".repeat(5000));
    let mut arrays = b"/x\0\0".to_vec();
    arrays.extend_from_slice(tags.as_bytes());
    arrays.resize(arrays.len() + 4 - arrays.len() % 4, 0);
    assert!(decode(&arrays).unwrap_err().contains("arrays nested"));
}

#[test]
fn garbage_never_panics() {
    let valid = packet(
        "/a",
        vec![
            OscType::Int(1),
            OscType::Blob(vec![1, 2, 3]),
            OscType::String("abc".into()),
        ],
    );
    for len in 0..valid.len() {
        let _ = decode(&valid[..len]);
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 96) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if next() % 2 == 0 && bytes.len() > 8 {
            bytes[..8].copy_from_slice(b"#bundle\0");
        } else if next() % 2 == 0 && !bytes.is_empty() {
            bytes[0] = b'/';
        }
        let _ = decode(&bytes);
    }
}

// ---- ZeroMQ endpoints and frames ------------------------------------------------

#[test]
fn zmq_endpoints() {
    let push = parse_endpoint(Kind::ZmqPush, "tcp://127.0.0.1:5").unwrap();
    assert_eq!(push, (Mode::Bind, "tcp://127.0.0.1:5"));
    let sub = parse_endpoint(Kind::ZmqSub, "tcp://127.0.0.1:5").unwrap();
    assert_eq!(sub, (Mode::Connect, "tcp://127.0.0.1:5"));
    let pull = parse_endpoint(Kind::ZmqPull, ">tcp://localhost:5").unwrap();
    assert_eq!(pull, (Mode::Connect, "tcp://localhost:5"));
    assert!(parse_endpoint(Kind::ZmqPush, "127.0.0.1:5").is_err());
    assert!(parse_endpoint(Kind::ZmqPush, "tcp://127.0.0.1").is_err());
    assert_eq!(
        key(Kind::ZmqPush, "@tcp://127.0.0.1:5"),
        "tcp://127.0.0.1:5"
    );
    assert_eq!(
        key(Kind::ZmqPush, ">tcp://127.0.0.1:5"),
        ">tcp://127.0.0.1:5"
    );
    assert_eq!(
        key(Kind::ZmqSub, "@tcp://127.0.0.1:5"),
        "@tcp://127.0.0.1:5"
    );
}

#[test]
fn zmq_frames() {
    let (path, values) = parse_message(br#"{"path":"/a","values":[1,"x"]}"#).unwrap();
    assert_eq!((path.as_str(), values), ("/a", vec![json!(1), json!("x")]));
    let (_, values) = parse_message(br#"{"path":"/a","value":[2]}"#).unwrap();
    assert_eq!(values, vec![json!(2)]);
    let (_, values) = parse_message(br#"{"path":"/a","value":3}"#).unwrap();
    assert_eq!(values, vec![json!(3)]);
    assert!(parse_message(br#"{"path":"/a","values":3}"#).is_err());
    assert!(parse_message(br#"{"path":"/a","values":[1],"value":[2]}"#).is_err());
    let (_, values) = parse_message(br#"{"path":"/a"}"#).unwrap();
    assert!(values.is_empty());
    for bad in [&b"nope"[..], b"[1]", br#"{"values":[]}"#, b"\xff\xfe", b""] {
        assert!(parse_message(bad).is_err(), "{bad:?}");
    }
}

// ---- the registry -----------------------------------------------------------------

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[tokio::test]
async fn endpoints_are_reused_and_closed() {
    let hub = Hub::new(HubConfig::default());
    let bridges = Bridges::new(&hub, 1 << 20);
    let listen = bridges
        .open(Kind::OscListen, "127.0.0.1:0", None)
        .await
        .unwrap();
    let target = listen.local().to_owned();
    let pattern = Pattern::parse("/a/**").unwrap();
    let send = bridges
        .open(Kind::OscSend, &target, Some(pattern))
        .await
        .unwrap();
    let again = bridges.open(Kind::OscSend, &target, None).await.unwrap();
    assert!(Arc::ptr_eq(&send, &again));
    assert_eq!(bridges.links().len(), 2);

    // Out through OSC, in through OSC, and not out again (no loop).
    hub.publish("/a/x", &[json!(1)]);
    eventually("the OSC round trip", || {
        count(&listen.stats().messages_in) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(count(&send.stats().messages_out), 1);

    let mut metrics = String::new();
    bridges.render_metrics(&mut metrics);
    let line = format!(
        "switchboard_bridge_messages_in_total{{bridge=\"osc_listen\",endpoint=\"{target}\"}} 1"
    );
    assert!(metrics.contains(&line), "{metrics}");

    // Garbage is counted and the socket goes on working.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"garbage", &target).unwrap();
    udp.send_to(&packet("/b", vec![OscType::Int(2)]), &target)
        .unwrap();
    eventually("the next message", || {
        count(&listen.stats().messages_in) == 2
    })
    .await;
    assert_eq!(count(&listen.stats().malformed), 1);

    assert_eq!(send.id(), format!("osc_send:{target}"));
    assert!(bridges.close(send.id()).await.is_some());
    assert!(bridges.close(send.id()).await.is_none());
    assert_eq!(bridges.links().len(), 1);
    bridges.close_all().await;
    assert!(bridges.links().is_empty());
    // The port is free again.
    std::net::UdpSocket::bind(&target).unwrap();
}

#[tokio::test]
async fn zmq_push_to_pull_and_on_to_osc() {
    let hub = Hub::new(HubConfig::default());
    let bridges = Bridges::new(&hub, 1 << 20);
    let push = bridges
        .open(Kind::ZmqPush, "tcp://127.0.0.1:0", None)
        .await
        .unwrap();
    let pull_endpoint = format!(">{}", push.local());
    let pull = bridges
        .open(Kind::ZmqPull, &pull_endpoint, None)
        .await
        .unwrap();
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let osc_target = udp.local_addr().unwrap().to_string();
    bridges
        .open(Kind::OscSend, &osc_target, None)
        .await
        .unwrap();

    // Until the PULL has connected, PUSH drops (no peer).
    eventually("the PUSH to reach the PULL", || {
        hub.publish("/z", &[json!("v")]);
        count(&pull.stats().messages_in) > 0
    })
    .await;
    let mut buffer = [0; 1024];
    // The hub's own publishes reach OSC, and so does what came in from ZeroMQ.
    let mut seen = 0;
    while seen < 2 {
        let len = tokio::time::timeout(Duration::from_secs(2), udp.recv(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        let OscPacket::Message(message) = decode(&buffer[..len]).unwrap() else {
            panic!()
        };
        assert_eq!(message.addr, "/z");
        seen += 1;
    }
    // What came from ZeroMQ did not go back out of the PUSH.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = count(&push.stats().messages_out) + count(&push.stats().dropped);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = count(&push.stats().messages_out) + count(&push.stats().dropped);
    assert_eq!(before, after);
    bridges.close_all().await;
}

#[tokio::test]
async fn a_taken_port_is_an_error() {
    let hub = Hub::new(HubConfig::default());
    let bridges = Bridges::new(&hub, 1 << 20);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp://{}", taken.local_addr().unwrap());
    assert!(bridges.open(Kind::ZmqPush, &endpoint, None).await.is_err());
    let mut settings = BridgeSettings::default();
    settings
        .osc_listen
        .push(config::Route::parse("127.0.0.1:0").unwrap());
    settings
        .zmq_pull
        .push(config::Route::parse(&endpoint).unwrap());
    assert!(bridges.start(&settings).await.is_err());
    assert!(bridges.links().is_empty(), "start closes what it opened");
}
