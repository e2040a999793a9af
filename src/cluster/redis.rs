//! The Redis adapter: what the hub calls, and the writer that sends it;
//! and [`RedisLink`], this node's link to Redis, which they and the tasks
//! of `sync` use.
//!
//! [`RedisAdapter`] is the hub's [`ClusterAdapter`]. It never waits: a
//! message becomes its envelope and goes into a queue bounded in items and
//! bytes (a message that finds it full is dropped and counted); a presence
//! change updates the mirror of this node's connections, takes the next
//! sequence number and is queued with it, in one critical section so that
//! the queue holds changes in sequence order.
//!
//! The writer task empties the queue in order, in pipelined batches over one
//! `ConnectionManager`: messages are `PUBLISH`ed to the inbox of each node
//! they are for (or once to the shared channel), presence changes are
//! written to `P:users:N` with the sequence number and announced on
//! `P:presence`. When Redis may have lost this node's state (it came back
//! empty, a write failed, the queue overflowed), the writer rewrites the
//! whole mirror at once and announces `sync`; queued changes it covers are
//! then skipped.
//!
//! While the link is down (see [`RedisLink::is_up`]) messages are refused at
//! once and counted as failed: local delivery never waits for Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use switchboard_hub::cluster::NodeId;
use switchboard_hub::{
    Append, ClusterAdapter, ClusterMessage, ConnId, HistoryRule, HistoryUnavailable, PageFuture,
    PresenceChange, Route, User,
};
use tokio::sync::{mpsc, oneshot, Notify, OnceCell};

use super::history;
use super::settings::{Channels, ClusterSettings};
use super::wire::{self, Entry, Envelope, Event, Keys, SEQ_FIELD};

/// Items waiting for the writer; past this, messages are dropped and
/// presence is rewritten whole.
const QUEUE_LEN: usize = 8192;
/// Bytes of messages waiting for the writer; past this, messages are dropped
/// (a stalled Redis must not make the node grow without bound).
const QUEUE_BYTES: usize = 64 << 20;
/// Most items in one pipeline.
const BATCH: usize = 512;
/// Pause between attempts to rewrite this node's state while Redis is away.
const RETRY: Duration = Duration::from_millis(250);
/// How long one connection attempt or one reply may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of the cluster link, for `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// Messages written to Redis for other nodes.
    pub published: AtomicU64,
    /// Messages from other nodes delivered here.
    pub received: AtomicU64,
    /// Messages that could not be sent (link down, queue full, write failed).
    pub failed: AtomicU64,
    /// Presence events applied from other nodes.
    pub presence_received: AtomicU64,
    /// Times the pub/sub connection was (re)established.
    pub connects: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// This node's connections as the other nodes should see them.
#[derive(Default)]
struct Local {
    users: HashMap<ConnId, User>,
    /// The sequence number of the last change.
    seq: u64,
}

/// What the writer sends, in this order.
pub enum Outbound {
    Message {
        nodes: Vec<NodeId>,
        direct: bool,
        body: Bytes,
    },
    Presence {
        seq: u64,
        change: PresenceChange,
    },
    /// Store a message in its room's history and send it to every node.
    Append(Box<Append>),
    /// Announce `bye` and remove this node's keys, then answer.
    Leave(oneshot::Sender<()>),
}

/// This node's link to Redis, used by the adapter, the writer, and the
/// subscriber and heartbeat tasks: the key names, the connections, the
/// writer's queue and the mirror of this node's connections, the counters,
/// and whether the link is up.
pub struct RedisLink {
    keys: Keys,
    settings: ClusterSettings,
    client: redis::Client,
    commands: OnceCell<ConnectionManager>,
    queue: mpsc::Sender<Outbound>,
    /// Bytes of the messages in `queue`.
    queued_bytes: AtomicUsize,
    local: Mutex<Local>,
    counters: Counters,
    pubsub_up: AtomicBool,
    commands_up: AtomicBool,
    /// This node's state in Redis must be written whole.
    rewrite: AtomicBool,
    leaving: AtomicBool,
    wake_writer: Notify,
}

impl RedisLink {
    pub fn new(
        keys: Keys,
        settings: ClusterSettings,
        client: redis::Client,
    ) -> (Arc<RedisLink>, mpsc::Receiver<Outbound>) {
        let (queue, rx) = mpsc::channel(QUEUE_LEN);
        let link = RedisLink {
            keys,
            settings,
            client,
            commands: OnceCell::new(),
            queue,
            queued_bytes: AtomicUsize::new(0),
            local: Mutex::new(Local::default()),
            counters: Counters::default(),
            pubsub_up: AtomicBool::new(false),
            commands_up: AtomicBool::new(false),
            rewrite: AtomicBool::new(true),
            leaving: AtomicBool::new(false),
            wake_writer: Notify::new(),
        };
        (Arc::new(link), rx)
    }

