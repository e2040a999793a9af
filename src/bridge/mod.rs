//! Bridges: address messages (`{path, values}`) to and from ZeroMQ and OSC.
//!
//! - `kind`: the kinds of endpoint (ZeroMQ PUSH, ..., OSC send) and their
//!   families;
//! - `endpoint`: the syntax of endpoints, and the key an open one is known by;
//! - `config`: the `[bridge]` settings (the `--zmq-*` / `--osc-*` flags
//!   replace its lists);
//! - `link`: one open endpoint, its counters and what its task is handed,
//!   and the list of open endpoints that messages are routed through;
//! - `zmq`: PUSH and PUB outputs, PULL and SUB inputs (JSON frames);
//! - `osc`: OSC over UDP in both directions;
//! - `osc_codec`: OSC packets to and from address messages (the value mapping);
//! - this module: [`Bridges`], the registry of open endpoints: opening and
//!   closing them, wiring them to the hub, their metrics.
//!
//! Every address message published in the hub (by a WebSocket client or
//! `POST /api/publish`) goes to each output whose pattern matches it, through
//! a bounded queue per output, so a slow or absent peer never holds up the
//! hub. A message that comes in through an input is published to the hub's
//! subscribers and sent to the outputs of the *other* family only: what came
//! from ZeroMQ never goes back out to ZeroMQ, what came from OSC never back
//! to OSC, so two bridges pointed at each other cannot loop.
//!
//! Endpoints are opened on demand and reused: asking [`Bridges::open`] again
//! for an open endpoint returns it (adding the new pattern to its filter),
//! as IS2's `createServer` returns the socket it made before.
//! [`Bridges::open_new`] (`POST /api/bridges`) refuses an endpoint that is
//! open already. Each open endpoint has an id ([`Link::id`]);
//! [`Bridges::close`] closes one, [`Bridges::close_all`] every one.
//!
//! Opening, closing and the peers a ZeroMQ socket sees come and go are
//! announced to the hub's subscribers as address messages under
//! `/switchboard/bridges/` (`link::EVENTS_PREFIX`); they never go out through
//! the bridges themselves.

mod config;
mod endpoint;
mod kind;
mod link;
mod osc;
mod osc_codec;
mod zmq;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use switchboard_hub::pattern::Pattern;
use switchboard_hub::Hub;
use tokio::sync::{mpsc, watch};

pub use config::{BridgeSettings, NewBridge};
pub use kind::Kind;
pub use link::{Link, Stats};

use kind::Family;
use link::{Filter, Inbox, Links, Task};

/// Messages waiting for one output before new ones are dropped.
const OUTPUT_QUEUE_LEN: usize = 1024;
/// How long closing waits for an endpoint's task to finish.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The registry of open bridge endpoints. Cheap to clone.
#[derive(Clone)]
pub struct Bridges {
    links: Arc<Links>,
    inbox: Inbox,
    /// Serializes opening and closing, so one endpoint is never opened twice.
    opening: Arc<tokio::sync::Mutex<()>>,
    /// The most endpoints open at once.
    max_open: usize,
}

impl std::fmt::Debug for Bridges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.links.read().iter()).finish()
    }
}

impl Bridges {
    /// A registry with nothing open, wired to the hub: every address message
    /// published in the hub goes to the matching outputs from now on.
    /// `max_message_size` caps what an input accepts.
    pub fn new(hub: &Hub, max_message_size: usize) -> Bridges {
        let links = Arc::new(Links::default());
        let hook = links.clone();
        hub.on_address(move |path, values| hook.route(None, path, values));
        Bridges {
            inbox: Inbox {
                hub: hub.clone(),
                links: links.clone(),
                max_message_size,
            },
            links,
            opening: Arc::new(tokio::sync::Mutex::new(())),
            max_open: usize::MAX,
        }
    }

    /// Caps how many endpoints may be open at once, those of the settings
    /// included (`max_bridges`); no cap until this is called.
    pub fn with_max_open(mut self, max_open: usize) -> Bridges {
        self.max_open = max_open;
        self
    }

