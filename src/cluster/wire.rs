//! What the nodes write in Redis: key and channel names, the message
//! envelope, presence events and user-list entries.
//!
//! With the prefix `P` (`--redis-prefix`, default `switchboard`):
//!
//! | name | kind | holds |
//! |---|---|---|
//! | `P:node:N` | channel | messages for node N (its inbox) |
//! | `P:all` | channel | room, broadcast and address messages, with `--cluster-channels shared` |
//! | `P:presence` | channel | presence events of every node (JSON, below) |
//! | `P:nodes` | set | the node ids that registered |
//! | `P:hb:N` | string, TTL | node N is alive while this key exists |
//! | `P:users:N` | hash, TTL | node N's connections: id → `{"name","rooms"}`, and `~seq` |
//! | `P:history`, `{P:h:ROOM}:m`, `{P:h:ROOM}:s` | channel, hash, stream | room history (see `history`) |
//!
//! A message is `sb1\nORIGIN\nKIND\nTARGET\nEXCEPT\nPAYLOAD`: KIND is `r`
//! (room TARGET), `d` (direct, to connection TARGET), `b` (broadcast) or `a`
//! (address TARGET); EXCEPT is a connection id or empty; PAYLOAD is the
//! message's JSON as clients get it, copied as it is. Room names, addresses
//! and ids have no control characters, so the header needs no escaping and
//! the payload is never encoded again.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_hub::{ConnId, Route, User};

/// The version tag that starts every message.
const MAGIC: &[u8] = b"sb1";
/// The hash field holding the sequence number of a node's last write.
pub const SEQ_FIELD: &str = "~seq";

/// The names of one cluster's keys and channels, seen from one node.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    node: String,
}

impl Keys {
    pub fn new(prefix: &str, node: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            node: node.to_owned(),
        }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn inbox(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    pub fn all(&self) -> String {
        format!("{}:all", self.prefix)
    }

    pub fn presence(&self) -> String {
        format!("{}:presence", self.prefix)
    }

    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    pub fn heartbeat(&self, node: &str) -> String {
        format!("{}:hb:{node}", self.prefix)
    }

    pub fn users(&self, node: &str) -> String {
        format!("{}:users:{node}", self.prefix)
    }

    /// A room's history hash (epoch, last offset); see `history`.
    pub fn history_hash(&self, room: &str) -> String {
        format!("{{{}:h:{room}}}:m", self.prefix)
    }

    /// A room's history stream.
    pub fn history_stream(&self, room: &str) -> String {
        format!("{{{}:h:{room}}}:s", self.prefix)
    }

    /// The channel of every stored message.
    pub fn history_channel(&self) -> String {
        format!("{}:history", self.prefix)
    }
}

/// Milliseconds since the Unix epoch: the value of heartbeat keys, for people.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A message as published.
pub struct Envelope<'a> {
    pub origin: &'a str,
    pub route: Route<'a>,
    pub payload: &'a [u8],
}

impl Envelope<'_> {
    /// The whole message in one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let (kind, target, except) = match self.route {
            Route::Room { room, except } => (b'r', room, except),
            Route::Direct { to } => (b'd', to, None),
            Route::Everyone { except } => (b'b', "", except),
            Route::Address { path } => (b'a', path, None),
        };
        let except = except.unwrap_or("");
        let mut out = Vec::with_capacity(
            MAGIC.len() + self.origin.len() + target.len() + except.len() + 6 + self.payload.len(),
        );
        for field in [
            MAGIC,
            self.origin.as_bytes(),
            &[kind],
            target.as_bytes(),
            except.as_bytes(),
        ] {
            out.extend_from_slice(field);
            out.push(b'\n');
        }
        out.extend_from_slice(self.payload);
        Bytes::from(out)
    }
}

/// A message as received.
#[derive(Debug, PartialEq, Eq)]
pub struct Received<'a> {
    pub origin: &'a str,
    pub route: Route<'a>,
    pub payload: &'a [u8],
}

