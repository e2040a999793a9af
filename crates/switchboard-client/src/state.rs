//! What the [`Client`](crate::Client) handles read and the driver task
//! writes: the event handlers and the event stream, the [`Status`], the
//! connection id and how many connections were made.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use crate::error::ClientError;
use crate::incoming::Incoming;

/// Events kept for handlers not registered yet, at most, in all.
pub(crate) const BACKLOG: usize = 256;

/// The state of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The first connection is being opened.
    Connecting,
    /// Connected, and `ready` received.
    Connected,
    /// The connection was lost; attempts are under way.
    Reconnecting,
    /// Closed by the application, or every reconnection attempt failed.
    Gone,
}

/// A callback registered with [`Client::on`](crate::Client::on).
pub(crate) type Handler = Arc<dyn Fn(&Incoming) + Send + Sync>;

/// The handlers by event name, and the events that came before any handler
/// for their name: an application that registers its handlers right after
/// `connect` returns must not lose what the server sent right after
/// `ready` (a welcome, the initial data).
#[derive(Default)]
struct Handlers {
    by_event: HashMap<String, Vec<Handler>>,
    /// Handlers of every event.
    any: Vec<Handler>,
    backlog: VecDeque<Incoming>,
}

/// The state of one client, shared by its handles and its driver task.
pub(crate) struct ClientState {
    handlers: Mutex<Handlers>,
    events: broadcast::Sender<Incoming>,
    status: watch::Sender<Status>,
    id: Mutex<Option<String>>,
    /// How many times a connection reached `ready`.
    connections: AtomicU64,
    /// A WebSocket is open (it may not have sent `ready` yet).
    open: AtomicBool,
    /// Why the client gave up, once it has.
    failure: Mutex<Option<ClientError>>,
    /// Why the last attempt to connect failed.
    last_error: Mutex<Option<String>>,
}

impl ClientState {
    /// No handlers, status `Connecting`, no id yet.
    pub fn new() -> ClientState {
        ClientState {
            handlers: Mutex::new(Handlers::default()),
            events: broadcast::channel(1024).0,
            status: watch::channel(Status::Connecting).0,
            id: Mutex::new(None),
            connections: AtomicU64::new(0),
            open: AtomicBool::new(false),
            failure: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    /// Adds a handler for the events of this name, and hands it at once
    /// the events of that name that came while it had none.
    pub fn add_handler(&self, event: &str, handler: Handler) {
        let missed: VecDeque<Incoming> = {
            let mut handlers = self.handlers.lock().unwrap_or_else(|p| p.into_inner());
            handlers
                .by_event
                .entry(event.to_owned())
                .or_default()
                .push(Arc::clone(&handler));
            let (missed, rest) = std::mem::take(&mut handlers.backlog)
                .into_iter()
                .partition(|incoming| incoming.event == event);
            handlers.backlog = rest;
            missed
        };
        for incoming in &missed {
            handler(incoming);
        }
    }

    /// Adds a handler for every event, and hands it at once every event
    /// that came while no handler took it.
    pub fn add_any_handler(&self, handler: Handler) {
        let missed = {
            let mut handlers = self.handlers.lock().unwrap_or_else(|p| p.into_inner());
            handlers.any.push(Arc::clone(&handler));
            std::mem::take(&mut handlers.backlog)
        };
        for incoming in &missed {
            handler(incoming);
        }
    }

    /// Every event from now on.
    pub fn events(&self) -> broadcast::Receiver<Incoming> {
        self.events.subscribe()
    }

    /// The status now and its changes.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    pub fn set_status(&self, status: Status) {
        self.status.send_replace(status);
    }

    /// The connection id given by the server in the last `ready`.
    pub fn id(&self) -> Option<String> {
        self.id.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times a connection reached `ready`.
    pub fn connection_count(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Records a `ready`: the new connection id, one more connection, and
    /// the status `Connected`.
    pub fn record_ready(&self, id: Option<String>) {
        *self.id.lock().unwrap_or_else(|p| p.into_inner()) = id;
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.set_status(Status::Connected);
    }

    /// Runs the handlers of an event and publishes it to `events()`
    /// receivers; an event that neither a handler nor a stream takes is
    /// kept for the first handler (the oldest dropped past [`BACKLOG`]).
    pub fn dispatch(&self, incoming: Incoming) {
        let handlers: Vec<Handler> = {
            let mut handlers = self.handlers.lock().unwrap_or_else(|p| p.into_inner());
            match handlers.by_event.get(&incoming.event) {
                _ if !handlers.any.is_empty() => {
                    let mut all = handlers.any.clone();
                    all.extend(
                        handlers
                            .by_event
                            .get(&incoming.event)
                            .into_iter()
                            .flatten()
                            .cloned(),
                    );
                    all
                }
                Some(registered) => registered.clone(),
                // A stream takes it: no copy is kept (an application that
                // reads `events()` would otherwise pay one per event).
                None if self.events.receiver_count() > 0 => Vec::new(),
                None => {
                    if handlers.backlog.len() == BACKLOG {
                        handlers.backlog.pop_front();
                    }
                    handlers.backlog.push_back(incoming.clone());
                    Vec::new()
                }
            }
        };
        for handler in handlers {
            handler(&incoming);
        }
        let _ = self.events.send(incoming);
    }

    /// Notes whether a WebSocket is open.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Relaxed);
    }

    /// Whether a WebSocket is open (with or without `ready`).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Records why the last attempt to connect failed.
    pub fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// Why the last attempt to connect failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records why the client gave up.
    pub fn set_failure(&self, failure: ClientError) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure);
    }

    /// Why the client gave up, if it has.
    pub fn failure(&self) -> Option<ClientError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
