//! What this node learns from the others: the subscriber and heartbeat
//! tasks, and the sequence numbers that keep the hub's view of each node
//! in order.
//!
//! Each node numbers its presence writes. Its events arrive in order on
//! `P:presence`; a snapshot of its hash (`HGETALL P:users:N`) carries the
//! number of the last write it contains. The view applies an event only if
//! its number is above the last one applied (a gap means events were
//! missed: the node is resynced), and a snapshot only if its number is not
//! below (an older snapshot would undo newer events). Events carry a
//! connection's whole state, so applying one twice is harmless.
//!
//! The subscriber holds the pub/sub connection (this node's inbox, the
//! presence channel, and the shared channel when used). After any failure
//! it reconnects with backoff and subscribes again; Redis may have
//! restarted empty, so every (re)connection also makes this node rewrite
//! its state and resync every other node.
//!
//! The heartbeat runs every `heartbeat` seconds: it refreshes this node's
//! keys (if its heartbeat key was gone, Redis lost its state: rewrite),
//! reads which nodes are alive, drops the nodes whose heartbeat expired
//! (after a grace of one TTL from connecting, to let every node register
//! again after a Redis restart), and reads the users of nodes that need a
//! resync (new ones, gaps, `sync` events, and all of them every
//! `FULL_RESYNC_EVERY` beats).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use switchboard_hub::{ConnId, Hub, User};
use tokio::sync::Notify;

use super::history;
use super::redis::{Counters, RedisLink};
use super::settings::Channels;
use super::wire::{self, Event};

/// Every this many heartbeats, every node is read again in full.
const FULL_RESYNC_EVERY: u64 = 10;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What this node has applied of each other node.
#[derive(Default)]
struct RemoteView {
    nodes: HashMap<String, NodeView>,
    /// Nodes that said `bye` or were found dead: their late events are
    /// ignored until they register again (`sync`).
    departed: HashSet<String>,
}

struct NodeView {
    /// The last sequence number applied.
    seq: u64,
    /// Whether a snapshot was applied since the last gap or `sync`.
    synced: bool,
}

impl RemoteView {
    fn view(&mut self, node: &str) -> &mut NodeView {
        self.nodes.entry(node.to_owned()).or_insert(NodeView {
            seq: 0,
            synced: false,
        })
    }
}

/// The other nodes as this node knows them, and the link it learns them
/// through: what the subscriber and heartbeat tasks share.
pub struct Peers {
    link: Arc<RedisLink>,
    /// `P:history`, compared with every message's channel.
    history_channel: String,
    remote: Mutex<RemoteView>,
    /// Wakes the heartbeat early: a new node, a gap, a reconnection.
    wake_heartbeat: Notify,
    /// When the pub/sub connection last came up.
    connected_at: Mutex<Option<Instant>>,
}

impl Peers {
    pub fn new(link: Arc<RedisLink>) -> Peers {
        Peers {
            history_channel: link.keys().history_channel(),
            link,
            remote: Mutex::new(RemoteView::default()),
            wake_heartbeat: Notify::new(),
            connected_at: Mutex::new(None),
        }
    }

    fn remote(&self) -> MutexGuard<'_, RemoteView> {
        self.remote.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one presence event from another node.
    fn apply_event(&self, hub: &Hub, event: Event) {
        let mut remote = self.remote();
        let (node, seq) = match &event {
            Event::Set { node, seq, .. } | Event::Del { node, seq, .. } => (node, *seq),
            Event::Sync { node, .. } => {
                if node != self.link.keys().node() {
                    remote.departed.remove(node);
                    remote.view(node).synced = false;
                    self.wake_heartbeat.notify_one();
                }
                return;
            }
            Event::Bye { node } => {
                if node != self.link.keys().node() {
                    remote.nodes.remove(node);
                    remote.departed.insert(node.clone());
                    hub.remote_drop(node);
                }
                return;
            }
        };
        if node == self.link.keys().node() || remote.departed.contains(node) {
            return;
        }
        let view = remote.view(node);
        if seq <= view.seq {
            return;
        }
        if seq != view.seq + 1 {
            view.synced = false;
            self.wake_heartbeat.notify_one();
        }
        view.seq = seq;
        Counters::add(&self.link.counters().presence_received, 1);
        match event {
            Event::Set {
                node,
                id,
                name,
                rooms,
                ..
            } => {
                let id = ConnId::from_string(id);
                hub.remote_update(&node, User { id, name, rooms });
            }
            Event::Del { node, id, .. } => hub.remote_remove(&node, &ConnId::from_string(id)),
            Event::Sync { .. } | Event::Bye { .. } => {}
        }
    }