/// Reads a message; `None` if it is not one of ours.
pub fn decode_message(bytes: &[u8]) -> Option<Received<'_>> {
    let mut fields = bytes.splitn(6, |&b| b == b'\n');
    if fields.next()? != MAGIC {
        return None;
    }
    let origin = std::str::from_utf8(fields.next()?).ok()?;
    let kind = fields.next()?;
    let target = std::str::from_utf8(fields.next()?).ok()?;
    let except = std::str::from_utf8(fields.next()?).ok()?;
    let payload = fields.next()?;
    let except = (!except.is_empty()).then_some(except);
    let route = match kind {
        b"r" => Route::Room {
            room: target,
            except,
        },
        b"d" => Route::Direct { to: target },
        b"b" => Route::Everyone { except },
        b"a" => Route::Address { path: target },
        _ => return None,
    };
    Some(Received {
        origin,
        route,
        payload,
    })
}

/// A connection's entry in `P:users:N`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub name: Option<String>,
    pub rooms: BTreeSet<String>,
}

impl Entry {
    pub fn of(user: &User) -> String {
        let entry = Entry {
            name: user.name.clone(),
            rooms: user.rooms.clone(),
        };
        serde_json::to_string(&entry).unwrap_or_default()
    }

    pub fn user(id: &str, json: &[u8]) -> Option<User> {
        let entry: Entry = serde_json::from_slice(json).ok()?;
        Some(User {
            id: ConnId::from_string(id),
            name: entry.name,
            rooms: entry.rooms,
        })
    }
}

/// What a node tells the others on `P:presence`. Every event but `bye`
/// carries the node's sequence number, one more for each write.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Event {
    /// A connection's state (it connected, joined, left or renamed).
    Set {
        node: String,
        seq: u64,
        id: String,
        name: Option<String>,
        rooms: BTreeSet<String>,
    },
    /// A connection left.
    Del { node: String, seq: u64, id: String },
    /// The node rewrote all of `P:users:N` (it started, or came back after
    /// Redis was away): read it again.
    Sync { node: String, seq: u64 },
    /// The node is leaving: forget it.
    Bye { node: String },
}

impl Event {
    pub fn set(node: &str, seq: u64, user: &User) -> Event {
        Event::Set {
            node: node.to_owned(),
            seq,
            id: user.id.as_str().to_owned(),
            name: user.name.clone(),
            rooms: user.rooms.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A node's users as read from `P:users:N` (HGETALL): its sequence number
/// and connections; `None` if the hash has no sequence number (it does not
/// exist, or is being rewritten).
pub fn parse_snapshot(fields: Vec<(String, Vec<u8>)>) -> Option<(u64, Vec<User>)> {
    let mut seq = None;
    let mut users = Vec::with_capacity(fields.len());
    for (field, value) in fields {
        if field == SEQ_FIELD {
            seq = std::str::from_utf8(&value).ok()?.parse().ok();
        } else if let Some(user) = Entry::user(&field, &value) {
            users.push(user);
        }
    }
    Some((seq?, users))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let payload = br#"{"event":"chat","room":"the lobby","data":"a\nb"}"#;
        let routes = [
            Route::Room {
                room: "the lobby",
                except: Some("abc"),
            },
            Route::Room {
                room: "x",
                except: None,
            },
            Route::Direct { to: "k3v9x0a1b2c3" },
            Route::Everyone { except: None },
            Route::Address { path: "/a/b" },
        ];
        for route in routes {
            let bytes = Envelope {
                origin: "node1",
                route,
                payload,
            }
            .to_bytes();
            let received = decode_message(&bytes).unwrap();
            assert_eq!(received.origin, "node1");
            assert_eq!(received.route, route);
            assert_eq!(received.payload, payload);
        }
        assert!(decode_message(b"hello").is_none());
        assert!(decode_message(b"sb1\nn\nq\n\n\n{}").is_none());
    }

    #[test]
    fn events_and_snapshots() {
        let user = User {
            id: ConnId::from_string("a1"),
            name: Some("alice".into()),
            rooms: ["lobby".to_owned()].into(),
        };
        let json = Event::set("n1", 7, &user).to_json();
        assert_eq!(
            json,
            r#"{"op":"set","node":"n1","seq":7,"id":"a1","name":"alice","rooms":["lobby"]}"#
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Event::set("n1", 7, &user));
        let fields = vec![
            ("a1".to_owned(), Entry::of(&user).into_bytes()),
            (SEQ_FIELD.to_owned(), b"12".to_vec()),
            ("bad".to_owned(), b"not json".to_vec()),
        ];
        assert_eq!(parse_snapshot(fields), Some((12, vec![user])));
        assert_eq!(parse_snapshot(Vec::new()), None);
    }
}
