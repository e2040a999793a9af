//! How a client connects, reconnects and buffers.

use std::sync::Arc;
use std::time::Duration;

use switchboard_net::tls::rustls::ClientConfig;

/// Reconnection with exponential backoff and jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnect {
    /// Attempts after a connection is lost (or the first connect fails)
    /// before giving up with `reconnection_failed`. Default 3.
    pub attempts: u32,
    /// The delay before the first attempt. Default 250 ms.
    pub min_delay: Duration,
    /// The longest delay between attempts. Default 5 s.
    pub max_delay: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            attempts: 3,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl Reconnect {
    /// The delay before attempt `attempt` (1-based): doubling from
    /// `min_delay`, capped at `max_delay`, then drawn uniformly from its upper
    /// half so that many clients do not come back in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self
            .min_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// The settings of a [`crate::Client`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The name to take (sent as `?name=` and again after every reconnect).
    pub name: Option<String>,
    /// Extra request headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Whom to trust for a `wss://` URL, e.g. from
    /// [`switchboard_net::tls::client_config_from_ca_file`]. Default `None`:
    /// the Mozilla roots of [`switchboard_net::tls::default_client_config`].
    pub tls: Option<Arc<ClientConfig>>,
    /// Reconnection policy.
    pub reconnect: Reconnect,
    /// How long `emit_with_ack` waits for its reply. Default 10 s.
    pub ack_timeout: Duration,
    /// How long [`Client::connect`](crate::Client::connect) waits for the
    /// first `ready`, all attempts included; a server that accepts the
    /// WebSocket but is not a hub fails with
    /// [`ClientError::NotAHub`](crate::ClientError::NotAHub). Default 10 s.
    pub connect_timeout: Duration,
    /// Ping the server after this much silence. Default 15 s.
    pub ping_interval: Duration,
    /// How long the server has to answer before the connection is considered
    /// dead and a reconnect starts. Default 10 s.
    pub pong_timeout: Duration,
    /// Messages kept while disconnected, sent after reconnecting; when full
    /// the oldest is dropped. Default 100.
    pub buffer: usize,
    /// More URLs of the same hub (other nodes of a cluster): each attempt
    /// to reconnect takes the next one, round the list. Default none.
    pub fallback_urls: Vec<String>,
    /// Connects with `?acks=1` and acknowledges the room messages it hands
    /// to the application (once their handlers have run), at most every
    /// 100 ms: the server then keeps what was not acknowledged, and a
    /// reconnect resumes from it (docs/PROTOCOL.md, "At-least-once
    /// delivery"). Default false.
    pub acks: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            name: None,
            headers: Vec::new(),
            tls: None,
            reconnect: Reconnect::default(),
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            buffer: 100,
            fallback_urls: Vec::new(),
            acks: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let policy = Reconnect::default();
        for attempt in 1..=8 {
            let full =
                Duration::from_millis(250 * (1 << (attempt - 1))).min(Duration::from_secs(5));
            for _ in 0..50 {
                let delay = policy.delay(attempt);
                assert!(
                    delay >= full / 2 && delay <= full,
                    "attempt {attempt}: {delay:?}"
                );
            }
        }
    }
}
