//! The one mapping between hub messages and Socket.IO packets
//! (docs/SOCKETIO.md):
//!
//! - a client's `emit("ev", a)` is the hub event `ev` with data `a`;
//!   with several arguments the data is their array, with none `null`;
//! - an event in namespace `/chat` is the hub event `/chat#ev`;
//! - the ack id is the hub's ack id (a number on `/`, `"/chat#N"` elsewhere,
//!   so that the answer finds its namespace); the ack's data is the
//!   callback's one argument, an error `{"error":{…}}`;
//! - a hub event reaches the client as `(data)` (no argument when `null`;
//!   a room's `userlist` as `(users, room)`); one the server asks to be
//!   acknowledged (`ask`) carries the ask's id, and the client's ACK comes
//!   back as the answer `{"event":"ack","ack":ID,"data":…}`;
//! - `join`, `leave`, `rename`, `users`, `subscribe`, `unsubscribe` and
//!   `refresh` are the hub's own requests: `emit("join", "lobby")` or
//!   `emit("join", {room: "lobby"})`.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};
use switchboard_proto::frame::{encode_server_frame, OpCode};

use super::binary;
use super::packet::{encode, Kind, Packet};

/// Separates a namespace from the event name in a hub event (`/chat#ev`).
pub const NAMESPACE_SEPARATOR: char = '#';

/// The hub's requests a Socket.IO client may send, and the field their
/// argument fills when it is not an object.
const REQUESTS: &[(&str, &str, bool)] = &[
    // (event, field, in data rather than at the top)
    ("join", "room", false),
    ("leave", "room", false),
    ("users", "room", false),
    ("rename", "name", true),
    ("subscribe", "pattern", true),
    ("unsubscribe", "pattern", true),
    ("refresh", "token", true),
];

/// A client's event (after its attachments are back in place) as the
/// native message the hub parses.
pub fn incoming_event(packet: Packet) -> Value {
    let args = match packet.data {
        Some(Value::Array(args)) => args,
        _ => Vec::new(),
    };
    let mut args = args.into_iter();
    let name = match args.next() {
        Some(Value::String(name)) => name,
        _ => String::new(),
    };
    let rest: Vec<Value> = args.collect();
    let data = match rest.len() {
        0 => Value::Null,
        1 => rest.into_iter().next().unwrap_or(Value::Null),
        _ => Value::Array(rest),
    };
    let ack = packet.id.map(|id| ack_id(&packet.nsp, id));
    let mut message = Map::new();
    let request = REQUESTS.iter().find(|(event, ..)| *event == name);
    match request {
        Some((_, field, in_data)) if packet.nsp == "/" => {
            message.insert("event".into(), Value::String(name.clone()));
            let fields = match data {
                Value::Object(fields) => fields,
                Value::Null => Map::new(),
                one => Map::from_iter([((*field).to_owned(), one)]),
            };
            if *in_data {
                message.insert("data".into(), Value::Object(fields));
            } else {
                for (key, value) in fields {
                    if key == "room" {
                        message.insert(key, value);
                    } else {
                        message
                            .entry("data")
                            .or_insert_with(|| json!({}))
                            .as_object_mut()
                            .map(|data| data.insert(key, value));
                    }
                }
            }
        }
        _ => {
            message.insert(
                "event".into(),
                Value::String(event_name(&packet.nsp, &name)),
            );
            message.insert("data".into(), data);
        }
    }
    if let Some(ack) = ack {
        message.insert("ack".into(), ack);
    }
    Value::Object(message)
}

/// A client's ACK (its callback's arguments, for an event the server
/// asked it to acknowledge) as the native answer
/// `{"event":"ack","ack":ID,"data":…}`: one argument is the data, several
/// their array, none `null`.
pub fn incoming_ack(packet: Packet) -> Value {
    let args = match packet.data {
        Some(Value::Array(args)) => args,
        _ => Vec::new(),
    };
    let data = match args.len() {
        0 => Value::Null,
        1 => args.into_iter().next().unwrap_or(Value::Null),
        _ => Value::Array(args),
    };
    json!({ "event": "ack", "ack": packet.id, "data": data })
}

/// The hub event of `name` in namespace `nsp`.
pub fn event_name(nsp: &str, name: &str) -> String {
    if nsp == "/" {
        name.to_owned()
    } else {
        format!("{nsp}{NAMESPACE_SEPARATOR}{name}")
    }
}

fn ack_id(nsp: &str, id: u64) -> Value {
    if nsp == "/" {
        Value::from(id)
    } else {
        Value::String(format!("{nsp}{NAMESPACE_SEPARATOR}{id}"))
    }
}

/// The namespace and name of a hub event (`/chat#ev` is `ev` in `/chat`).
fn split_event(event: &str) -> (&str, &str) {
    match event.split_once(NAMESPACE_SEPARATOR) {
        Some((nsp, name)) if nsp.starts_with('/') && !name.is_empty() => (nsp, name),
        _ => ("/", event),
    }
}

/// The namespace and number of a hub ack id, if it came from a Socket.IO client.
fn split_ack(ack: &Value) -> Option<(&str, u64)> {
    match ack {
        Value::Number(n) => Some(("/", n.as_u64()?)),
        Value::String(text) => {
            let (nsp, id) = text.rsplit_once(NAMESPACE_SEPARATOR)?;
            Some((nsp, id.parse().ok()?))
        }
        _ => None,
    }
}

