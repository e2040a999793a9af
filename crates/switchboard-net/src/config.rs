//! Settings of sockets, servers and clients.

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::handshake::Limits;

use switchboard_proto::deflate::DeflateConfig;
use switchboard_proto::ConfigError;

use crate::error::Error;

/// Settings shared by the server and the client side.
///
/// Wraps the protocol core's [`switchboard_proto::Config`] (frame and message
/// limits, keepalive, idle and close timers) and adds what only the transport
/// knows about: handshake size and time, buffers, subprotocols.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Shared with every connection made from this configuration (copied
    /// on write): a connection's size is its idle cost.
    pub(crate) protocol: Arc<switchboard_proto::Config>,
    pub(crate) limits: Limits,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_pending_send_bytes: usize,
    pub(crate) read_buffer_size: usize,
    pub(crate) protocols: Vec<String>,
    pub(crate) max_http_body: usize,
    pub(crate) deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            protocol: Arc::default(),
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(10),
            max_pending_send_bytes: 4 << 20,
            read_buffer_size: 8 * 1024,
            protocols: Vec::new(),
            max_http_body: 64 * 1024,
            deflate: None,
        }
    }
}

impl Config {
    /// The protocol core's limits and timers, to adjust in place.
    pub fn protocol(&mut self) -> &mut switchboard_proto::Config {
        Arc::make_mut(&mut self.protocol)
    }

    /// The largest frame payload accepted (close 1009 above). Default 16 MiB.
    pub fn max_frame_size(&mut self, bytes: usize) -> &mut Self {
        self.protocol().max_frame_size(bytes);
        self
    }

    /// The largest message accepted (close 1009 above). Default 64 MiB.
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.protocol().max_message_size(bytes);
        self
    }

    /// Ping a silent peer after this long; `None` disables keepalive. Default `None`.
    pub fn ping_interval(&mut self, interval: Option<Duration>) -> &mut Self {
        self.protocol().ping_interval(interval);
        self
    }

    /// How long a keepalive ping may go unanswered. Default 10 s.
    pub fn pong_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.protocol().pong_timeout(timeout);
        self
    }

    /// Close (1001) after this long without a data message. Default `None`.
    pub fn idle_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.protocol().idle_timeout(timeout);
        self
    }

    /// How long a closing handshake may take. Default 5 s.
    pub fn close_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.protocol().close_timeout(timeout);
        self
    }

    /// The most bytes of a request or response head. Default 16 KiB.
    pub fn max_handshake_bytes(&mut self, bytes: usize) -> &mut Self {
        self.limits = self.limits.max_handshake_bytes(bytes);
        self
    }

    /// The most header lines in a request or response head. Default 64.
    pub fn max_headers(&mut self, count: usize) -> &mut Self {
        self.limits = self.limits.max_headers(count);
        self
    }

    /// How long the opening handshake may take, from accept (or connect) to
    /// the 101. Default 10 s: slow-loris connections are dropped.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How many bytes may wait to be written before a send waits for the
    /// socket (backpressure). Default 4 MiB.
    pub fn max_pending_send_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_pending_send_bytes = bytes;
        self
    }

    /// How much to read from the socket at a time. Default 8 KiB; the buffer
    /// is only allocated once data arrives.
    pub fn read_buffer_size(&mut self, bytes: usize) -> &mut Self {
        self.read_buffer_size = bytes;
        self
    }

    /// The subprotocols a server supports, in order of preference; the first
    /// one the client also offers is chosen. Default none.
    pub fn protocols<I, S>(&mut self, protocols: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The largest body a plain HTTP request may carry to a handler. Default 64 KiB.
    pub fn max_http_body(&mut self, bytes: usize) -> &mut Self {
        self.max_http_body = bytes;
        self
    }

    /// permessage-deflate (RFC 7692): `None` turns it off. A server accepts
    /// clients' offers with these settings; a client offers them (use
    /// [`DeflateConfig::client`]). Default `None`: compression costs CPU, and
    /// is worth it for text-heavy traffic on slow links.
    pub fn deflate(&mut self, deflate: Option<DeflateConfig>) -> &mut Self {
        self.deflate = deflate;
        self
    }

    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), Error> {
        self.protocol.validate()?;
        if let Some(deflate) = &self.deflate {
            deflate.validate()?;
        }
        let invalid = |why: &str| Err(Error::from(ConfigError::new(why)));
        if self.handshake_timeout.is_zero() {
            return invalid("handshake_timeout must be > 0");
        }
        if self.read_buffer_size == 0 || self.max_pending_send_bytes == 0 {
            return invalid("read_buffer_size and max_pending_send_bytes must be > 0");
        }
        if self.limits.max_headers == 0 || self.limits.max_handshake_bytes < 64 {
            return invalid("max_headers must be > 0 and max_handshake_bytes >= 64");
        }
        Ok(())
    }
}