    /// The names of this cluster's keys and channels, and this node's id.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether the pub/sub connection is subscribed.
    pub fn is_subscribed(&self) -> bool {
        self.pubsub_up.load(Ordering::Acquire)
    }

    /// Notes that the pub/sub connection was subscribed, or lost.
    pub fn set_subscribed(&self, subscribed: bool) {
        self.pubsub_up.store(subscribed, Ordering::Release);
    }

    /// Whether this node is leaving the cluster (the tasks then stop).
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    /// Whether messages can go to the other nodes: subscribed, the last
    /// command succeeded, and this node's state is written.
    pub fn is_up(&self) -> bool {
        self.pubsub_up.load(Ordering::Acquire)
            && self.commands_up.load(Ordering::Acquire)
            && !self.leaving.load(Ordering::Acquire)
    }

    /// The command connection, opened on first use; it reconnects by itself
    /// after an I/O error (on the next command).
    pub async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let open = || async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT)
                // One attempt per command: the writer and the heartbeat
                // retry on their own schedule, and fail fast meanwhile.
                .set_number_of_retries(0);
            ConnectionManager::new_with_config(self.client.clone(), config).await
        };
        self.commands.get_or_try_init(open).await.cloned()
    }

    /// A new pub/sub connection (within `CONNECT_TIMEOUT`).
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub());
        connect.await.map_err(|_| {
            redis::RedisError::from((redis::ErrorKind::IoError, "connection timed out"))
        })?
    }

    /// Notes the outcome of a command; after a failure the writer rewrites
    /// this node's state (retrying until Redis answers), which brings the
    /// link up again.
    pub fn note<T>(&self, result: &redis::RedisResult<T>, what: &str) {
        if let Err(error) = result {
            self.mark_down(error, what);
            self.wake_writer.notify_one();
        }
    }

    fn mark_down(&self, error: &redis::RedisError, what: &str) {
        self.rewrite.store(true, Ordering::Release);
        if self.commands_up.swap(false, Ordering::AcqRel) {
            tracing::warn!(%error, "cluster: {what} failed; cross-node delivery paused");
        }
    }

    /// Asks the writer to write this node's state whole.
    pub fn request_rewrite(&self) {
        self.rewrite.store(true, Ordering::Release);
        self.wake_writer.notify_one();
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the writer's `Leave` and waits for it (bounded by `timeout`).
    pub async fn leave(&self, timeout: Duration) {
        self.leaving.store(true, Ordering::Release);
        let (done, wait) = oneshot::channel();
        let queued = tokio::time::timeout(timeout, self.queue.send(Outbound::Leave(done)));
        if matches!(queued.await, Ok(Ok(()))) {
            let _ = tokio::time::timeout(timeout, wait).await;
        }
    }
}

/// The hub's side of the link.
pub struct RedisAdapter {
    pub link: Arc<RedisLink>,
}

impl ClusterAdapter for RedisAdapter {
    fn send(&self, message: &ClusterMessage<'_>) -> bool {
        let link = &self.link;
        if !link.is_up() {
            Counters::add(&link.counters.failed, 1);
            return false;
        }
        let body = Envelope {
            origin: link.keys.node(),
            route: message.route,
            payload: message.payload,
        }
        .to_bytes();
        let len = body.len();
        let room = link.queued_bytes.fetch_add(len, Ordering::AcqRel) + len <= QUEUE_BYTES;
        let item = Outbound::Message {
            nodes: message.nodes.to_vec(),
            direct: matches!(message.route, Route::Direct { .. }),
            body,
        };
        let queued = room && link.queue.try_send(item).is_ok();
        if !queued {
            link.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            Counters::add(&link.counters.failed, 1);
        }
        queued
    }

    fn history_append(&self, append: Box<Append>) -> Result<(), Box<Append>> {
        let link = &self.link;
        if !link.is_up() {
            return Err(append);
        }
        let len = append.head.len();
        if link.queued_bytes.fetch_add(len, Ordering::AcqRel) + len > QUEUE_BYTES {
            link.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(append);
        }
        link.queue
            .try_send(Outbound::Append(append))
            .map_err(|error| {
                link.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                match error {
                    mpsc::error::TrySendError::Full(Outbound::Append(append))
                    | mpsc::error::TrySendError::Closed(Outbound::Append(append)) => append,
                    _ => unreachable!("the item sent was an append"),
                }
            })
    }