    /// Opens every endpoint in the settings and names each on stderr; on an
    /// error, closes what it had opened and returns it.
    pub async fn start(&self, settings: &BridgeSettings) -> anyhow::Result<()> {
        for (kind, route) in settings.entries() {
            let pattern = route.pattern().map_err(anyhow::Error::msg)?;
            let key = route.values_key().map_err(anyhow::Error::msg)?;
            let opened = self.open(kind, &route.endpoint, pattern).await;
            if let Ok(link) = &opened {
                link.set_values_key(key);
            }
            if let Err(error) = opened {
                self.close_all().await;
                return Err(error.context(format!("bridge.{} {}", kind.name(), route.endpoint)));
            }
        }
        for link in self.links() {
            let (kind, endpoint, local) = (link.kind().name(), link.endpoint(), link.local());
            if local == endpoint.trim_start_matches(['@', '>']) {
                eprintln!("switchboard: bridge {kind} {endpoint}");
            } else {
                eprintln!("switchboard: bridge {kind} {endpoint} ({local})");
            }
        }
        Ok(())
    }

    /// Opens an endpoint, or returns the one already open with this kind and
    /// endpoint (adding `pattern` to what it sends). `pattern` is ignored
    /// for inputs; `None` sends every address.
    pub async fn open(
        &self,
        kind: Kind,
        endpoint: &str,
        pattern: Option<Pattern>,
    ) -> anyhow::Result<Arc<Link>> {
        let _opening = self.opening.lock().await;
        let key = endpoint::key(kind, endpoint);
        if let Some(link) = self.find(kind, &key) {
            link.filter
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .add(pattern);
            return Ok(link);
        }
        self.create(kind, endpoint, pattern, None)
            .await
            .map_err(anyhow::Error::from)
    }

    /// Opens an endpoint that is not open yet (`POST /api/bridges`), known
    /// by `name` if one is given, else by `KIND:ENDPOINT` with its port
    /// resolved. An endpoint on port 0 is a new one every time.
    pub async fn open_new(
        &self,
        kind: Kind,
        endpoint: &str,
        pattern: Option<Pattern>,
        name: Option<&str>,
    ) -> Result<Arc<Link>, OpenError> {
        let _opening = self.opening.lock().await;
        endpoint::check(kind, endpoint).map_err(OpenError::Invalid)?;
        let key = endpoint::key(kind, endpoint);
        if !endpoint::any_port(&key) && self.find(kind, &key).is_some() {
            return Err(OpenError::AlreadyOpen(format!(
                "{} {key} is already open",
                kind.name()
            )));
        }
        if let Some(name) = name {
            if self.get(name).is_some() {
                return Err(OpenError::AlreadyOpen(format!(
                    "a bridge named {name:?} is already open"
                )));
            }
        }
        self.create(kind, endpoint, pattern, name).await
    }

    /// Opens the socket and starts its task; the caller holds `opening`.
    async fn create(
        &self,
        kind: Kind,
        endpoint: &str,
        pattern: Option<Pattern>,
        name: Option<&str>,
    ) -> Result<Arc<Link>, OpenError> {
        if self.links.read().len() >= self.max_open {
            return Err(OpenError::TooMany(self.max_open));
        }
        endpoint::check(kind, endpoint).map_err(OpenError::Invalid)?;
        let key = endpoint::key(kind, endpoint);
        let opened = match kind.family() {
            Family::Zmq => zmq::open(kind, endpoint).await.map(Opened::Zmq),
            Family::Osc => osc::open(kind, endpoint).await.map(Opened::Osc),
        }
        .map_err(OpenError::Failed)?;
        let local = opened.local();
        let id = match name {
            Some(name) => name.to_owned(),
            None => format!("{}:{}", kind.name(), endpoint::resolved_key(&key, &local)),
        };
        if self.get(&id).is_some() {
            // Another spelling of an open endpoint (a host name for its
            // address); the new socket is dropped unused.
            return Err(OpenError::AlreadyOpen(format!("{id} is already open")));
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let (queue_tx, queue_rx) = if kind.is_output() {
            let (tx, rx) = mpsc::channel(OUTPUT_QUEUE_LEN);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let mut filter = Filter::default();
        filter.add(pattern);
        let link = Arc::new(Link {
            id,
            kind,
            endpoint: key,
            local,
            stats: Stats::default(),
            filter: RwLock::new(filter),
            values_key: AtomicBool::new(false),
            queue: queue_tx,
            stop: stop_tx,
            task: Mutex::new(None),
        });
        let task = Task {
            link: link.clone(),
            stop: stop_rx,
            queue: queue_rx,
            inbox: self.inbox.clone(),
        };
        let handle = tokio::spawn(opened.run(task));
        *link.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        self.links.write().push(link.clone());
        tracing::info!(bridge = kind.name(), endpoint, local = %link.local, "bridge open");
        self.inbox.announce("opened", link.summary());
        Ok(link)
    }

    fn find(&self, kind: Kind, key: &str) -> Option<Arc<Link>> {
        self.links
            .read()
            .iter()
            .find(|link| link.kind == kind && link.endpoint == key)
            .cloned()
    }

    /// The open endpoint with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Link>> {
        self.links.read().iter().find(|link| link.id == id).cloned()
    }

    /// The open endpoints.
    pub fn links(&self) -> Vec<Arc<Link>> {
        self.links.read().clone()
    }

    /// The most endpoints open at once (`max_bridges`).
    pub fn max_open(&self) -> usize {
        self.max_open
    }

    /// Closes the endpoint with this id and waits until its socket is
    /// closed (a bound port is free again); returns it, or `None` if no
    /// endpoint has this id.
    pub async fn close(&self, id: &str) -> Option<Arc<Link>> {
        let _opening = self.opening.lock().await;
        let link = {
            let mut links = self.links.write();
            let index = links.iter().position(|link| link.id == id);
            index.map(|index| links.remove(index))
        }?;
        self.stop(&link).await;
        Some(link)
    }

    /// Closes every endpoint (at shutdown, or `DELETE /api/bridges`);
    /// returns how many there were.
    pub async fn close_all(&self) -> usize {
        let _opening = self.opening.lock().await;
        let links = std::mem::take(&mut *self.links.write());
        for link in &links {
            let _ = link.stop.send(true);
        }
        for link in &links {
            self.stop(link).await;
        }
        links.len()
    }

    /// Tells a link's task to stop and waits for it (a bound socket is
    /// unbound when it ends), then announces it closed.
    async fn stop(&self, link: &Link) {
        let _ = link.stop.send(true);
        let handle = link.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut handle) = handle {
            if tokio::time::timeout(CLOSE_TIMEOUT, &mut handle)
                .await
                .is_err()
            {
                handle.abort();
            }
        }
        tracing::info!(bridge = link.kind.name(), endpoint = %link.endpoint, "bridge closed");
        self.inbox.announce("closed", link.summary());
    }

