//! The open long-polling sessions, by Engine.IO `sid`: the client end of
//! each one's in-memory WebSocket (see `polling`). The table's lock is held
//! for a lookup, an insert or a removal, nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use switchboard_net::{Reader, Writer};
use tokio::sync::Notify;

/// The open long-polling sessions, by Engine.IO `sid`.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    max: usize,
}

/// One long-polling session: the client end of its hub connection.
pub struct Session {
    /// What the hub sends; one GET reads it at a time.
    pub(super) reader: tokio::sync::Mutex<Reader>,
    /// What the client sends.
    pub(super) writer: Writer,
    /// Set when a WebSocket takes the session over (after `2probe`).
    pub(super) upgrading: AtomicBool,
    /// Set while a WebSocket is upgrading the session or has upgraded it:
    /// one at a time, so that a second one cannot wait forever for the
    /// reader the first one holds.
    pub(super) claimed: AtomicBool,
    /// Wakes a GET that is waiting, so that it answers at once.
    pub(super) wake: Notify,
}

impl Sessions {
    pub fn new(max: usize) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, sid: &str) -> Option<Arc<Session>> {
        self.lock().get(sid).cloned()
    }

    pub fn insert(&self, sid: String, session: Arc<Session>) -> bool {
        let mut map = self.lock();
        if map.len() >= self.max {
            return false;
        }
        map.insert(sid, session);
        true
    }

    pub fn remove(&self, sid: &str) {
        self.lock().remove(sid);
    }

    /// Sessions open now (upgraded ones included: their hub connection
    /// still runs on the session's pipe).
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Session {
    /// The reader, for the WebSocket that takes the session over once
    /// polling is paused: waits for the GET in progress to answer.
    pub async fn reader(&self) -> tokio::sync::MutexGuard<'_, Reader> {
        self.reader.lock().await
    }

    /// Takes the session for one upgrading WebSocket; false when another
    /// has it already.
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::SeqCst)
    }

    /// An upgrade that failed: polling goes on, and another may be tried.
    pub fn resume_polling(&self) {
        self.upgrading.store(false, Ordering::SeqCst);
        self.claimed.store(false, Ordering::SeqCst);
    }

    /// Marks the session as being upgraded: a GET answers at once with a
    /// noop, so that the client stops polling (engine.io-protocol, "Upgrade").
    pub fn pause_polling(&self) {
        self.upgrading.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn writer(&self) -> &Writer {
        &self.writer
    }
}