    fn history_read(&self, room: &str, rule: &HistoryRule, after: u64, limit: usize) -> PageFuture {
        let (link, room, rule) = (self.link.clone(), room.to_owned(), rule.clone());
        Box::pin(async move {
            let conn = link
                .connection()
                .await
                .map_err(|e| HistoryUnavailable(e.to_string()))?;
            history::read(conn, link.keys(), &room, &rule, after, limit).await
        })
    }

    fn presence(&self, change: PresenceChange) {
        let link = &self.link;
        let mut local = link.local();
        match &change {
            PresenceChange::Update(user) => {
                local.users.insert(user.id.clone(), user.clone());
            }
            PresenceChange::Remove(id) => {
                local.users.remove(id);
            }
        }
        local.seq += 1;
        let seq = local.seq;
        // Queued under the lock, so that the queue is in sequence order.
        let queued = link.is_up()
            && link
                .queue
                .try_send(Outbound::Presence { seq, change })
                .is_ok();
        drop(local);
        if !queued {
            // The rewrite, once Redis answers, carries this change.
            link.request_rewrite();
        }
    }
}

/// Sends what the adapter queued, in order; ends when the queue closes or
/// after `Leave`.
pub async fn write_loop(link: Arc<RedisLink>, mut rx: mpsc::Receiver<Outbound>) {
    let mut batch = Vec::with_capacity(BATCH);
    // The sequence number Redis has for this node: queued changes at or
    // below it are in a rewrite already.
    let mut written = 0;
    let mut inboxes: HashMap<NodeId, String> = HashMap::new();
    loop {
        if link.rewrite.load(Ordering::Acquire) {
            match rewrite(&link).await {
                Ok(seq) => written = seq,
                Err(()) => {
                    // Messages queued meanwhile are lost (at most once);
                    // presence is in the next rewrite.
                    drop_queued(&link, &mut rx, &mut batch);
                    if link.leaving.load(Ordering::Acquire) {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = link.wake_writer.notified() => {}
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => if received == 0 { return },
            _ = link.wake_writer.notified() => continue,
        }
        let mut pipe = redis::pipe();
        let mut messages = 0;
        let mut leave = None;
        let mut appends = Vec::new();
        for item in batch.drain(..) {
            match item {
                Outbound::Message {
                    nodes,
                    direct,
                    body,
                } => {
                    messages += 1;
                    link.queued_bytes.fetch_sub(body.len(), Ordering::AcqRel);
                    if link.settings.channels == Channels::Shared && !direct {
                        pipe.cmd("PUBLISH")
                            .arg(link.keys.all())
                            .arg(&body[..])
                            .ignore();
                        continue;
                    }
                    for node in nodes {
                        let inbox = inboxes
                            .entry(node)
                            .or_insert_with_key(|node| link.keys.inbox(node));
                        pipe.cmd("PUBLISH").arg(&*inbox).arg(&body[..]).ignore();
                    }
                }
                Outbound::Presence { seq, change } if seq > written => {
                    written = seq;
                    write_presence(&link, &mut pipe, seq, &change);
                }
                Outbound::Presence { .. } => {}
                Outbound::Append(append) => {
                    link.queued_bytes
                        .fetch_sub(append.head.len(), Ordering::AcqRel);
                    pipe.add_command(history::append_command(link.keys(), &append));
                    appends.push(append.done);
                }
                Outbound::Leave(done) => leave = Some(done),
            }
        }
        let result = match link.connection().await {
            Ok(mut conn) => pipe.query_async::<Vec<redis::Value>>(&mut conn).await,
            Err(error) => Err(error),
        };
        link.note(&result, "publishing");
        answer_appends(appends, &result);
        let result = result.map(drop);
        let counter = match result {
            Ok(()) => &link.counters.published,
            Err(_) => &link.counters.failed,
        };
        Counters::add(counter, messages);
        if let Some(done) = leave {
            say_bye(&link).await;
            let _ = done.send(());
            return;
        }
    }
}

/// Tells each append of a pipeline what became of it: its script's answer,
/// in order, or the pipeline's failure.
fn answer_appends(
    appends: Vec<switchboard_hub::history::StoredCallback>,
    result: &redis::RedisResult<Vec<redis::Value>>,
) {
    match result {
        Ok(values) => {
            let mut values = values.iter();
            for done in appends {
                done(match values.next() {
                    Some(value) => history::stored(value),
                    None => Err(HistoryUnavailable("no answer from Redis".into())),
                });
            }
        }
        Err(error) => {
            for done in appends {
                done(Err(HistoryUnavailable(error.to_string())));
            }
        }
    }
}

fn drop_queued(link: &RedisLink, rx: &mut mpsc::Receiver<Outbound>, batch: &mut Vec<Outbound>) {
    while let Ok(item) = rx.try_recv() {
        batch.push(item);
    }
    for item in batch.drain(..) {
        match item {
            Outbound::Message { body, .. } => {
                link.queued_bytes.fetch_sub(body.len(), Ordering::AcqRel);
                Counters::add(&link.counters.failed, 1);
            }
            Outbound::Presence { .. } => {}
            Outbound::Append(append) => {
                link.queued_bytes
                    .fetch_sub(append.head.len(), Ordering::AcqRel);
                (append.done)(Err(HistoryUnavailable("Redis is unreachable".into())));
            }
            Outbound::Leave(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Adds one presence change to a pipeline: the entry and the sequence
/// number (in one `HSET`, or after the `HDEL`, so that a snapshot never
/// claims a number whose change it lacks), then the event.
fn write_presence(link: &RedisLink, pipe: &mut redis::Pipeline, seq: u64, change: &PresenceChange) {
    let keys = &link.keys;
    let users = keys.users(keys.node());
    let event = match change {
        PresenceChange::Update(user) => {
            pipe.cmd("HSET")
                .arg(&users)
                .arg(user.id.as_str())
                .arg(Entry::of(user))
                .arg(SEQ_FIELD)
                .arg(seq)
                .ignore();
            Event::set(keys.node(), seq, user)
        }
        PresenceChange::Remove(id) => {
            pipe.cmd("HDEL").arg(&users).arg(id.as_str()).ignore();
            pipe.cmd("HSET")
                .arg(&users)
                .arg(SEQ_FIELD)
                .arg(seq)
                .ignore();
            Event::Del {
                node: keys.node().to_owned(),
                seq,
                id: id.as_str().to_owned(),
            }
        }
    };
    pipe.cmd("PUBLISH")
        .arg(keys.presence())
        .arg(event.to_json())
        .ignore();
}

/// Writes this node's whole state at once (MULTI/EXEC): its users with
/// the current sequence number, its heartbeat, its membership of
/// `P:nodes`; then announces `sync`. Returns the sequence number written.
async fn rewrite(link: &RedisLink) -> Result<u64, ()> {
    link.rewrite.store(false, Ordering::Release);
    let keys = &link.keys;
    let node = keys.node();
    let (seq, entries) = {
        let local = link.local();
        let entries: Vec<(String, String)> = local
            .users
            .values()
            .map(|user| (user.id.as_str().to_owned(), Entry::of(user)))
            .collect();
        (local.seq, entries)
    };
    let ttl = link.settings.ttl_millis();
    let users = keys.users(node);
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("DEL")
        .arg(&users)
        .ignore()
        .cmd("HSET")
        .arg(&users)
        .arg(SEQ_FIELD)
        .arg(seq)
        .arg(&entries)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&users)
        .arg(ttl)
        .ignore()
        .cmd("SET")
        .arg(keys.heartbeat(node))
        .arg(wire::now_millis())
        .arg("PX")
        .arg(ttl)
        .ignore()
        .cmd("SADD")
        .arg(keys.nodes())
        .arg(node)
        .ignore()
        .cmd("PUBLISH")
        .arg(keys.presence())
        .arg(
            Event::Sync {
                node: node.to_owned(),
                seq,
            }
            .to_json(),
        )
        .ignore();
    let result = match link.connection().await {
        Ok(mut conn) => pipe.query_async::<()>(&mut conn).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => {
            if !link.commands_up.swap(true, Ordering::AcqRel) {
                tracing::info!(node, users = entries.len(), "cluster: presence written");
            }
            Ok(seq)
        }
        Err(error) => {
            // Not `note`: the writer paces its own retries.
            link.mark_down(&error, "writing this node's presence");
            Err(())
        }
    }
}

/// Announces that this node leaves and removes its keys.
async fn say_bye(link: &RedisLink) {
    let keys = &link.keys;
    let node = keys.node();
    let mut pipe = redis::pipe();
    pipe.cmd("PUBLISH")
        .arg(keys.presence())
        .arg(
            Event::Bye {
                node: node.to_owned(),
            }
            .to_json(),
        )
        .ignore()
        .cmd("DEL")
        .arg(keys.heartbeat(node))
        .arg(keys.users(node))
        .ignore()
        .cmd("SREM")
        .arg(keys.nodes())
        .arg(node)
        .ignore();
    if let Ok(mut conn) = link.connection().await {
        let _ = pipe.query_async::<()>(&mut conn).await;
    }
}
