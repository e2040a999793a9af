//! A `join` of a room with history: the member is gated, what it missed
//! is read from the store and sent, then it is switched to live delivery
//! and answered (see the module's design notes); and the `history` request.

use serde_json::{json, Value};

use super::feed::{lock, Feed, Gate, PACE};
use super::{HistoryUnavailable, Page};
use crate::envelope::{Prepared, RequestError};
use crate::hub::Hub;
use crate::socket::Socket;

/// Messages read and sent at once by a replay.
const REPLAY_PAGE: usize = 256;
/// The most messages a `history` request returns.
pub(crate) const MAX_HISTORY_PAGE: usize = 1000;
/// The most bytes of messages a `history` answer holds (past the first).
const MAX_HISTORY_BYTES: usize = 1 << 20;

/// Where a client's view of a room stopped: the epoch and the offset of
/// the last message it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The room's epoch, as the client saw it.
    pub epoch: String,
    /// The last offset it received (or processed, with `?acks=1`).
    pub offset: u64,
}

impl Hub {
    /// Joins a room with history: in the registry (presence, user lists)
    /// at once, in the room's feed gated; the replay task then answers
    /// `ack` (if any) with the room's position and whether `since` was
    /// recovered. A connection in the room already is answered at once.
    pub(crate) fn join_with_history(
        &self,
        socket: &Socket,
        room: &str,
        since: Option<Since>,
        ack: Option<Value>,
    ) -> Result<(), RequestError> {
        let already = socket.state().rooms.contains(room);
        let joined = self.join_gated(socket, room, !already)?;
        let members = joined["members"].clone();
        if already {
            let feed = self.feed(room);
            let feed = lock(&feed);
            let position = feed.members.get(socket.id()).map_or(feed.last, |m| m.last);
            let data =
                json!({"room": room, "members": members, "epoch": feed.epoch, "offset": position});
            self.answer(socket, ack.as_ref(), Ok(data));
            return Ok(());
        }
        let base = ReplayBase {
            hub: self.clone(),
            socket: socket.clone(),
            room: room.to_owned(),
            members,
            ack,
        };
        let after = since.as_ref().map_or(0, |s| s.offset);
        let limit = if since.is_some() { REPLAY_PAGE } else { 0 };
        if let Some(page) = self.read_history_now(room, after, limit) {
            // One node: the first page is at hand, and a replay that fits
            // in it is answered before the connection's next message.
            let mut replay = Replay::new(base, since.as_ref(), &page);
            replay.place();
            match replay.send_page(page) {
                Next::Switch => match replay.switch() {
                    Next::Done => {}
                    next => {
                        tokio::spawn(replay.run(next));
                    }
                },
                next => {
                    tokio::spawn(replay.run(next));
                }
            }
            return Ok(());
        }
        let read = self.read_history(room, after, limit);
        tokio::spawn(async move {
            match read.await {
                Ok(page) => {
                    let mut replay = Replay::new(base, since.as_ref(), &page);
                    replay.place();
                    let next = replay.send_page(page);
                    replay.run(next).await;
                }
                Err(error) => base.abandon(error),
            }
        });
        Ok(())
    }

    /// The feed of a room with history on this node, made if it has none.
    pub(crate) fn feed(&self, room: &str) -> std::sync::Arc<std::sync::Mutex<Feed>> {
        let cluster = self.is_clustered();
        self.inner.feeds.get_or_make(room, || {
            if cluster {
                Feed::cluster()
            } else {
                Feed::memory()
            }
        })
    }

    /// Answers a `history` request, from a task when the store is remote.
    pub(crate) fn history_request(
        &self,
        socket: &Socket,
        room: String,
        after: u64,
        limit: usize,
        ack: Option<Value>,
    ) {
        let read = self.read_history(&room, after, limit.min(MAX_HISTORY_PAGE));
        let (hub, socket) = (self.clone(), socket.clone());
        tokio::spawn(async move {
            let answer = read.await.map(|page| page_json(&page)).map_err(unavailable);
            hub.answer(&socket, ack.as_ref(), answer);
        });
    }

