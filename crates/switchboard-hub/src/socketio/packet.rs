//! Engine.IO v4 and Socket.IO v5 packets as text: parsing what a client
//! sends and writing what it receives. No state and no I/O; the rules are
//! those of github.com/socketio/engine.io-protocol (v4) and
//! github.com/socketio/socket.io-protocol (v5).
//!
//! An Engine.IO text packet is a type digit and its data (`4` message,
//! `2` ping, `3` pong, `1` close, `5` upgrade, `6` noop). A Socket.IO
//! packet rides in an Engine.IO message: `<type>[<attachments>-][<nsp>,][<id>][<json>]`.

use serde_json::Value;

/// The longest namespace accepted (the bound of event names,
/// `envelope::MAX_NAME_LEN`, not imported: the envelope imports this).
pub const MAX_NAMESPACE_LEN: usize = 64;

/// Ack ids above this are refused: a JavaScript client counts from 0 and
/// must be able to read the id back as a safe integer.
const MAX_ACK_ID: u64 = (1 << 53) - 1;

/// One Engine.IO packet a client sent in a text frame (or a polling payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `1`: the client closes the session.
    Close,
    /// `2` with its data (`2probe` during an upgrade).
    Ping(&'a str),
    /// `3` with its data.
    Pong(&'a str),
    /// `4`: a Socket.IO packet.
    Message(&'a str),
    /// `5`: the client switches to the new transport.
    Upgrade,
    /// `6`: nothing.
    Noop,
}

impl<'a> EnginePacket<'a> {
    /// Parses a text packet; `None` for an empty one, an unknown type or an
    /// `open` (`0`), which only a server sends.
    pub fn parse(text: &'a str) -> Option<EnginePacket<'a>> {
        let rest = text.get(1..)?;
        Some(match text.as_bytes().first()? {
            b'1' => EnginePacket::Close,
            b'2' => EnginePacket::Ping(rest),
            b'3' => EnginePacket::Pong(rest),
            b'4' => EnginePacket::Message(rest),
            b'5' => EnginePacket::Upgrade,
            b'6' => EnginePacket::Noop,
            _ => return None,
        })
    }
}

/// The type of a Socket.IO packet (its first digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `0`: join a namespace (client), or joined (server).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event.
    Event,
    /// `3`: an answer to an event that asked for one.
    Ack,
    /// `4`: a namespace refused (server only).
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

impl Kind {
    fn from_digit(digit: u8) -> Option<Kind> {
        Some(match digit {
            b'0' => Kind::Connect,
            b'1' => Kind::Disconnect,
            b'2' => Kind::Event,
            b'3' => Kind::Ack,
            b'4' => Kind::ConnectError,
            b'5' => Kind::BinaryEvent,
            b'6' => Kind::BinaryAck,
            _ => return None,
        })
    }

    /// The packet's digit.
    pub fn digit(self) -> char {
        match self {
            Kind::Connect => '0',
            Kind::Disconnect => '1',
            Kind::Event => '2',
            Kind::Ack => '3',
            Kind::ConnectError => '4',
            Kind::BinaryEvent => '5',
            Kind::BinaryAck => '6',
        }
    }
}

/// A parsed Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Its type.
    pub kind: Kind,
    /// Its namespace, `/` when the packet names none.
    pub nsp: String,
    /// The binary attachments that follow it (binary kinds only).
    pub attachments: usize,
    /// The ack id, on an event that asks for an answer and on an ack.
    pub id: Option<u64>,
    /// The JSON payload, if any.
    pub data: Option<Value>,
}

/// Why a packet was refused; the connection is closed with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketError(pub String);

fn bad(why: impl Into<String>) -> PacketError {
    PacketError(why.into())
}

impl Packet {
    /// Parses the Socket.IO packet inside an Engine.IO message. At most
    /// `max_attachments` attachments are accepted.
    pub fn parse(text: &str, max_attachments: usize) -> Result<Packet, PacketError> {
        let kind = text
            .as_bytes()
            .first()
            .and_then(|d| Kind::from_digit(*d))
            .ok_or_else(|| bad("unknown Socket.IO packet type"))?;
        let mut rest = &text[1..];
        let mut attachments = 0;
        if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
            let (count, after) = rest
                .split_once('-')
                .ok_or_else(|| bad("a binary packet starts with its attachment count"))?;
            attachments = parse_number(count)
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("bad attachment count"))? as usize;
            if attachments > max_attachments {
                return Err(bad(format!(
                    "{attachments} attachments, at most {max_attachments} are accepted"
                )));
            }
            rest = after;
        }
        let mut nsp = String::from("/");
        if rest.starts_with('/') {
            let end = rest.find(',').unwrap_or(rest.len());
            let name = &rest[..end];
            if name.len() > MAX_NAMESPACE_LEN || name.chars().any(char::is_control) {
                return Err(bad("bad namespace"));
            }
            nsp = name.to_owned();
            rest = rest.get(end + 1..).unwrap_or("");
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = if digits > 0 {
            let id = parse_number(&rest[..digits]).ok_or_else(|| bad("bad ack id"))?;
            rest = &rest[digits..];
            Some(id)
        } else {
            None
        };
        let data = if rest.is_empty() {
            None
        } else {
            Some(serde_json::from_str(rest).map_err(|e| bad(format!("bad JSON payload: {e}")))?)
        };
        let packet = Packet {
            kind,
            nsp,
            attachments,
            id,
            data,
        };
        packet.check()?;
        Ok(packet)
    }

    /// The shape rules of socket.io-parser: an event is a non-empty array
    /// starting with its name, an ack an array, a connect an object or nothing.
    fn check(&self) -> Result<(), PacketError> {
        if self.kind == Kind::ConnectError {
            return Err(bad("CONNECT_ERROR is sent by servers only"));
        }
        let ok = match (self.kind, &self.data) {
            (Kind::Connect, None | Some(Value::Object(_))) => true,
            (Kind::Disconnect, None) => true,
            (Kind::Event | Kind::BinaryEvent, Some(Value::Array(args))) => {
                matches!(args.first(), Some(Value::String(_)))
            }
            (Kind::Ack | Kind::BinaryAck, Some(Value::Array(_))) => self.id.is_some(),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(bad(format!("malformed {:?} packet", self.kind)))
        }
    }
}

fn parse_number(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n <= MAX_ACK_ID)
}

