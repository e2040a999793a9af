//! A room's feed on this node: the one place the room's numbered messages
//! are delivered from, in offset order, to its local members (see the
//! module's design notes).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use switchboard_net::{CloseCode, Cork};

use super::log::Log;
use crate::envelope::Prepared;
use crate::id::ConnId;
use crate::metrics::Metrics;
use crate::socket::Socket;

/// The close of a connection that let too many messages go unacknowledged.
pub(crate) const UNACKED: CloseCode = CloseCode(4002);
/// Messages, and bytes, kept for a gated member while its replay runs;
/// past either the replay reads them from the store instead.
const GATE_LIMIT: usize = 256;
const GATE_BYTES: usize = 1 << 20;
/// Messages, and bytes, a cluster feed keeps while it fills a gap; past
/// either it reads them from the store too.
const FILL_LIMIT: usize = 4096;
const FILL_BYTES: usize = 16 << 20;

/// The feeds of this node, by room.
#[derive(Default)]
pub(crate) struct Feeds {
    rooms: Mutex<HashMap<String, Arc<Mutex<Feed>>>>,
    /// Memory history: the logs' bytes and which room was written when.
    usage: Mutex<Usage>,
}

#[derive(Default)]
struct Usage {
    bytes: usize,
    stamp: u64,
    by_stamp: BTreeMap<u64, String>,
}

/// One room's feed.
pub(crate) struct Feed {
    /// The room's epoch ("" until a cluster feed sees one).
    pub epoch: String,
    /// The offset of the last message delivered here (on one node: the
    /// last numbered).
    pub last: u64,
    pub members: HashMap<ConnId, Member>,
    /// The stored messages, on a node without a cluster.
    pub log: Option<Log>,
    /// A cluster feed filling a gap: the messages that came meanwhile.
    pub filling: Option<Filling>,
    /// When the log was last written, in [`Usage`]'s order.
    stamp: u64,
}

/// A message with its number, as JSON.
#[derive(Clone)]
pub(crate) struct Numbered {
    pub offset: u64,
    pub json: Bytes,
    pub except: Option<String>,
}

/// A local member of a room with history.
pub(crate) struct Member {
    pub socket: Socket,
    /// The last offset it was sent.
    pub last: u64,
    /// The last offset it acknowledged (`received`), with `?acks=1`.
    pub acked: u64,
    pub acks: bool,
    /// While a replay runs: what the feed delivered for it meanwhile.
    pub gate: Option<Gate>,
}

/// What a cluster feed keeps while it fills a gap.
#[derive(Default)]
pub(crate) struct Filling {
    pub queued: Vec<Numbered>,
    bytes: usize,
    /// More came than it keeps: the fill reads on from the store.
    pub overflowed: bool,
}

#[derive(Default)]
pub(crate) struct Gate {
    pub kept: Vec<(u64, Bytes)>,
    bytes: usize,
    /// More came than [`GATE_LIMIT`]: the replay reads on instead.
    pub overflowed: bool,
}

impl Feeds {
    /// The feed of `room`, made (with `make`) if there is none.
    pub fn get_or_make(&self, room: &str, make: impl FnOnce() -> Feed) -> Arc<Mutex<Feed>> {
        let mut rooms = lock(&self.rooms);
        if let Some(feed) = rooms.get(room) {
            return feed.clone();
        }
        let feed = Arc::new(Mutex::new(make()));
        rooms.insert(room.to_owned(), feed.clone());
        feed
    }

    pub fn get(&self, room: &str) -> Option<Arc<Mutex<Feed>>> {
        lock(&self.rooms).get(room).cloned()
    }

    /// Forgets a cluster feed that has no member left and fills no gap.
    pub fn drop_if_unused(&self, room: &str) {
        let mut rooms = lock(&self.rooms);
        if let Some(feed) = rooms.get(room) {
            let unused = {
                let feed = lock(feed);
                feed.members.is_empty() && feed.filling.is_none() && feed.log.is_none()
            };
            if unused {
                rooms.remove(room);
            }
        }
    }

    /// The rooms that have a feed.
    pub fn rooms(&self) -> Vec<String> {
        lock(&self.rooms).keys().cloned().collect()
    }

    /// Counts a log's change of size and makes it the newest written;
    /// returns whether the logs are over `budget` bytes.
    pub fn wrote(&self, feed: &mut Feed, room: &str, delta: isize, budget: usize) -> bool {
        let mut usage = lock(&self.usage);
        usage.bytes = usage.bytes.saturating_add_signed(delta);
        usage.by_stamp.remove(&feed.stamp);
        usage.stamp += 1;
        feed.stamp = usage.stamp;
        let stamp = usage.stamp;
        usage.by_stamp.insert(stamp, room.to_owned());
        usage.bytes > budget
    }