    /// Appends the bridge counters to a Prometheus exposition, one series per
    /// endpoint (labels: `bridge`, the kind, and `endpoint`, the address bound
    /// or connected to); nothing when none is open.
    pub fn render_metrics(&self, out: &mut String) {
        let links = self.links.read();
        if links.is_empty() {
            return;
        }
        type Counter = fn(&Stats) -> &AtomicU64;
        let counters: [(&str, &str, Counter); 5] = [
            (
                "switchboard_bridge_messages_in_total",
                "Messages received by a bridge and published into the hub",
                |s| &s.messages_in,
            ),
            (
                "switchboard_bridge_messages_out_total",
                "Messages a bridge sent out",
                |s| &s.messages_out,
            ),
            (
                "switchboard_bridge_malformed_total",
                "Packets or frames a bridge could not read as a message",
                |s| &s.malformed,
            ),
            (
                "switchboard_bridge_send_errors_total",
                "Sends a bridge socket refused",
                |s| &s.send_errors,
            ),
            (
                "switchboard_bridge_dropped_total",
                "Messages a bridge dropped: queue full or no peer connected",
                |s| &s.dropped,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for link in links.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{bridge=\"{}\",endpoint=\"{}\"}} {}",
                    link.kind.name(),
                    label_value(&link.local),
                    Stats::get(counter(link.stats())),
                );
            }
        }
    }
}

/// Why [`Bridges::open_new`] opened nothing.
#[derive(Debug)]
pub enum OpenError {
    /// The endpoint is not valid for its kind.
    Invalid(String),
    /// The endpoint is open already, or the name taken.
    AlreadyOpen(String),
    /// `max_bridges` endpoints are open.
    TooMany(usize),
    /// The socket could not be opened (the address is in use, ...).
    Failed(anyhow::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Invalid(why) | OpenError::AlreadyOpen(why) => f.write_str(why),
            OpenError::TooMany(max) => write!(f, "{max} bridges are open, the most allowed"),
            OpenError::Failed(error) => write!(f, "{error:#}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Escapes a Prometheus label value.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// An endpoint whose socket is open, ready to run.
enum Opened {
    Zmq(zmq::Socket),
    Osc(osc::Socket),
}

impl Opened {
    fn local(&self) -> String {
        match self {
            Opened::Zmq(socket) => socket.local(),
            Opened::Osc(socket) => socket.local(),
        }
    }

    async fn run(self, task: Task) {
        match self {
            Opened::Zmq(socket) => zmq::run(socket, task).await,
            Opened::Osc(socket) => osc::run(socket, task).await,
        }
    }
}

#[cfg(test)]
mod tests;
