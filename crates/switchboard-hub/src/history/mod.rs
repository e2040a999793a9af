//! Room history: numbered messages, recovery after a reconnect, and
//! at-least-once delivery (docs/PROTOCOL.md, "History and recovery").
//!
//! # Design
//!
//! A room whose name matches a [`HistoryRule`] has an *epoch* (a random
//! name for its history) and numbers its messages 1, 2, 3, … (*offsets*).
//! One node numbers and keeps them itself, in memory (`log`); a cluster
//! numbers and keeps them in Redis, through the [`ClusterAdapter`]'s
//! `history_*` methods, and every node, the publisher's included, delivers
//! a room's messages as they come back from Redis, in offset order.
//!
//! On each node a room with history and local members has a *feed*
//! (`feed`): the one place its messages are delivered from, under its
//! lock, in offset order. A feed knows the last offset it delivered and
//! fills any gap from the store before going on (a cluster node that
//! missed messages while its link to Redis was down), and it keeps, for
//! each local member, the last offset that member was sent: a member is
//! never sent an offset twice nor out of order.
//!
//! A `join` is answered once the member is in the feed. With `since`, a
//! *replay* (`replay`) first reads the missed messages from the store page
//! by page and sends them; meanwhile the member is *gated*: what the feed
//! delivers for it is kept aside. When a page reaches the end of the
//! store, the kept messages after the replayed ones are sent, the gate is
//! lifted and the ack is sent, all under the feed's lock: the switch from
//! replay to live delivery has no gap (everything delivered after the gate
//! was set is either replayed or kept) and no duplicate (the member's last
//! offset filters both).
//!
//! [`ClusterAdapter`]: crate::ClusterAdapter

mod feed;
mod log;
mod publish;
mod replay;
mod store;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

pub(crate) use feed::{lock, Feeds};
pub use publish::Published;
pub(crate) use publish::Relay;
pub use replay::Since;
pub(crate) use replay::MAX_HISTORY_PAGE;
pub(crate) use store::Appended;
pub use store::PageFuture;

/// Which rooms keep history, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRule {
    /// The rooms, as a name where `*` stands for any run of characters.
    pub rooms: String,
    /// Messages kept per room, the newest. Default 1,000.
    pub size: usize,
    /// How long a message is kept. Default 300 s.
    pub ttl: Duration,
}

impl HistoryRule {
    /// A rule for `rooms` with the default size and age.
    pub fn new(rooms: impl Into<String>) -> HistoryRule {
        HistoryRule {
            rooms: rooms.into(),
            size: 1000,
            ttl: Duration::from_secs(300),
        }
    }

    /// Parses `ROOMS[,size=N][,ttl=SECONDS]`, the form of `--history`.
    pub fn parse(spec: &str) -> Result<HistoryRule, String> {
        let mut parts = spec.split(',');
        let rooms = parts.next().unwrap_or_default().trim();
        if rooms.is_empty() {
            return Err(format!("history rule {spec:?}: the rooms are missing"));
        }
        let mut rule = HistoryRule::new(rooms);
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("history rule {spec:?}: {part:?} is not KEY=VALUE"))?;
            let number = |what: &str| {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| *n > 0.0)
                    .ok_or_else(|| {
                        format!("history rule {spec:?}: {what} must be a positive number")
                    })
            };
            match key.trim() {
                "size" => rule.size = number("size")? as usize,
                "ttl" => rule.ttl = Duration::from_secs_f64(number("ttl")?),
                other => {
                    return Err(format!(
                        "history rule {spec:?}: unknown key {other:?} (size, ttl)"
                    ))
                }
            }
        }
        rule.validate()?;
        Ok(rule)
    }

    /// Checks the bounds: a size of at least one message and at most
    /// 1,000,000, an age of at least a second.
    pub fn validate(&self) -> Result<(), String> {
        if self.rooms.is_empty() {
            return Err("a history rule needs rooms".into());
        }
        if !(1..=1_000_000).contains(&self.size) {
            return Err(format!(
                "history size for {:?} must be 1 to 1000000",
                self.rooms
            ));
        }
        if self.ttl < Duration::from_secs(1) {
            return Err(format!(
                "history ttl for {:?} must be at least a second",
                self.rooms
            ));
        }
        Ok(())
    }

    pub(crate) fn matches(&self, room: &str) -> bool {
        crate::rights::glob(&self.rooms, room)
    }
}