    /// Empties whole logs, the least recently written first, until the
    /// logs fit in `budget` (never `keep`'s). An emptied room starts a new
    /// epoch: its history is lost. A room without members goes entirely.
    /// Takes the rooms' lock before a feed's, as everything here does.
    pub fn evict(&self, budget: usize, keep: &str) {
        loop {
            let victim = {
                let usage = lock(&self.usage);
                if usage.bytes <= budget {
                    return;
                }
                match usage.by_stamp.iter().find(|(_, room)| *room != keep) {
                    Some((stamp, room)) => (*stamp, room.clone()),
                    None => return,
                }
            };
            let (stamp, room) = victim;
            let freed = {
                let mut rooms = lock(&self.rooms);
                match rooms.get(&room).cloned() {
                    Some(feed) => {
                        let mut feed = lock(&feed);
                        let freed = feed.log.as_ref().map_or(0, Log::bytes);
                        if feed.members.is_empty() {
                            rooms.remove(&room);
                        } else {
                            feed.restart();
                        }
                        freed
                    }
                    None => 0,
                }
            };
            let mut usage = lock(&self.usage);
            usage.by_stamp.remove(&stamp);
            usage.bytes = usage.bytes.saturating_sub(freed);
        }
    }
}

impl Feed {
    /// A room's feed on a node without a cluster: a new epoch, no message.
    pub fn memory() -> Feed {
        Feed {
            epoch: super::new_epoch(),
            last: 0,
            members: HashMap::new(),
            log: Some(Log::default()),
            filling: None,
            stamp: 0,
        }
    }

    /// A room's feed on a cluster node: it learns the epoch and the last
    /// offset from the first message or page it sees.
    pub fn cluster() -> Feed {
        Feed {
            epoch: String::new(),
            last: 0,
            members: HashMap::new(),
            log: None,
            filling: None,
            stamp: 0,
        }
    }

    /// Starts the room's history over: a new epoch, no message kept, and
    /// the members' positions in the old one forgotten.
    fn restart(&mut self) {
        self.epoch = super::new_epoch();
        self.last = 0;
        self.log = Some(Log::default());
        for member in self.members.values_mut() {
            member.last = 0;
            member.acked = 0;
        }
    }

    /// Takes the store's epoch for the room, numbering from after `last`;
    /// when it replaces one this feed knew, the members' positions in the
    /// old one are forgotten.
    pub fn adopt_epoch(&mut self, epoch: &str, last: u64) {
        let known = !self.epoch.is_empty();
        self.epoch = epoch.to_owned();
        self.last = last;
        if known {
            for member in self.members.values_mut() {
                member.last = last;
                member.acked = last;
            }
        }
    }

    /// Adds a member. A live one is sent what comes after the feed's last
    /// offset; a gated one waits for its replay.
    pub fn add(&mut self, socket: &Socket, gated: bool) {
        let last = self.last;
        self.members.insert(
            socket.id().clone(),
            Member {
                socket: socket.clone(),
                last,
                acked: last,
                acks: socket.wants_acks(),
                gate: gated.then(Gate::default),
            },
        );
    }

    /// Delivers message `offset` to the members (but `except`): sent to
    /// the live ones that have not had it (written when `cork` is flushed,
    /// if given: a client's batch of messages goes out in one write per
    /// member), kept for the gated ones. Returns how many were sent it.
    pub fn deliver<T: Serialize>(
        &mut self,
        offset: u64,
        prepared: &Prepared<T>,
        except: Option<&str>,
        unacked_limit: usize,
        metrics: &Metrics,
        mut cork: Option<&mut Cork>,
    ) -> usize {
        self.last = self.last.max(offset);
        let now = Instant::now();
        let (mut sent, mut bytes) = (0, 0);
        for (id, member) in &mut self.members {
            if let Some(gate) = &mut member.gate {
                let json = prepared.json();
                if gate.kept.len() < GATE_LIMIT && gate.bytes + json.len() <= GATE_BYTES {
                    gate.bytes += json.len();
                    gate.kept.push((offset, json));
                } else {
                    gate.kept = Vec::new();
                    gate.bytes = 0;
                    gate.overflowed = true;
                }
                continue;
            }
            if offset <= member.last {
                continue;
            }
            member.last = offset;
            if Some(id.as_str()) == except {
                continue;
            }
            let frame = prepared.frame(member.socket.encoding());
            let len = frame.len();
            if member.socket.push(frame, now, cork.as_deref_mut()).is_ok() {
                sent += 1;
                bytes += len;
            }
            if member.acks && member.last.saturating_sub(member.acked) > unacked_limit as u64 {
                member
                    .socket
                    .close(UNACKED, "too many unacknowledged messages");
            }
        }
        Metrics::add(&metrics.messages_out, sent as u64);
        Metrics::add(&metrics.bytes_out, bytes as u64);
        sent
    }