    /// Applies a node's snapshot, unless events newer than it were applied.
    fn apply_snapshot(&self, hub: &Hub, node: &str, seq: u64, users: Vec<User>) {
        let mut remote = self.remote();
        remote.departed.remove(node);
        let view = remote.view(node);
        if seq < view.seq {
            return;
        }
        view.seq = seq;
        view.synced = true;
        hub.remote_sync(node, users);
    }

    /// Forgets a node that died.
    fn forget(&self, hub: &Hub, node: &str) {
        let mut remote = self.remote();
        remote.nodes.remove(node);
        remote.departed.insert(node.to_owned());
        hub.remote_drop(node);
    }

    /// Handles one pub/sub message.
    fn handle(&self, hub: &Hub, message: &redis::Msg) {
        let payload = message.get_payload_bytes();
        if message.get_channel_name() == self.history_channel {
            match history::decode(payload) {
                Some(m) => hub.deliver_history(
                    m.room,
                    m.epoch,
                    m.offset,
                    m.except,
                    Bytes::copy_from_slice(m.json),
                ),
                None => tracing::debug!("cluster: unreadable history message"),
            }
            return;
        }
        if message.get_channel_name() == self.link.keys().presence() {
            match serde_json::from_slice::<Event>(payload) {
                Ok(event) => self.apply_event(hub, event),
                Err(error) => tracing::debug!(%error, "cluster: unreadable presence event"),
            }
            return;
        }
        let Some(received) = wire::decode_message(payload) else {
            tracing::debug!("cluster: unreadable message");
            return;
        };
        if received.origin == self.link.keys().node() {
            return; // our own, on the shared channel
        }
        match hub.deliver_remote(received.route, received.payload) {
            Ok(_) => Counters::add(&self.link.counters().received, 1),
            Err(error) => tracing::debug!(%error, "cluster: message dropped"),
        }
    }

