//! The bounded queue of frames waiting for one connection, and the task that
//! writes it to the socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use switchboard_net::{CloseCode, Writer};
use tokio::sync::{mpsc, Notify};

use crate::config::SlowConsumerPolicy;
use crate::metrics::Metrics;

/// What the writer task is asked to do.
pub(crate) enum Out {
    /// Write an encoded frame (possibly shared with other connections).
    Frame(Bytes),
    /// Close the connection after what is queued before it.
    Close(CloseCode, String),
}

/// Ends a connection at once, bypassing a full queue.
#[derive(Default)]
pub(crate) struct Kill {
    fired: AtomicBool,
    why: Mutex<Option<(CloseCode, String)>>,
    notify: Notify,
}

impl Kill {
    fn fire(&self, code: CloseCode, reason: &str) {
        if !self.fired.swap(true, Ordering::AcqRel) {
            *self.why.lock().unwrap_or_else(|p| p.into_inner()) = Some((code, reason.to_owned()));
            self.notify.notify_one();
        }
    }

    async fn fired(&self) -> (CloseCode, String) {
        self.notify.notified().await;
        self.why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or((CloseCode::POLICY_VIOLATION, String::new()))
    }
}

/// The sending side of a connection's queue.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Out>,
    kill: Arc<Kill>,
    policy: SlowConsumerPolicy,
    metrics: Arc<Metrics>,
}

impl Outbox {
    pub fn new(
        queue_len: usize,
        policy: SlowConsumerPolicy,
        metrics: Arc<Metrics>,
    ) -> (Outbox, mpsc::Receiver<Out>, Arc<Kill>) {
        let (tx, rx) = mpsc::channel(queue_len);
        let kill = Arc::new(Kill::default());
        let outbox = Outbox {
            tx,
            kill: Arc::clone(&kill),
            policy,
            metrics,
        };
        (outbox, rx, kill)
    }

    /// Queues a frame without waiting. Returns whether it was queued; a full
    /// queue applies the slow-consumer policy.
    pub fn push(&self, frame: Bytes) -> bool {
        let len = frame.len() as u64;
        match self.tx.try_send(Out::Frame(frame)) {
            Ok(()) => {
                Metrics::add(&self.metrics.messages_out, 1);
                Metrics::add(&self.metrics.bytes_out, len);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                match self.policy {
                    SlowConsumerPolicy::Drop => Metrics::add(&self.metrics.dropped, 1),
                    SlowConsumerPolicy::Close => {
                        if !self.kill.fired.load(Ordering::Acquire) {
                            Metrics::add(&self.metrics.slow_consumers, 1);
                        }
                        let reason = format!("slow consumer: {} messages queued", self.capacity());
                        self.kill.fire(CloseCode::POLICY_VIOLATION, &reason);
                    }
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a close after the frames already queued; if the queue is full,
    /// closes at once.
    pub fn close(&self, code: CloseCode, reason: &str) {
        if self
            .tx
            .try_send(Out::Close(code, reason.to_owned()))
            .is_err()
        {
            self.kill.fire(code, reason);
        }
    }

    /// Frames waiting in the queue.
    pub fn queued(&self) -> usize {
        self.capacity() - self.tx.capacity()
    }

    fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }
}

/// Writes queued frames to the socket until the queue closes, a close is
/// asked for, the kill switch fires, or the socket fails.
pub(crate) async fn write_loop(writer: Writer, mut rx: mpsc::Receiver<Out>, kill: Arc<Kill>) {
    loop {
        let item = tokio::select! {
            biased;
            (code, reason) = kill.fired() => return abort(&writer, code, &reason).await,
            item = rx.recv() => item,
        };
        let Some(item) = item else {
            return;
        };
        let result = tokio::select! {
            biased;
            (code, reason) = kill.fired() => return abort(&writer, code, &reason).await,
            result = write_batch(&writer, item, &mut rx) => result,
        };
        match result {
            Ok(true) => continue,
            Ok(false) | Err(_) => return,
        }
    }
}

/// Writes one item and whatever else is ready, then flushes once.
/// Returns `false` once the connection is closing.
async fn write_batch(
    writer: &Writer,
    first: Out,
    rx: &mut mpsc::Receiver<Out>,
) -> Result<bool, switchboard_net::Error> {
    let mut item = first;
    loop {
        match item {
            Out::Frame(frame) => writer.feed_encoded(frame).await?,
            Out::Close(code, reason) => {
                writer.close(code, &reason).await?;
                return Ok(false);
            }
        }
        match rx.try_recv() {
            Ok(next) => item = next,
            Err(_) => break,
        }
    }
    writer.flush().await?;
    Ok(true)
}

/// Closes a connection whose queue overflowed: the close frame is tried
/// briefly (the peer is, after all, not reading), then the socket is dropped.
async fn abort(writer: &Writer, code: CloseCode, reason: &str) {
    let close = writer.close(code, reason);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), close).await;
}