    /// A cluster node's message from the store, in the order Redis sent it:
    /// what to do with it. A message of another epoch starts the feed
    /// over (the room's history was lost and begun again).
    pub fn sequence(&mut self, epoch: &str, message: Numbered) -> Sequenced {
        if self.epoch != epoch {
            self.filling = None;
            self.adopt_epoch(epoch, message.offset.saturating_sub(1));
        } else if self.last == 0 && self.members.values().all(|m| m.last == 0) {
            // The first message this feed sees.
            self.last = message.offset.saturating_sub(1);
        }
        if let Some(filling) = &mut self.filling {
            let len = message.json.len();
            let room = filling.queued.len() < FILL_LIMIT && filling.bytes + len <= FILL_BYTES;
            if !filling.overflowed && room {
                filling.bytes += len;
                filling.queued.push(message);
            } else {
                filling.queued = Vec::new();
                filling.bytes = 0;
                filling.overflowed = true;
            }
            return Sequenced::Wait;
        }
        if message.offset <= self.last {
            Sequenced::Old
        } else if message.offset == self.last + 1 {
            Sequenced::Next(message)
        } else {
            self.filling = Some(Filling::default());
            if let Some(filling) = &mut self.filling {
                filling.bytes = message.json.len();
                filling.queued.push(message);
            }
            Sequenced::Gap
        }
    }

    /// Records a member's acknowledgement (never past what it was sent).
    pub fn acknowledge(&mut self, id: &ConnId, offset: u64) {
        if let Some(member) = self.members.get_mut(id) {
            member.acked = member.acked.max(offset.min(member.last));
        }
    }
}

/// What a cluster feed does with a message from the store.
pub(crate) enum Sequenced {
    /// Deliver it: it follows the last one.
    Next(Numbered),
    /// Delivered already.
    Old,
    /// Kept until the gap before it is filled.
    Wait,
    /// Messages before it are missing: read them from the store.
    Gap,
}

/// How long a member's pages wait between looks at its queue.
pub(crate) const PACE: Duration = Duration::from_millis(2);

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(offset: u64) -> Numbered {
        Numbered {
            offset,
            json: Bytes::from_static(b"{}"),
            except: None,
        }
    }

    /// What `sequence` says, with a delivered message taken as delivered.
    fn take(feed: &mut Feed, epoch: &str, offset: u64) -> &'static str {
        match feed.sequence(epoch, numbered(offset)) {
            Sequenced::Next(message) => {
                feed.last = message.offset;
                "next"
            }
            Sequenced::Old => "old",
            Sequenced::Wait => "wait",
            Sequenced::Gap => "gap",
        }
    }

    #[test]
    fn a_cluster_feed_delivers_in_order_and_finds_gaps() {
        let mut feed = Feed::cluster();
        assert_eq!(
            take(&mut feed, "e1", 5),
            "next",
            "the first one seen starts the feed"
        );
        assert_eq!(take(&mut feed, "e1", 6), "next");
        assert_eq!(take(&mut feed, "e1", 6), "old");
        assert_eq!(take(&mut feed, "e1", 8), "gap", "7 is missing");
        assert_eq!(
            take(&mut feed, "e1", 9),
            "wait",
            "kept while the gap is read"
        );
        let filling = feed.filling.take().unwrap();
        let queued: Vec<u64> = filling.queued.iter().map(|m| m.offset).collect();
        assert_eq!(queued, [8, 9]);
        assert_eq!(take(&mut feed, "e2", 1), "next", "a new epoch starts over");
        assert_eq!((feed.epoch.as_str(), feed.last), ("e2", 1));
    }

    #[test]
    fn a_filling_feed_keeps_a_bounded_queue() {
        let mut feed = Feed::cluster();
        take(&mut feed, "e", 1);
        assert_eq!(take(&mut feed, "e", 3), "gap");
        for offset in 4..(FILL_LIMIT as u64 + 10) {
            assert_eq!(take(&mut feed, "e", offset), "wait");
        }
        let filling = feed.filling.as_ref().unwrap();
        assert!(
            filling.overflowed && filling.queued.is_empty(),
            "read from the store instead"
        );
    }
}
