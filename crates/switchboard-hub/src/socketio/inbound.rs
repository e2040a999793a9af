//! What a Socket.IO connection's task does with each message its client
//! sends, before the hub sees it: Engine.IO pongs and closes, namespace
//! CONNECT and DISCONNECT, binary attachments gathered until their packet
//! is whole. Events and acks come out as the native messages the hub
//! dispatches ([`mapping::incoming_event`]).

use bytes::Bytes;
use serde_json::{json, Value};
use switchboard_net::Message;
use switchboard_proto::frame::{encode_server_frame, OpCode};

use super::binary;
use super::mapping;
use super::packet::{encode, EnginePacket, Kind, Packet};
use super::SocketIoProfile;

/// What to do with one message of the client.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A native message for the hub.
    Dispatch(Value),
    /// Answer with this frame.
    Reply(Bytes),
    /// A namespace joined: answer with this frame, then tell the
    /// handlers, if any listen, with `notice` (`/chat#connect`).
    Joined {
        /// The CONNECT answer.
        reply: Bytes,
        /// The event for the namespace's handlers.
        notice: Value,
    },
    /// Tell the handlers, if any listen (`/chat#disconnect`); nobody
    /// listening is not the client's error.
    Notice(Value),
    /// The client's pong.
    Pong,
    /// Close the connection: the client left (`clean`) or broke the protocol.
    Close {
        /// A normal close, not a protocol violation.
        clean: bool,
        /// Why.
        reason: String,
    },
    /// Nothing to do.
    Nothing,
}

/// A binary packet waiting for its attachments.
struct Pending {
    packet: Packet,
    attachments: Vec<Bytes>,
}

/// A connection's Socket.IO state: its namespaces and the packet waiting
/// for attachments. Bounded: at most `max_namespaces` names and
/// `max_attachments` attachments of at most the message size each.
pub(crate) struct Reader {
    profile: Box<SocketIoProfile>,
    namespaces: Vec<String>,
    pending: Option<Pending>,
}

fn protocol_error(reason: impl Into<String>) -> Inbound {
    Inbound::Close {
        clean: false,
        reason: reason.into(),
    }
}

fn text_frame(text: &str) -> Bytes {
    encode_server_frame(OpCode::Text, false, text.as_bytes())
}

impl Reader {
    pub fn new(profile: SocketIoProfile) -> Reader {
        let namespaces = vec![profile.namespace.clone()];
        Reader {
            profile: Box::new(profile),
            namespaces,
            pending: None,
        }
    }

    /// The frame that tells the client it joined the namespace it
    /// connected to first (`40{"sid":…}`): the connection's id is its
    /// Socket.IO id.
    pub fn connected_frame(&self, id: &str) -> Bytes {
        let nsp = &self.profile.namespace;
        text_frame(&encode(
            Kind::Connect,
            nsp,
            0,
            None,
            Some(&json!({ "sid": id })),
        ))
    }

    /// Handles one message; `id` is the connection's id.
    pub fn handle(&mut self, message: Message, id: &str) -> Inbound {
        match message {
            Message::Binary(bytes) => self.attachment(bytes),
            Message::Text(text) => {
                if self.pending.is_some() {
                    return protocol_error(
                        "a text packet came before the attachments of the last one",
                    );
                }
                match EnginePacket::parse(text.as_str()) {
                    Some(EnginePacket::Pong(_)) => Inbound::Pong,
                    Some(EnginePacket::Ping(data)) => {
                        Inbound::Reply(text_frame(&format!("3{data}")))
                    }
                    Some(EnginePacket::Noop) => Inbound::Nothing,
                    Some(EnginePacket::Close) => Inbound::Close {
                        clean: true,
                        reason: "client closed".into(),
                    },
                    Some(EnginePacket::Message(packet)) => self.packet(packet, id),
                    Some(EnginePacket::Upgrade) | None => {
                        protocol_error("unexpected Engine.IO packet")
                    }
                }
            }
        }
    }

