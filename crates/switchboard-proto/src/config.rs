//! Limits and timers of a connection.

use std::time::Duration;

use crate::budget::MemoryBudget;

use crate::error::ConfigError;

/// The settings of one connection.
///
/// Every limit protects memory or CPU against a peer; every timer decides when a
/// silent peer is given up on. `Default` gives values that pass the whole
/// Autobahn TestSuite while keeping a hostile peer bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    pub(crate) max_frame_size: usize,
    pub(crate) max_message_size: usize,
    pub(crate) max_fragments: usize,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
    pub(crate) message_budget: Option<MemoryBudget>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_fragments: 1 << 18,
            ping_interval: None,
            pong_timeout: Duration::from_secs(10),
            idle_timeout: None,
            close_timeout: Duration::from_secs(5),
            message_budget: None,
        }
    }
}

impl Config {
    /// The largest frame payload accepted; a larger frame closes with 1009.
    ///
    /// Default 16 MiB: the largest single frame the Autobahn TestSuite sends,
    /// and no more than a server should buffer before looking at it.
    pub fn max_frame_size(&mut self, bytes: usize) -> &mut Self {
        self.max_frame_size = bytes;
        self
    }

    /// The largest message accepted, after reassembly (and after inflation when
    /// compression is on); a larger one closes with 1009 as soon as a frame
    /// header announces it. Applies in streaming mode too.
    ///
    /// Default 64 MiB.
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.max_message_size = bytes;
        self
    }

    /// The most frames one message may be split into; more closes with 1009.
    ///
    /// Empty continuation frames cost work but no memory, so this bounds a peer
    /// that would keep a message open forever. Default 262,144: a 16 MiB
    /// message in 64-byte fragments.
    pub fn max_fragments(&mut self, count: usize) -> &mut Self {
        self.max_fragments = count;
        self
    }

    /// Sends a ping when nothing has been received for this long; `None` turns
    /// keepalive off. Default `None` in the protocol core; the server and
    /// client in `switchboard-net` choose their own.
    pub fn ping_interval(&mut self, interval: Option<Duration>) -> &mut Self {
        self.ping_interval = interval;
        self
    }

    /// How long after a keepalive ping the peer has to send anything back
    /// before it is considered dead and the connection is dropped. Default 10 s.
    pub fn pong_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.pong_timeout = timeout;
        self
    }

    /// Closes the connection (1001, "idle timeout") when no data message has
    /// been sent or received for this long; `None` never closes. Control frames
    /// do not count: a peer that only answers pings is alive but idle.
    /// Default `None`.
    pub fn idle_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long to wait for the peer's close frame after sending ours (and, on
    /// a client, for the server to drop the TCP connection) before giving up.
    /// Default 5 s.
    pub fn close_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.close_timeout = timeout;
        self
    }

    /// A budget shared with other connections for the messages they are
    /// receiving (and, in `switchboard-net`, the bytes queued for them): a
    /// message past [`budget::FREE_BYTES`](crate::budget::FREE_BYTES)
    /// draws on it as its frames are announced, and gives back when it is
    /// delivered or the connection ends. A message the budget cannot cover
    /// closes its connection with 1013 (try again later). Default `None`:
    /// each connection is bounded by its own limits alone.
    pub fn message_budget(&mut self, budget: Option<MemoryBudget>) -> &mut Self {
        self.message_budget = budget;
        self
    }

    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_size == 0 || self.max_message_size == 0 {
            return Err(ConfigError(
                "max_frame_size and max_message_size must be > 0".into(),
            ));
        }
        if self.max_fragments == 0 {
            return Err(ConfigError("max_fragments must be > 0".into()));
        }
        if self.ping_interval == Some(Duration::ZERO) {
            return Err(ConfigError(
                "ping_interval must be > 0 (use None to disable)".into(),
            ));
        }
        if self.pong_timeout.is_zero() || self.close_timeout.is_zero() {
            return Err(ConfigError(
                "pong_timeout and close_timeout must be > 0".into(),
            ));
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return Err(ConfigError(
                "idle_timeout must be > 0 (use None to disable)".into(),
            ));
        }
        Ok(())
    }

    /// The configured `max_message_size`.
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The configured `max_frame_size`.
    pub fn get_max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// See [`Config::message_budget`].
    pub fn get_message_budget(&self) -> Option<&MemoryBudget> {
        self.message_budget.as_ref()
    }

    /// See [`Config::close_timeout`].
    pub fn get_close_timeout(&self) -> Duration {
        self.close_timeout
    }
}
