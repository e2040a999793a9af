//! What the reference servers share: the command line and the registry of
//! clients that a broadcast goes to.
//!
//! Every server here runs one of two modes on one address:
//!
//! - `echo`: every text or binary message comes back to its sender;
//! - `broadcast`: every text or binary message goes to every other client.
//!
//! A broadcast is queued on each recipient's bounded queue of
//! [`QUEUE_LEN`] messages; a recipient whose queue is full misses the message
//! (the same bound as Switchboard's hub, with the drop policy).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// Messages waiting for one client before the next broadcast to it is dropped.
pub const QUEUE_LEN: usize = 1024;

/// Which behaviour the server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every message comes back to its sender.
    Echo,
    /// Every message goes to every other client.
    Broadcast,
}

/// Reads `MODE ADDR` from the command line; exits with a usage line if it is wrong.
pub fn args(program: &str) -> (Mode, String) {
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref() {
        Some("echo") => Mode::Echo,
        Some("broadcast") => Mode::Broadcast,
        _ => usage(program),
    };
    let addr = args.next().unwrap_or_else(|| usage(program));
    (mode, addr)
}

fn usage(program: &str) -> ! {
    eprintln!("usage: {program} echo|broadcast 127.0.0.1:PORT");
    std::process::exit(2)
}

/// The clients of a broadcast server, each with its queue.
pub struct Registry<T> {
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, mpsc::Sender<T>>>,
}

impl<T: Clone> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            next_id: AtomicU64::new(0),
            clients: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Registry<T> {
    /// A new shared registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds a client: its id, a sender to its own queue (for the replies the
    /// protocol obliges it to send) and the receiving end of that queue.
    pub fn join(&self) -> (u64, mpsc::Sender<T>, mpsc::Receiver<T>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        self.lock().insert(id, tx.clone());
        (id, tx, rx)
    }

    /// Removes a client; its queue ends once the client drops its own sender.
    pub fn leave(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Queues `message` for every client but `from`.
    pub fn broadcast(&self, from: u64, message: &T) {
        for (id, tx) in self.lock().iter() {
            if *id != from {
                let _ = tx.try_send(message.clone());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<T>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}