    fn packet(&mut self, text: &str, id: &str) -> Inbound {
        let packet = match Packet::parse(text, self.profile.options.max_attachments) {
            Ok(packet) => packet,
            Err(error) => return protocol_error(error.0),
        };
        match packet.kind {
            Kind::Connect => self.connect(&packet.nsp, packet.data, id),
            Kind::Disconnect => {
                let joined = self.namespaces.contains(&packet.nsp);
                self.namespaces.retain(|n| *n != packet.nsp);
                if self.namespaces.is_empty() {
                    Inbound::Close {
                        clean: true,
                        reason: "client namespace disconnect".into(),
                    }
                } else if joined && packet.nsp != self.profile.namespace {
                    // The first namespace is the connection's: its
                    // `disconnect` is the connection's, at its end.
                    Inbound::Notice(json!({
                        "event": mapping::event_name(&packet.nsp, "disconnect"),
                    }))
                } else {
                    Inbound::Nothing
                }
            }
            // The answer to an event the server asked it to acknowledge.
            Kind::Ack => self.ack(packet),
            // Refused by `Packet::parse` already.
            Kind::ConnectError => protocol_error("CONNECT_ERROR is sent by servers only"),
            Kind::BinaryEvent | Kind::BinaryAck => {
                self.pending = Some(Pending {
                    attachments: Vec::with_capacity(packet.attachments),
                    packet,
                });
                Inbound::Nothing
            }
            Kind::Event => self.event(packet),
        }
    }

    fn event(&self, packet: Packet) -> Inbound {
        if !self.namespaces.contains(&packet.nsp) {
            // As a Socket.IO server does: a namespace not joined is not heard.
            return Inbound::Nothing;
        }
        // `/chat#connect` and `/chat#disconnect` are the server's notices;
        // socket.io-client refuses to emit these names, so only a forger does.
        let name = packet
            .data
            .as_ref()
            .and_then(|args| args.get(0))
            .and_then(Value::as_str);
        if matches!(name, Some("connect" | "disconnect")) {
            return protocol_error("\"connect\" and \"disconnect\" are reserved event names");
        }
        Inbound::Dispatch(mapping::incoming_event(packet))
    }

    /// A CONNECT after the first: the namespace is joined (and its
    /// handlers told, with the CONNECT's `auth` as data), or refused.
    fn connect(&mut self, nsp: &str, auth: Option<Value>, id: &str) -> Inbound {
        let refuse = |message: &str| {
            let data = json!({ "message": message });
            Inbound::Reply(text_frame(&encode(
                Kind::ConnectError,
                nsp,
                0,
                None,
                Some(&data),
            )))
        };
        if !self.profile.options.has_namespace(nsp) {
            return refuse("Invalid namespace");
        }
        let reply = text_frame(&encode(
            Kind::Connect,
            nsp,
            0,
            None,
            Some(&json!({ "sid": id })),
        ));
        if self.namespaces.iter().any(|n| n == nsp) {
            return Inbound::Reply(reply);
        }
        if self.namespaces.len() >= self.profile.options.max_namespaces {
            return refuse("too many namespaces on this connection");
        }
        self.namespaces.push(nsp.to_owned());
        let notice = json!({
            "event": mapping::event_name(nsp, "connect"),
            "data": auth.unwrap_or(Value::Null),
        });
        Inbound::Joined { reply, notice }
    }

    fn attachment(&mut self, bytes: Bytes) -> Inbound {
        let Some(pending) = &mut self.pending else {
            return protocol_error("a binary message that no packet announced");
        };
        pending.attachments.push(bytes);
        if pending.attachments.len() < pending.packet.attachments {
            return Inbound::Nothing;
        }
        let Some(Pending {
            mut packet,
            attachments,
        }) = self.pending.take()
        else {
            return Inbound::Nothing;
        };
        if let Some(data) = &mut packet.data {
            if let Err(why) = binary::reconstruct(data, &attachments) {
                return protocol_error(why);
            }
        }
        match packet.kind {
            Kind::BinaryEvent => self.event(packet),
            _ => self.ack(packet),
        }
    }