/// The WebSocket frames that carry a hub message to a Socket.IO client:
/// one text frame, then one binary frame per attachment, concatenated.
pub fn frames(message: &Value) -> Bytes {
    let (kind, nsp, id, mut args) = packet_of(message);
    let attachments = if binary::has_binary(&args) {
        binary::deconstruct(&mut args)
    } else {
        Vec::new()
    };
    let kind = match (kind, attachments.is_empty()) {
        (Kind::Event, false) => Kind::BinaryEvent,
        (Kind::Ack, false) => Kind::BinaryAck,
        (kind, _) => kind,
    };
    let text = encode(kind, nsp, attachments.len(), id, Some(&args));
    let first = encode_server_frame(OpCode::Text, false, text.as_bytes());
    if attachments.is_empty() {
        return first;
    }
    let mut out = BytesMut::from(&first[..]);
    for attachment in &attachments {
        out.extend_from_slice(&encode_server_frame(OpCode::Binary, false, attachment));
    }
    out.freeze()
}

/// The text packet alone (attachments left as placeholders).
pub fn text(message: &Value) -> String {
    let (kind, nsp, id, args) = packet_of(message);
    encode(kind, nsp, 0, id, Some(&args))
}

fn packet_of(message: &Value) -> (Kind, &str, Option<u64>, Value) {
    let Some(fields) = message.as_object() else {
        return (Kind::Event, "/", None, json!(["message", message]));
    };
    let data = fields.get("data").cloned().unwrap_or(Value::Null);
    if let Some(path) = fields.get("path").and_then(Value::as_str) {
        let values = fields.get("values").cloned().unwrap_or(json!([]));
        return (Kind::Event, "/", None, json!([path, values]));
    }
    let Some(event) = fields.get("event").and_then(Value::as_str) else {
        return (Kind::Event, "/", None, json!(["message", message]));
    };
    if event == "ack" {
        if let Some((nsp, id)) = fields.get("ack").and_then(split_ack) {
            let args = match fields.get("error") {
                Some(error) => json!([{ "error": error }]),
                None if data.is_null() => json!([]),
                None => json!([data]),
            };
            return (Kind::Ack, nsp, Some(id), args);
        }
    }
    let (nsp, name) = split_event(event);
    // The server asks for the client's callback: the event carries the id.
    let ask = fields.get("ask").and_then(Value::as_u64);
    let args = match (data.is_null(), fields.get("room")) {
        (true, _) => json!([name]),
        // A room's user list says which room as a second argument.
        (false, Some(room)) if event == "userlist" => json!([name, data, room]),
        (false, _) => json!([name, data]),
    };
    (Kind::Event, nsp, ask, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str) -> Value {
        incoming_event(Packet::parse(text, 4).unwrap())
    }

    #[test]
    fn client_events_become_hub_messages() {
        assert_eq!(
            event("2[\"chat\",{\"t\":1}]"),
            json!({"event":"chat","data":{"t":1}})
        );
        assert_eq!(
            event("2[\"gpio:21\"]"),
            json!({"event":"gpio:21","data":null})
        );
        assert_eq!(
            event("25[\"sum\",1,2]"),
            json!({"event":"sum","data":[1,2],"ack":5})
        );
        assert_eq!(
            event("2/chat,7[\"msg\",\"hi\"]"),
            json!({"event":"/chat#msg","data":"hi","ack":"/chat#7"})
        );
        assert_eq!(
            event("2[\"join\",\"lobby\"]"),
            json!({"event":"join","room":"lobby"})
        );
        assert_eq!(
            event("23[\"users\",{\"room\":\"a\",\"after\":\"x\"}]"),
            json!({"event":"users","room":"a","data":{"after":"x"},"ack":3})
        );
        assert_eq!(
            event("2[\"rename\",\"ann\"]"),
            json!({"event":"rename","data":{"name":"ann"}})
        );
    }

    #[test]
    fn hub_messages_become_packets() {
        let text_of = |v: Value| text(&v);
        assert_eq!(
            text_of(json!({"event":"event:hello"})),
            "42[\"event:hello\"]"
        );
        assert_eq!(
            text_of(json!({"event":"chat","from":"x","room":"r","data":{"t":1}})),
            "42[\"chat\",{\"t\":1}]"
        );
        assert_eq!(
            text_of(json!({"event":"ack","ack":4,"data":true})),
            "434[true]"
        );
        assert_eq!(
            text_of(json!({"event":"ack","ack":"/chat#4"})),
            "43/chat,4[]"
        );
        assert_eq!(
            text_of(json!({"event":"ack","ack":1,"error":{"code":"x"}})),
            "431[{\"error\":{\"code\":\"x\"}}]"
        );
        assert_eq!(
            text_of(json!({"event":"/chat#m","data":1})),
            "42/chat,[\"m\",1]"
        );
        assert_eq!(
            text_of(json!({"path":"/a/b","values":[1]})),
            "42[\"/a/b\",[1]]"
        );
        assert_eq!(
            text_of(json!({"event":"userlist","room":"r","data":[]})),
            "42[\"userlist\",[],\"r\"]"
        );
    }

    #[test]
    fn the_server_asks_and_the_client_answers() {
        let asked = text(&json!({"event":"q","data":1,"ask":9}));
        assert_eq!(asked, "429[\"q\",1]");
        let answer = incoming_ack(Packet::parse("39[\"yes\",2]", 0).unwrap());
        assert_eq!(answer, json!({"event":"ack","ack":9,"data":["yes",2]}));
    }

    #[test]
    fn binary_data_goes_as_attachments() {
        let frames = frames(&json!({"event":"file","data":{"$binary":"AQID"}}));
        let text = b"451-[\"file\",{\"_placeholder\":true,\"num\":0}]";
        assert_eq!(frames[0], 0x81);
        assert_eq!(&frames[2..2 + text.len()], text);
        assert_eq!(&frames[2 + text.len()..], &[0x82, 3, 1, 2, 3]);
    }
}
