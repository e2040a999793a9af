//! Every timer of a connection, in one small table.
//!
//! Deadlines are computed from instants the connection already keeps (when it
//! last heard from the peer, when it sent a keepalive ping, when it started to
//! close), so arming a timer costs nothing on the data path.

use std::time::{Duration, Instant};

/// The timers of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Nothing heard for `ping_interval`: send a keepalive ping.
    KeepAlive,
    /// A keepalive ping went unanswered for `pong_timeout`: the peer is dead.
    PongDeadline,
    /// No data message for `idle_timeout`: close with 1001.
    Idle,
    /// The closing handshake did not finish within `close_timeout`.
    Close,
}

/// The instants the timers are derived from.
#[derive(Debug, Clone)]
pub(crate) struct TimerTable {
    /// When the peer last sent us anything.
    pub last_received: Instant,
    /// When the last data message went either way (only tracked with an idle timeout).
    pub last_data: Instant,
    /// A data message was sent since `last_data`; folded in when the idle timer fires.
    pub data_sent: bool,
    /// When the outstanding keepalive ping was sent.
    pub ping_sent: Option<Instant>,
    /// When the closing handshake (or the wait for the transport to close) began.
    pub close_started: Option<Instant>,
}

impl TimerTable {
    pub fn new(now: Instant) -> Self {
        TimerTable {
            last_received: now,
            last_data: now,
            data_sent: false,
            ping_sent: None,
            close_started: None,
        }
    }

    /// The earliest deadline, with the timer it belongs to.
    pub fn next(
        &self,
        ping_interval: Option<Duration>,
        pong_timeout: Duration,
        idle_timeout: Option<Duration>,
        close_timeout: Duration,
    ) -> Option<(Instant, Timer)> {
        if let Some(started) = self.close_started {
            return Some((started + close_timeout, Timer::Close));
        }
        let keepalive = match (self.ping_sent, ping_interval) {
            (Some(sent), _) => Some((sent + pong_timeout, Timer::PongDeadline)),
            (None, Some(interval)) => Some((self.last_received + interval, Timer::KeepAlive)),
            (None, None) => None,
        };
        let idle = idle_timeout.map(|timeout| (self.last_data + timeout, Timer::Idle));
        match (keepalive, idle) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}