    fn ack(&self, packet: Packet) -> Inbound {
        if !self.namespaces.contains(&packet.nsp) {
            return Inbound::Nothing;
        }
        Inbound::Dispatch(mapping::incoming_ack(packet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socketio::SocketIoOptions;

    fn reader() -> Reader {
        let options = SocketIoOptions {
            max_namespaces: 2,
            max_attachments: 2,
            ..SocketIoOptions::default()
        };
        Reader::new(SocketIoProfile {
            options,
            namespace: "/".into(),
        })
    }

    fn text(r: &mut Reader, t: &str) -> Inbound {
        r.handle(Message::text(t.to_owned()), "id1")
    }

    fn is_error(inbound: &Inbound) -> bool {
        matches!(inbound, Inbound::Close { clean: false, .. })
    }

    #[test]
    fn events_pongs_and_namespaces() {
        let mut r = reader();
        assert!(matches!(text(&mut r, "3"), Inbound::Pong));
        match text(&mut r, "42[\"a\",1]") {
            Inbound::Dispatch(v) => assert_eq!(v, json!({"event":"a","data":1})),
            other => panic!("{other:?}"),
        }
        // Not joined yet: ignored.
        assert!(matches!(text(&mut r, "42/x,[\"a\"]"), Inbound::Nothing));
        match text(&mut r, "40/x,{\"k\":1}") {
            Inbound::Joined { reply, notice } => {
                assert_eq!(&reply[2..], b"40/x,{\"sid\":\"id1\"}");
                assert_eq!(notice, json!({"event":"/x#connect","data":{"k":1}}));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(text(&mut r, "40/x,"), Inbound::Reply(_)),
            "joined already"
        );
        assert!(matches!(
            text(&mut r, "42/x,[\"connect\"]"),
            Inbound::Close { clean: false, .. }
        ));
        assert!(matches!(text(&mut r, "42/x,[\"a\"]"), Inbound::Dispatch(_)));
        match text(&mut r, "40/y,") {
            Inbound::Reply(frame) => assert!(frame[2..].starts_with(b"44/y,")),
            other => panic!("{other:?}"),
        }
        match text(&mut r, "41/x,") {
            Inbound::Notice(notice) => assert_eq!(notice, json!({"event":"/x#disconnect"})),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(text(&mut r, "41/x,"), Inbound::Nothing),
            "left already"
        );
        assert!(matches!(
            text(&mut r, "41"),
            Inbound::Close { clean: true, .. }
        ));
    }

    #[test]
    fn binary_events_wait_for_their_attachments() {
        let mut r = reader();
        let header = "451-[\"f\",{\"_placeholder\":true,\"num\":0}]";
        assert!(matches!(text(&mut r, header), Inbound::Nothing));
        match r.handle(Message::Binary(Bytes::from_static(&[1, 2, 3])), "id1") {
            Inbound::Dispatch(v) => assert_eq!(v, json!({"event":"f","data":{"$binary":"AQID"}})),
            other => panic!("{other:?}"),
        }
    }

    /// Random packets built from the characters that matter (digits,
    /// brackets, separators, placeholders) and random binary messages, fed
    /// to one reader and to fresh ones: no panic, and what it holds stays
    /// within its bounds.
    #[test]
    fn random_input_never_panics_and_stays_bounded() {
        use rand::{Rng, SeedableRng};
        const PIECES: &[&str] = &[
            "4",
            "2",
            "3",
            "5",
            "1",
            "0",
            "6",
            "-",
            "/",
            "/x",
            ",",
            "[",
            "]",
            "{",
            "}",
            "\"",
            "a",
            ":",
            "9",
            "99999999999999999",
            "\"ev\"",
            "{\"_placeholder\":true,\"num\":0}",
            "{\"_placeholder\":true,\"num\":1}",
            "null",
            "true",
            "\u{1}",
            "é",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(6455);
        let mut long_lived = reader();
        for _ in 0..20_000 {
            let message = if rng.gen_ratio(1, 8) {
                let len = rng.gen_range(0..8);
                Message::Binary(
                    (0..len)
                        .map(|_| rng.gen::<u8>())
                        .collect::<Vec<u8>>()
                        .into(),
                )
            } else {
                let mut text = String::from(if rng.gen_bool(0.7) { "4" } else { "" });
                for _ in 0..rng.gen_range(0..12) {
                    text.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
                }
                Message::text(text)
            };
            let _ = reader().handle(message.clone(), "id");
            if let Inbound::Close { .. } = long_lived.handle(message, "id") {
                long_lived = reader();
            }
            assert!(long_lived.namespaces.len() <= long_lived.profile.options.max_namespaces);
            if let Some(pending) = &long_lived.pending {
                assert!(pending.attachments.len() < pending.packet.attachments);
                assert!(pending.packet.attachments <= long_lived.profile.options.max_attachments);
            }
        }
    }

    #[test]
    fn malformed_input_closes() {
        for bad in ["", "0", "9", "4", "42", "42{", "44{}", "453-[\"f\"]", "5"] {
            assert!(is_error(&text(&mut reader(), bad)), "{bad:?}");
        }
        let mut r = reader();
        assert!(is_error(
            &r.handle(Message::Binary(Bytes::from_static(b"x")), "i")
        ));
        let mut r = reader();
        text(&mut r, "451-[\"f\",{\"_placeholder\":true,\"num\":0}]");
        assert!(is_error(&text(&mut r, "42[\"a\"]")));
        let mut r = reader();
        text(&mut r, "451-[\"f\",{\"_placeholder\":true,\"num\":3}]");
        assert!(is_error(
            &r.handle(Message::Binary(Bytes::from_static(b"x")), "i")
        ));
    }
}