/// A message stored in a room's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its number in the room.
    pub offset: u64,
    /// The room's history it is in.
    pub epoch: String,
}

/// Messages read from a room's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The room's epoch.
    pub epoch: String,
    /// The offset of the room's newest message (0 when it has none).
    pub latest: u64,
    /// The offset of the oldest message kept (0 when none is).
    pub oldest: u64,
    /// The messages after the offset asked for, oldest first: offset and
    /// JSON as clients receive it (with its `offset` and `epoch`).
    pub messages: Vec<(u64, Bytes)>,
}

/// The history could not be written or read (the cluster's Redis is
/// unreachable): the message was neither stored nor delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryUnavailable(pub String);

impl fmt::Display for HistoryUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "history unavailable: {}", self.0)
    }
}

impl std::error::Error for HistoryUnavailable {}

/// What a store is told when a message was stored (and sent), or not.
pub type StoredCallback = Box<dyn FnOnce(Result<Stored, HistoryUnavailable>) + Send>;

/// A message for a room's history, handed to the cluster: it stores it
/// and sends it to every node (this one included).
pub struct Append {
    /// The room.
    pub room: String,
    /// A connection that does not get it (the sender, with `"echo":false`).
    pub except: Option<String>,
    /// The room's rule.
    pub rule: HistoryRule,
    /// The message's JSON without its closing `}`: the store appends
    /// `,"offset":N,"epoch":"E"}`, as the hub itself would write them.
    pub head: Bytes,
    /// An epoch for the room if it has none (its history is new, or lost).
    pub new_epoch: String,
    /// Told the offset and epoch once stored, or why it was not.
    pub done: StoredCallback,
}

impl fmt::Debug for Append {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Append")
            .field("room", &self.room)
            .field("except", &self.except)
            .finish()
    }
}

/// Completes a message's JSON (`head`, without its closing `}`) with its
/// offset and epoch: the same text as serializing it with them.
pub fn complete_json(head: &[u8], offset: u64, epoch: &str) -> Bytes {
    let mut json = Vec::with_capacity(head.len() + 40 + epoch.len());
    json.extend_from_slice(head);
    json.extend_from_slice(format!(",\"offset\":{offset},\"epoch\":\"{epoch}\"}}").as_bytes());
    Bytes::from(json)
}

/// A new random epoch: 12 characters of `[0-9a-z]`.
pub fn new_epoch() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_with_defaults_and_refuse_nonsense() {
        assert_eq!(
            HistoryRule::parse("chat-*").unwrap(),
            HistoryRule::new("chat-*")
        );
        let rule = HistoryRule::parse("orders,size=10000,ttl=3600").unwrap();
        assert_eq!((rule.size, rule.ttl), (10_000, Duration::from_secs(3600)));
        for bad in [
            "",
            ",size=1",
            "a,size=0",
            "a,size",
            "a,colour=red",
            "a,ttl=0.5",
        ] {
            assert!(HistoryRule::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HistoryRule::new("team-*").matches("team-red"));
        assert!(!HistoryRule::new("team-*").matches("lobby"));
    }

    #[test]
    fn completed_json_is_what_serde_writes() {
        let head = br#"{"event":"chat","room":"r","data":1"#;
        let json = complete_json(head, 42, "abc");
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"event":"chat","room":"r","data":1,"offset":42,"epoch":"abc"})
        );
        assert_eq!(new_epoch().len(), 12);
        assert_ne!(new_epoch(), new_epoch());
    }
}