    async fn subscribe(&self) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
        let (mut sink, stream) = self.link.pubsub().await?.split();
        let keys = self.link.keys();
        let mut channels = vec![
            keys.inbox(keys.node()),
            keys.presence(),
            keys.history_channel(),
        ];
        if self.link.settings().channels == Channels::Shared {
            channels.push(keys.all());
        }
        sink.subscribe(&channels).await?;
        Ok((sink, stream))
    }

    /// Marks the link up after (re)subscribing: this node's state is
    /// written again and every other node read again.
    fn subscribed(&self) {
        *self.connected_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        for view in self.remote().nodes.values_mut() {
            view.synced = false;
        }
        Counters::add(&self.link.counters().connects, 1);
        self.link.set_subscribed(true);
        self.link.request_rewrite();
        self.wake_heartbeat.notify_one();
    }

    /// Reads messages until the connection fails (or stops answering pings).
    async fn listen(&self, hub: &Hub, mut sink: PubSubSink, mut stream: PubSubStream) {
        let heartbeat = self.link.settings().heartbeat;
        let mut ping = tokio::time::interval(heartbeat);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.handle(hub, &message),
                    None => return,
                },
                _ = ping.tick() => {
                    let pong = sink.ping::<redis::Value>();
                    if !matches!(tokio::time::timeout(heartbeat, pong).await, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }

    /// One heartbeat: refresh, liveness, resync.
    async fn beat(&self, hub: &Hub, full: bool) -> redis::RedisResult<()> {
        let mut conn = self.link.connection().await?;
        let keys = self.link.keys();
        let node = keys.node();
        let ttl = self.link.settings().ttl_millis();
        let (previous, members): (Option<String>, Vec<String>) = redis::pipe()
            .cmd("SET")
            .arg(keys.heartbeat(node))
            .arg(wire::now_millis())
            .arg("PX")
            .arg(ttl)
            .arg("GET")
            .cmd("PEXPIRE")
            .arg(keys.users(node))
            .arg(ttl)
            .ignore()
            .cmd("SMEMBERS")
            .arg(keys.nodes())
            .query_async(&mut conn)
            .await?;
        if previous.is_none() {
            // Expired, or Redis restarted empty: register again.
            self.link.request_rewrite();
        }
        if !self.link.is_subscribed() {
            return Ok(());
        }
        let mut others: HashSet<String> = members.into_iter().collect();
        others.extend(self.remote().nodes.keys().cloned());
        others.remove(node);
        if others.is_empty() {
            return Ok(());
        }
        let others: Vec<String> = others.into_iter().collect();
        let mut exists = redis::pipe();
        for other in &others {
            exists.cmd("EXISTS").arg(keys.heartbeat(other));
        }
        let alive: Vec<bool> = exists.query_async(&mut conn).await?;
        let connected_for = self
            .connected_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(Duration::ZERO, |at| at.elapsed());
        let mut wanted = Vec::new();
        for (other, alive) in others.into_iter().zip(alive) {
            if alive {
                let needs = {
                    let mut remote = self.remote();
                    remote.departed.contains(&other) || full || !remote.view(&other).synced
                };
                if needs {
                    wanted.push(other);
                }
            } else if connected_for >= self.link.settings().ttl {
                let _: redis::RedisResult<()> = redis::pipe()
                    .cmd("SREM")
                    .arg(keys.nodes())
                    .arg(&other)
                    .ignore()
                    .cmd("DEL")
                    .arg(keys.users(&other))
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                if self.remote().nodes.contains_key(&other) {
                    tracing::info!(node = %other, "cluster: node gone (heartbeat expired)");
                }
                self.forget(hub, &other);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut read = redis::pipe();
        for other in &wanted {
            read.cmd("HGETALL").arg(keys.users(other));
        }
        let snapshots: Vec<HashMap<String, Vec<u8>>> = read.query_async(&mut conn).await?;
        for (other, fields) in wanted.iter().zip(snapshots) {
            if let Some((seq, users)) = wire::parse_snapshot(fields.into_iter().collect()) {
                self.apply_snapshot(hub, other, seq, users);
            }
        }
        Ok(())
    }
}

/// Holds the pub/sub connection, reconnecting after failures.
pub async fn subscribe_loop(peers: Arc<Peers>, hub: Hub) {
    let link = &peers.link;
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u32;
    while !link.is_leaving() {
        match peers.subscribe().await {
            Ok((sink, stream)) => {
                backoff = MIN_BACKOFF;
                if failures > 0 || Counters::get(&link.counters().connects) > 0 {
                    tracing::warn!("cluster: reconnected to Redis");
                }
                failures = 0;
                peers.subscribed();
                // What this node missed while it was not subscribed.
                hub.resync_history();
                peers.listen(&hub, sink, stream).await;
                link.set_subscribed(false);
                if !link.is_leaving() {
                    tracing::warn!("cluster: lost the Redis pub/sub connection; reconnecting");
                }
            }
            Err(error) => {
                if failures == 0 {
                    tracing::warn!(%error, "cluster: cannot reach Redis; retrying");
                }
                failures += 1;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Beats every `heartbeat`, or sooner when woken (a new node, a gap).
pub async fn heartbeat_loop(peers: Arc<Peers>, hub: Hub) {
    let link = &peers.link;
    let mut until_full = FULL_RESYNC_EVERY;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(link.settings().heartbeat) => {}
            _ = peers.wake_heartbeat.notified() => {}
        }
        if link.is_leaving() {
            return;
        }
        until_full -= 1;
        let full = until_full == 0;
        if full {
            until_full = FULL_RESYNC_EVERY;
        }
        let result = peers.beat(&hub, full).await;
        link.note(&result, "heartbeat");
    }
}