    /// Records a connection's cumulative acknowledgements (`received`).
    pub(crate) fn acknowledge(&self, socket: &Socket, offsets: &[(String, u64)]) {
        for (room, offset) in offsets {
            if let Some(feed) = self.inner.feeds.get(room) {
                lock(&feed).acknowledge(socket.id(), *offset);
            }
        }
    }
}

/// A page as the `history` ack shows it: cut after [`MAX_HISTORY_BYTES`]
/// of messages (one at least), so that one answer stays a message.
fn page_json(page: &Page) -> Value {
    let mut bytes = 0;
    let messages: Vec<Value> = page
        .messages
        .iter()
        .take_while(|(_, json)| {
            let first = bytes == 0;
            bytes += json.len();
            first || bytes <= MAX_HISTORY_BYTES
        })
        .filter_map(|(_, json)| serde_json::from_slice(json).ok())
        .collect();
    json!({
        "epoch": page.epoch,
        "offset": page.latest,
        "oldest": page.oldest,
        "messages": messages,
    })
}

pub(crate) fn unavailable(error: HistoryUnavailable) -> RequestError {
    RequestError::new("history_unavailable", error.0)
}

/// Whether a page read after `since` holds everything the client missed.
fn recoverable(since: &Since, page: &Page) -> bool {
    since.epoch == page.epoch
        && since.offset <= page.latest
        && (since.offset == page.latest || (page.oldest != 0 && page.oldest <= since.offset + 1))
}

/// One member's replay, from its join to its switch to live delivery.
struct Replay {
    hub: Hub,
    socket: Socket,
    room: String,
    members: Value,
    ack: Option<Value>,
    /// Whether `since` could be recovered (`None`: a join without it).
    recovered: Option<bool>,
    /// Where the connection's acknowledgements start.
    acked: u64,
    /// The epoch the first page had.
    epoch: String,
    /// The newest offset the first page had.
    latest: u64,
    /// The last offset sent.
    position: u64,
    replayed: u64,
}

/// What a replay does next.
enum Next {
    /// Read the page after `position`.
    Read,
    /// Switch to live delivery.
    Switch,
    /// Nothing: it switched, or the member is gone.
    Done,
}

impl Replay {
    /// Starts with the first page read after `since` (or the room's
    /// position, for a join without it).
    fn new(base: ReplayBase, since: Option<&Since>, page: &Page) -> Replay {
        let recovered = since.map(|since| recoverable(since, page));
        let position = match (since, recovered) {
            (Some(since), Some(true)) => since.offset,
            _ => page.latest,
        };
        Replay {
            hub: base.hub,
            socket: base.socket,
            room: base.room,
            members: base.members,
            ack: base.ack,
            recovered,
            acked: position,
            epoch: page.epoch.clone(),
            latest: page.latest,
            position,
            replayed: 0,
        }
    }

    /// Places the gated member at the replay's start: what it acknowledges
    /// and is sent counts from there, not from the feed's last message.
    /// A cluster feed that has seen no message yet starts from the page's
    /// epoch and newest offset.
    fn place(&self) {
        let Some(feed) = self.hub.inner.feeds.get(&self.room) else {
            return;
        };
        let mut feed = lock(&feed);
        if feed.epoch.is_empty() && !self.epoch.is_empty() {
            feed.epoch = self.epoch.clone();
            feed.last = feed.last.max(self.latest);
        }
        if let Some(member) = feed.members.get_mut(self.socket.id()) {
            member.last = self.position;
            member.acked = self.acked;
        }
    }

    /// Sends a page's messages after `position`; whether more may follow.
    fn send_page(&mut self, page: Page) -> Next {
        let full = page.messages.len() >= REPLAY_PAGE;
        if self.recovered == Some(false) {
            return Next::Switch;
        }
        for (offset, json) in page.messages {
            if offset > self.position {
                if self.crowded() {
                    return Next::Read; // the rest once the queue drains
                }
                self.send(&json);
                self.position = offset;
                self.replayed += 1;
            }
        }
        if full {
            Next::Read
        } else {
            Next::Switch
        }
    }

