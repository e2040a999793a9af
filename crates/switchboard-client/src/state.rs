//! What the [`Client`](crate::Client) handles read and the driver task
//! writes: the event handlers and the event stream, the [`Status`], the
//! connection id and how many connections were made.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, watch};

use crate::incoming::Incoming;

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

/// The state of one client, shared by its handles and its driver task.
pub(crate) struct ClientState {
    handlers: RwLock<HashMap<String, Vec<Handler>>>,
    events: broadcast::Sender<Incoming>,
    status: watch::Sender<Status>,
    id: Mutex<Option<String>>,
    /// How many times a connection reached `ready`.
    connections: AtomicU64,
}

impl ClientState {
    /// No handlers, status `Connecting`, no id yet.
    pub fn new() -> ClientState {
        ClientState {
            handlers: RwLock::new(HashMap::new()),
            events: broadcast::channel(1024).0,
            status: watch::channel(Status::Connecting).0,
            id: Mutex::new(None),
            connections: AtomicU64::new(0),
        }
    }

    /// Adds a handler for the events of this name.
    pub fn add_handler(&self, event: &str, handler: Handler) {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(event.to_owned())
            .or_default()
            .push(handler);
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

    /// Runs the handlers of an event and publishes it to `events()` receivers.
    pub fn dispatch(&self, incoming: Incoming) {
        let handlers: Vec<Handler> = {
            let handlers = self.handlers.read().unwrap_or_else(|p| p.into_inner());
            handlers.get(&incoming.event).cloned().unwrap_or_default()
        };
        for handler in handlers {
            handler(&incoming);
        }
        let _ = self.events.send(incoming);
    }
}