/// Writes a Socket.IO packet as an Engine.IO message (`4…`).
pub fn encode(
    kind: Kind,
    nsp: &str,
    attachments: usize,
    id: Option<u64>,
    data: Option<&Value>,
) -> String {
    let mut out = String::with_capacity(32);
    out.push('4');
    out.push(kind.digit());
    if attachments > 0 {
        out.push_str(&attachments.to_string());
        out.push('-');
    }
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        out.push_str(&id.to_string());
    }
    if let Some(data) = data {
        // A Value always serializes.
        out.push_str(&serde_json::to_string(data).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Packet, PacketError> {
        Packet::parse(text, 4)
    }

    #[test]
    fn engine_packets() {
        assert_eq!(
            EnginePacket::parse("2probe"),
            Some(EnginePacket::Ping("probe"))
        );
        assert_eq!(EnginePacket::parse("3"), Some(EnginePacket::Pong("")));
        assert_eq!(
            EnginePacket::parse("42[\"a\"]"),
            Some(EnginePacket::Message("2[\"a\"]"))
        );
        assert_eq!(EnginePacket::parse("5"), Some(EnginePacket::Upgrade));
        for bad in ["", "0{}", "9", "x"] {
            assert_eq!(EnginePacket::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn socket_io_packets_from_the_spec() {
        let p = parse("0{\"token\":\"123\"}").unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.data),
            (Kind::Connect, "/", Some(json!({"token":"123"})))
        );
        let p = parse("0/admin,").unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.data),
            (Kind::Connect, "/admin", None)
        );
        let p = parse("2/admin,12[\"bar\",1]").unwrap();
        assert_eq!(
            (p.nsp.as_str(), p.id, p.data),
            ("/admin", Some(12), Some(json!(["bar", 1])))
        );
        let p = parse("312[\"ok\"]").unwrap();
        assert_eq!((p.kind, p.id), (Kind::Ack, Some(12)));
        let p = parse("51-[\"up\",{\"_placeholder\":true,\"num\":0}]").unwrap();
        assert_eq!((p.kind, p.attachments), (Kind::BinaryEvent, 1));
        assert_eq!(parse("1").unwrap().kind, Kind::Disconnect);
    }

    #[test]
    fn malformed_packets_are_refused() {
        for text in [
            "",
            "9",
            "2",
            "2{}",
            "2[]",
            "2[1]",
            "3[1]",
            "2[\"a\"",
            "0[1]",
            "1[1]",
            "5[\"a\"]",
            "5x-[\"a\"]",
            "50-[\"a\"]",
            "55-[\"a\"]",
            "299999999999999999[\"a\"]",
            "2/\u{1},[\"a\"]",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
        let long = format!("0/{},", "n".repeat(100));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn encodes_what_the_client_parses() {
        assert_eq!(
            encode(Kind::Event, "/", 0, None, Some(&json!(["hi", 1]))),
            "42[\"hi\",1]"
        );
        assert_eq!(
            encode(Kind::Ack, "/chat", 0, Some(3), Some(&json!([]))),
            "43/chat,3[]"
        );
        assert_eq!(
            encode(Kind::BinaryEvent, "/", 2, None, Some(&json!(["b"]))),
            "452-[\"b\"]"
        );
        assert_eq!(
            encode(Kind::Connect, "/", 0, None, Some(&json!({"sid":"x"}))),
            "40{\"sid\":\"x\"}"
        );
        let back = parse(&encode(Kind::Event, "/x", 0, Some(7), Some(&json!(["e", {"a":1}])))[1..])
            .unwrap();
        assert_eq!((back.nsp.as_str(), back.id), ("/x", Some(7)));
    }
}