    /// Under the feed's lock, so that nothing is delivered between what the
    /// gate kept and the ack: sends what the gate kept, lifts it and
    /// answers. `Read` when the gate overflowed (what it dropped is read
    /// from the store).
    fn switch(&mut self) -> Next {
        let Some(feed) = self.hub.inner.feeds.get(&self.room) else {
            return Next::Done; // it left, and the room's feed went
        };
        let mut feed = lock(&feed);
        let epoch = if feed.epoch.is_empty() {
            self.epoch.clone()
        } else {
            feed.epoch.clone()
        };
        let Some(member) = feed.members.get_mut(self.socket.id()) else {
            return Next::Done; // it left, or closed
        };
        let gate = member.gate.take().unwrap_or_default();
        if gate.overflowed || (!gate.kept.is_empty() && self.crowded()) {
            member.gate = Some(Gate::default());
            return Next::Read;
        }
        for (offset, json) in gate.kept {
            if offset > self.position {
                self.send(&json);
                self.position = offset;
                self.replayed += 1;
            }
        }
        member.last = self.position;
        member.acked = self.acked;
        let mut data = json!({
            "room": self.room,
            "members": self.members,
            "epoch": epoch,
            "offset": self.position,
        });
        if let Some(recovered) = self.recovered {
            data["recovered"] = json!(recovered);
            data["replayed"] = json!(self.replayed);
        }
        self.hub.answer(&self.socket, self.ack.as_ref(), Ok(data));
        Next::Done
    }

    /// Goes on from `next` until the switch, reading pages as it needs them.
    async fn run(mut self, mut next: Next) {
        loop {
            next = match next {
                Next::Done => return,
                Next::Switch => self.switch(),
                Next::Read => {
                    if !self.pace().await {
                        return;
                    }
                    let read = self
                        .hub
                        .read_history(&self.room, self.position, REPLAY_PAGE);
                    match read.await {
                        Ok(page) => self.send_page(page),
                        Err(error) => return self.abandon(error),
                    }
                }
            }
        }
    }

    /// Whether the member's queue is more than half full (in messages or
    /// bytes): a replay sends no more until it drains.
    fn crowded(&self) -> bool {
        let config = &self.hub.inner.config;
        self.socket.queued() > config.queue_len / 2
            || self.socket.queued_bytes() > config.max_pending_send_bytes / 2
    }

    /// Sends one stored message to the member, in its encoding.
    fn send(&self, json: &bytes::Bytes) {
        let Ok(raw) = serde_json::from_slice::<&serde_json::value::RawValue>(json) else {
            return;
        };
        let prepared = Prepared::new(crate::clustered::RawJson(raw));
        let _ = self
            .socket
            .send(prepared.frame(self.socket.encoding()), None);
    }

    /// Waits until the member's queue is at most half full and, with
    /// `?acks=1`, it has acknowledged all but half its window; false when
    /// it is gone.
    async fn pace(&self) -> bool {
        let position = self.position;
        let config = &self.hub.inner.config;
        loop {
            if !self.socket.outbox().is_open() {
                return false;
            }
            let acked_enough = {
                let Some(feed) = self.hub.inner.feeds.get(&self.room) else {
                    return false;
                };
                let mut feed = lock(&feed);
                let Some(member) = feed.members.get_mut(self.socket.id()) else {
                    return false;
                };
                member.last = position;
                let unacked = position.saturating_sub(member.acked);
                !member.acks || unacked <= (config.history_unacked / 2) as u64
            };
            if acked_enough && !self.crowded() {
                return true;
            }
            tokio::time::sleep(PACE).await;
        }
    }

    fn abandon(self, error: HistoryUnavailable) {
        ReplayBase {
            hub: self.hub,
            socket: self.socket,
            room: self.room,
            members: self.members,
            ack: self.ack,
        }
        .abandon(error);
    }
}

/// What a replay starts from: the member, its room and request.
struct ReplayBase {
    hub: Hub,
    socket: Socket,
    room: String,
    members: Value,
    ack: Option<Value>,
}

impl ReplayBase {
    /// The store could not be read: the join is undone and refused.
    fn abandon(self, error: HistoryUnavailable) {
        let _ = self.hub.leave(&self.socket, &self.room);
        self.hub
            .answer(&self.socket, self.ack.as_ref(), Err(unavailable(error)));
    }
}
