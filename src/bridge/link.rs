//! One open endpoint ([`Link`]), its counters, its filter, and what its
//! task is handed: the queue of an output, the [`Inbox`] of an input; and
//! [`Links`], the open endpoints, through which messages are routed to the
//! outputs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use serde_json::Value;
use switchboard_hub::pattern::{self, Pattern};
use switchboard_hub::Hub;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::kind::{Family, Kind};
use super::osc_codec;

/// A bad input is logged at `warn` the first time and then once per this
/// many; the others go to `debug`.
const WARN_EVERY: u64 = 1000;

/// Where the bridges' own events are published, as address messages:
/// `opened`, `closed`, `connected` and `disconnected` under it.
pub const EVENTS_PREFIX: &str = "/switchboard/bridges";

/// Counters of one endpoint.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received and published into the hub.
    pub messages_in: AtomicU64,
    /// Messages handed to the socket.
    pub messages_out: AtomicU64,
    /// Packets or frames that could not be read as a message.
    pub malformed: AtomicU64,
    /// Sends the socket refused (unreachable peer, message too large, ...).
    pub send_errors: AtomicU64,
    /// Messages dropped because the output queue was full or no peer was
    /// connected.
    pub dropped: AtomicU64,
}

impl Stats {
    pub(super) fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Which addresses an output sends: everything, or any of some patterns.
#[derive(Debug, Default)]
pub(super) struct Filter {
    everything: bool,
    patterns: Vec<Pattern>,
}

impl Filter {
    pub(super) fn add(&mut self, pattern: Option<Pattern>) {
        match pattern {
            None => self.everything = true,
            Some(pattern) if !self.patterns.contains(&pattern) => self.patterns.push(pattern),
            Some(_) => {}
        }
    }

    pub(super) fn matches(&self, path: &str) -> bool {
        self.everything || self.patterns.iter().any(|p| p.matches(path))
    }

    /// The patterns as text; `None` when everything is sent.
    fn describe(&self) -> Value {
        if self.everything {
            Value::Null
        } else {
            self.patterns.iter().map(Pattern::as_str).collect()
        }
    }
}

/// The key a ZeroMQ output writes the values under: `values` (ours) or
/// `value` (IS2's ZeroMQ output writes `{"path", "value"}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ValuesKey {
    /// `{"path":...,"values":[...]}`.
    #[default]
    Values,
    /// `{"path":...,"value":[...]}`.
    Value,
}

impl ValuesKey {
    /// Parses the `key` option of an output.
    pub fn parse(text: &str) -> Result<ValuesKey, String> {
        match text {
            "values" => Ok(ValuesKey::Values),
            "value" => Ok(ValuesKey::Value),
            other => Err(format!("key is \"values\" or \"value\", not {other:?}")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ValuesKey::Values => "values",
            ValuesKey::Value => "value",
        }
    }
}

/// A message on its way out, encoded at most once per format however many
/// outputs send it.
pub(crate) struct Outbound {
    pub path: String,
    pub values: Vec<Value>,
    json: OnceLock<Bytes>,
    json_value: OnceLock<Bytes>,
    osc: OnceLock<Result<Bytes, String>>,
}

impl Outbound {
    pub(super) fn new(path: &str, values: &[Value]) -> Outbound {
        Outbound {
            path: path.to_owned(),
            values: values.to_vec(),
            json: OnceLock::new(),
            json_value: OnceLock::new(),
            osc: OnceLock::new(),
        }
    }

    /// `{"path":...,"values":[...]}`, or `"value"` for `"values"`.
    pub fn json_with(&self, key: ValuesKey) -> &Bytes {
        let cell = match key {
            ValuesKey::Values => &self.json,
            ValuesKey::Value => &self.json_value,
        };
        cell.get_or_init(|| {
            let mut message = serde_json::Map::new();
            message.insert("path".into(), Value::String(self.path.clone()));
            message.insert(key.name().into(), Value::Array(self.values.clone()));
            Bytes::from(Value::Object(message).to_string())
        })
    }

    /// One OSC message packet, or why it cannot be one.
    pub fn osc(&self) -> &Result<Bytes, String> {
        self.osc
            .get_or_init(|| osc_codec::encode(&self.path, &self.values).map(Bytes::from))
    }
}

/// One open endpoint.
pub struct Link {
    /// `KIND:ENDPOINT` with the port resolved, or the name it was given.
    pub(super) id: String,
    pub(super) kind: Kind,
    /// The registry key: the endpoint as configured, normalized.
    pub(super) endpoint: String,
    /// What the socket is bound or connected to (the port resolved).
    pub(super) local: String,
    pub(super) stats: Stats,
    pub(super) filter: RwLock<Filter>,
    /// A ZeroMQ output writes the values under `value` (IS2's key), not `values`.
    pub(super) values_key: AtomicBool,
    pub(super) queue: Option<mpsc::Sender<Arc<Outbound>>>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("local", &self.local)
            .finish()
    }
}

