//! Engine.IO's heartbeat: the server sends `2` every ping interval and
//! the client must answer `3` within the ping timeout (engine.io-protocol
//! v4, "Heartbeat"). The socket.io client closes a connection it hears no
//! ping on, so WebSocket-level pings are not enough.

use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The timer of one connection, in its task.
pub(crate) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    /// A ping was sent and its pong is awaited.
    waiting: bool,
    sleep: std::pin::Pin<Box<Sleep>>,
}

/// What to do when the timer fires.
pub(crate) enum Beat {
    /// Send a ping (`2`).
    Ping,
    /// The pong did not come: close.
    TimedOut,
}

impl Heartbeat {
    pub fn new(interval: Duration, timeout: Duration) -> Heartbeat {
        Heartbeat {
            interval,
            timeout,
            waiting: false,
            sleep: Box::pin(tokio::time::sleep(interval)),
        }
    }

    /// Completes when the timer fires, with what to do.
    pub async fn fired(&mut self) -> Beat {
        self.sleep.as_mut().await;
        if self.waiting {
            return Beat::TimedOut;
        }
        self.waiting = true;
        let at = Instant::now() + self.timeout;
        self.sleep.as_mut().reset(at);
        Beat::Ping
    }

    /// The client's pong: the next ping one interval from now.
    pub fn pong(&mut self) {
        if self.waiting {
            self.waiting = false;
            let at = Instant::now() + self.interval;
            self.sleep.as_mut().reset(at);
        }
    }
}