impl Link {
    /// What the endpoint is known by in `/api/bridges` and in its events.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The kind of endpoint.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The endpoint as configured.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The address the socket is bound or connected to.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// Its counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Its id, kind, endpoint and local address, as JSON (the value of its
    /// `opened` and `closed` events).
    pub fn summary(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "kind": self.kind.name(),
            "endpoint": self.endpoint,
            "local": self.local,
        })
    }

    /// [`Link::summary`] with its filter and counters (`GET /api/bridges`).
    pub fn describe(&self) -> Value {
        let mut value = self.summary();
        let stats = &self.stats;
        if self.kind.is_output() {
            value["patterns"] = self
                .filter
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .describe();
        }
        value["messages_in"] = Stats::get(&stats.messages_in).into();
        value["messages_out"] = Stats::get(&stats.messages_out).into();
        value["malformed"] = Stats::get(&stats.malformed).into();
        value["send_errors"] = Stats::get(&stats.send_errors).into();
        value["dropped"] = Stats::get(&stats.dropped).into();
        value
    }

    /// The key a ZeroMQ output writes the values under.
    pub fn values_key(&self) -> ValuesKey {
        if self.values_key.load(Ordering::Relaxed) {
            ValuesKey::Value
        } else {
            ValuesKey::Values
        }
    }

    /// Sets the key a ZeroMQ output writes the values under, from the next
    /// message on.
    pub fn set_values_key(&self, key: ValuesKey) {
        self.values_key
            .store(key == ValuesKey::Value, Ordering::Relaxed);
    }

    /// Counts a bad input and logs it, at `warn` only now and then.
    pub(crate) fn malformed(&self, why: &dyn std::fmt::Display) {
        let count = Stats::bump(&self.stats.malformed);
        let (kind, endpoint) = (self.kind.name(), self.endpoint.as_str());
        if count == 1 || count.is_multiple_of(WARN_EVERY) {
            tracing::warn!(
                bridge = kind,
                endpoint,
                count,
                "malformed input ignored: {why}"
            );
        } else {
            tracing::debug!(
                bridge = kind,
                endpoint,
                count,
                "malformed input ignored: {why}"
            );
        }
    }

    /// Counts a failed send and logs it like [`Link::malformed`].
    pub(crate) fn send_error(&self, why: &dyn std::fmt::Display) {
        let count = Stats::bump(&self.stats.send_errors);
        let (kind, endpoint) = (self.kind.name(), self.endpoint.as_str());
        if count == 1 || count.is_multiple_of(WARN_EVERY) {
            tracing::warn!(bridge = kind, endpoint, count, "send failed: {why}");
        } else {
            tracing::debug!(bridge = kind, endpoint, count, "send failed: {why}");
        }
    }

    pub(crate) fn sent(&self) {
        Stats::bump(&self.stats.messages_out);
    }

    pub(crate) fn dropped(&self) {
        Stats::bump(&self.stats.dropped);
    }
}

/// The open endpoints, shared with the hub's address hook.
#[derive(Default)]
pub(super) struct Links {
    open: RwLock<Vec<Arc<Link>>>,
}

impl Links {
    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Link>>> {
        self.open.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Link>>> {
        self.open.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message to every matching output, except those of `origin`.
    pub(super) fn route(&self, origin: Option<Family>, path: &str, values: &[Value]) {
        let links = self.read();
        let mut message: Option<Arc<Outbound>> = None;
        for link in links.iter() {
            let Some(queue) = &link.queue else { continue };
            if Some(link.kind.family()) == origin {
                continue;
            }
            let matches = link
                .filter
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .matches(path);
            if !matches {
                continue;
            }
            let message = message
                .get_or_insert_with(|| Arc::new(Outbound::new(path, values)))
                .clone();
            if queue.try_send(message).is_err() {
                link.dropped();
            }
        }
    }
}

/// What an endpoint's task is handed.
pub(crate) struct Task {
    pub link: Arc<Link>,
    pub stop: watch::Receiver<bool>,
    /// Outputs: the messages to send.
    pub queue: Option<mpsc::Receiver<Arc<Outbound>>>,
    /// Inputs: where received messages go.
    pub inbox: Inbox,
}

/// Where an input delivers: the hub's subscribers, then the other family's
/// outputs.
#[derive(Clone)]
pub(crate) struct Inbox {
    pub(super) hub: Hub,
    pub(super) links: Arc<Links>,
    pub(super) max_message_size: usize,
}

impl Inbox {
    /// Publishes one received message; `Err` says why it was refused (the
    /// caller counts it as malformed).
    pub fn deliver(&self, link: &Link, path: &str, values: &[Value]) -> Result<(), String> {
        pattern::check_published_address(path)?;
        self.hub.publish_local(path, values);
        self.links.route(Some(link.kind.family()), path, values);
        Stats::bump(&link.stats.messages_in);
        Ok(())
    }

    /// Publishes one of the bridges' own events to the hub's subscribers
    /// (not to the bridges): `EVENTS_PREFIX/what`, with `value` as its one
    /// value.
    pub fn announce(&self, what: &str, value: Value) {
        let path = format!("{EVENTS_PREFIX}/{what}");
        self.hub.publish_local(&path, &[value]);
    }

    /// The most bytes one received message may have.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }
}
